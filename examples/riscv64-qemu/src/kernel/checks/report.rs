//! Counting and printing checks: one line each, `ok` or `FAIL`, and the
//! summary line `N passed, M failed`.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use probe_core::ProbeError;

/// The text of the current failure (checks run one at a time, on hart 0).
struct Message {
    busy: AtomicBool,
    text: UnsafeCell<heapless::String<320>>,
}

// SAFETY: `text` is only touched between a successful compare-exchange of
// `busy` from false to true (Acquire) and the store of false (Release).
unsafe impl Sync for Message {}

impl Message {
    fn with<T>(&self, f: impl FnOnce(&mut heapless::String<320>) -> T) -> T {
        while self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: `busy` is ours (see the `Sync` impl).
        let result = f(unsafe { &mut *self.text.get() });
        self.busy.store(false, Ordering::Release);
        result
    }
}

static MESSAGE: Message = Message {
    busy: AtomicBool::new(false),
    text: UnsafeCell::new(heapless::String::new()),
};

/// Why a check failed: a token for the text kept in one static buffer, so
/// results stay small (only one failure is pending at a time).
#[derive(Debug)]
pub struct Fail(());

impl Fail {
    /// A failure saying `args` (replaces the pending text).
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        MESSAGE.with(|text| {
            text.clear();
            // Truncated when too long: the start says enough.
            let _ = text.write_fmt(args);
        });
        Self(())
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut copy = heapless::String::<320>::new();
        MESSAGE.with(|text| {
            let _ = copy.push_str(text);
        });
        f.write_str(&copy)
    }
}

impl From<ProbeError> for Fail {
    fn from(e: ProbeError) -> Self {
        Fail::new(format_args!("unexpected error: {e}"))
    }
}

/// What a passed check says about itself.
pub struct Note(heapless::String<320>);

impl Note {
    /// A note saying `args`.
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        let mut s = heapless::String::new();
        let _ = s.write_fmt(args);
        Self(s)
    }
}

/// The result of one check.
pub type Outcome = Result<Note, Fail>;

/// Return a failure unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::kernel::checks::report::Fail::new(format_args!($($arg)+)));
        }
    };
}

/// Return a failure unless `got == want`, naming `what`.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($what:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err($crate::kernel::checks::report::Fail::new(format_args!(
                "{}: got {:x?}, want {:x?}",
                format_args!($($what)+),
                got,
                want
            )));
        }
    }};
}

/// A passed check's note.
macro_rules! note {
    ($($arg:tt)+) => {
        Ok($crate::kernel::checks::report::Note::new(format_args!($($arg)+)))
    };
}

pub(crate) use {ensure, ensure_eq, note};

static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// Run one check and print its line.
pub fn check(name: &str, f: impl FnOnce() -> Outcome) {
    let n = PASSED.load(Ordering::Relaxed) + FAILED.load(Ordering::Relaxed) + 1;
    match f() {
        Ok(note) => {
            PASSED.fetch_add(1, Ordering::Relaxed);
            println!("ok   {n:>2} {name}: {}", note.0);
        }
        Err(fail) => {
            FAILED.fetch_add(1, Ordering::Relaxed);
            println!("FAIL {n:>2} {name}: {fail}");
        }
    }
}

/// Checks passed and failed so far.
pub fn totals() -> (usize, usize) {
    (
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
    )
}
