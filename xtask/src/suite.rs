//! Running a table of steps: a `==> step` header before each, a timer, fail
//! fast, and a summary ending in the line `N passed, M failed`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::process;
use crate::steps::{Action, Step};

/// How to run a table.
#[derive(Default)]
pub struct Options {
    /// Run the remaining steps after a failure.
    pub keep_going: bool,
    /// Run only the steps whose name contains one of these (setup always
    /// runs). Empty: every step.
    pub filters: Vec<String>,
}

/// What became of one step.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Passed(Duration),
    Failed(Duration, String),
    /// Not run because an earlier step failed.
    NotRun,
    /// Left out by the filters.
    NotSelected,
}

/// Run `steps` from `root`; true when every selected step passed.
pub fn run_steps(command: &str, steps: &[Step], root: &Path, options: &Options) -> bool {
    if let Some(unknown) = options
        .filters
        .iter()
        .find(|f| !steps.iter().any(|s| s.name.contains(f.as_str())))
    {
        let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
        eprintln!(
            "xtask {command}: no step matches `{unknown}`; the steps are: {}",
            names.join(", ")
        );
        return false;
    }
    let start = Instant::now();
    let mut outcomes = Vec::with_capacity(steps.len());
    let mut stop = false;
    for (i, step) in steps.iter().enumerate() {
        let selected = options.filters.is_empty()
            || step.name == "setup"
            || options
                .filters
                .iter()
                .any(|f| step.name.contains(f.as_str()));
        let outcome = if !selected {
            Outcome::NotSelected
        } else if stop {
            Outcome::NotRun
        } else {
            println!(
                "\n==> [{}/{}] {}: {}",
                i + 1,
                steps.len(),
                step.name,
                describe(&step.action)
            );
            let began = Instant::now();
            let result = run_step(step, root);
            let took = began.elapsed();
            match result {
                Ok(()) => {
                    println!("<== {} ok ({:.1} s)", step.name, took.as_secs_f64());
                    Outcome::Passed(took)
                }
                Err(why) => {
                    println!(
                        "<== {} FAILED after {:.1} s: {why}",
                        step.name,
                        took.as_secs_f64()
                    );
                    stop = !options.keep_going;
                    Outcome::Failed(took, why)
                }
            }
        };
        outcomes.push(outcome);
    }
    print_summary(command, steps, &outcomes, start.elapsed());
    !outcomes.iter().any(|o| matches!(o, Outcome::Failed(..)))
}

/// The command line of a step, or the name of its check.
fn describe(action: &Action) -> String {
    match action {
        Action::Run { program, args } => process::display(Command::new(program).args(*args)),
        Action::Check(_) => "built-in check".to_string(),
    }
}

fn run_step(step: &Step, root: &Path) -> Result<(), String> {
    match &step.action {
        Action::Run { program, args } => {
            let mut cmd = Command::new(program);
            cmd.args(*args).current_dir(root);
            process::run(&mut cmd, step.timeout).map_err(|e| e.to_string())
        }
        Action::Check(check) => run_check(*check, root, step.timeout),
    }
}

/// Run a check on its own thread so its time limit holds even if it hangs
/// (each command it starts has a limit of its own and is killed by it).
fn run_check(
    check: fn(&Path) -> Result<(), String>,
    root: &Path,
    limit: Duration,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let root: PathBuf = root.to_path_buf();
    thread::spawn(move || {
        let _ = tx.send(check(&root));
    });
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("did not finish within {} s", limit.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("the check panicked".to_string()),
    }
}

fn print_summary(command: &str, steps: &[Step], outcomes: &[Outcome], total: Duration) {
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0).max(4);
    println!("\n==> summary of `cargo xtask {command}`");
    println!("{:<width$}  {:>8}  result", "step", "seconds");
    for (step, outcome) in steps.iter().zip(outcomes) {
        let (seconds, result) = match outcome {
            Outcome::Passed(t) => (format!("{:.1}", t.as_secs_f64()), "ok"),
            Outcome::Failed(t, _) => (format!("{:.1}", t.as_secs_f64()), "FAILED"),
            Outcome::NotRun => ("-".to_string(), "not run (an earlier step failed)"),
            Outcome::NotSelected => ("-".to_string(), "not selected"),
        };
        println!("{:<width$}  {seconds:>8}  {result}", step.name);
    }
    println!("{:<width$}  {:>8.1}", "total", total.as_secs_f64());
    for (step, outcome) in steps.iter().zip(outcomes) {
        if let Outcome::Failed(_, why) = outcome {
            println!("FAILED {}: {why}", step.name);
        }
    }
    println!("{}", closing_line(outcomes));
}

/// `N passed, M failed`, counting steps.
fn closing_line(outcomes: &[Outcome]) -> String {
    let passed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Passed(_)))
        .count();
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(..)))
        .count();
    format!("{passed} passed, {failed} failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &Path) -> Result<(), String> {
        Ok(())
    }

    fn broken(_: &Path) -> Result<(), String> {
        Err("broken on purpose".to_string())
    }

    fn hangs(_: &Path) -> Result<(), String> {
        thread::sleep(Duration::from_secs(30));
        Ok(())
    }

    const fn check(name: &'static str, f: fn(&Path) -> Result<(), String>) -> Step {
        Step {
            name,
            action: Action::Check(f),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_closing_line_counts_steps() {
        let outcomes = [
            Outcome::Passed(Duration::ZERO),
            Outcome::Failed(Duration::ZERO, String::new()),
            Outcome::NotRun,
            Outcome::Passed(Duration::ZERO),
            Outcome::NotSelected,
        ];
        assert_eq!(closing_line(&outcomes), "2 passed, 1 failed");
    }

    #[test]
    fn passing_steps_pass() {
        let steps = [check("setup", ok), check("a", ok)];
        assert!(run_steps("t", &steps, Path::new("."), &Options::default()));
    }

    #[test]
    fn a_failure_fails_the_run() {
        let steps = [check("setup", ok), check("a", broken), check("b", ok)];
        assert!(!run_steps("t", &steps, Path::new("."), &Options::default()));
        let keep_going = Options {
            keep_going: true,
            ..Options::default()
        };
        assert!(!run_steps("t", &steps, Path::new("."), &keep_going));
    }

    #[test]
    fn filters_leave_out_unselected_steps_and_reject_unknown_names() {
        let steps = [check("setup", ok), check("a", broken), check("bb", ok)];
        let only_b = Options {
            filters: vec!["b".to_string()],
            ..Options::default()
        };
        assert!(run_steps("t", &steps, Path::new("."), &only_b));
        let unknown = Options {
            filters: vec!["zzz".to_string()],
            ..Options::default()
        };
        assert!(!run_steps("t", &steps, Path::new("."), &unknown));
    }

    #[test]
    fn a_hanging_check_times_out() {
        let mut step = check("slow", hangs);
        step.timeout = Duration::from_millis(100);
        let err = run_step(&step, Path::new(".")).unwrap_err();
        assert!(err.starts_with("did not finish within"), "{err}");
    }

    #[test]
    fn a_command_step_runs_its_program() {
        let step = Step {
            name: "false",
            action: Action::Run {
                program: "false",
                args: &[],
            },
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            run_step(&step, Path::new(".")).unwrap_err(),
            "`false` exited with status 1"
        );
    }
}
