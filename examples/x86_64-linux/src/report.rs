//! One line per check, then the closing `N passed, M failed`.

use std::time::Instant;

/// Collects check results and prints them as they come.
#[derive(Debug, Default)]
pub struct Report {
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `check` and print one line: `ok`/`FAIL`, its name, time, and on
    /// failure why.
    pub fn check(&mut self, name: &str, check: impl FnOnce() -> Result<String, String>) {
        let t = Instant::now();
        let r = check();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok(note) if note.is_empty() => {
                println!("ok    {name} ({ms:.1} ms)");
                self.passed += 1;
            }
            Ok(note) => {
                println!("ok    {name} ({ms:.1} ms): {note}");
                self.passed += 1;
            }
            Err(why) => {
                println!("FAIL  {name} ({ms:.1} ms): {why}");
                self.failed.push(name.to_string());
            }
        }
    }

    /// Checks that passed.
    pub fn passed(&self) -> usize {
        self.passed
    }

    /// Names of the checks that failed.
    pub fn failed(&self) -> &[String] {
        &self.failed
    }

    /// Print the closing line; true when nothing failed.
    pub fn finish(&self) -> bool {
        println!("{} passed, {} failed", self.passed, self.failed.len());
        self.failed.is_empty()
    }
}

/// Fail a check with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Fail a check unless two values are equal, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!("{}: {:x?} != {:x?}", format!($($fmt)+), l, r));
        }
    }};
}
