//! Measurements in child processes of this executable: a worker that runs out of device
//! memory (or crashes inside a dependency) ends only itself, and each measurement starts from
//! a fresh allocator, so memory figures do not leak from one case into the next.

use std::process::Command;

use anyhow::{Context, Result};

/// Runs `xtask <args>` and returns the last JSON line of its stdout, or why there is none:
/// "OOM" when the error says the device ran out of memory, else "failed: <why>" (see
/// [`failure_line`]).
pub fn run_json_worker(args: &[String]) -> Result<Result<serde_json::Value, String>> {
    let exe = std::env::current_exe().context("locating the xtask executable")?;
    let out = Command::new(&exe)
        .args(args)
        .output()
        .with_context(|| format!("starting the worker `{}`", args.join(" ")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    if let (Some(line), true) = (line, out.status.success()) {
        return Ok(Ok(
            serde_json::from_str(line).context("the worker's JSON line")?
        ));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lower = stderr.to_lowercase();
    if lower.contains("out of memory") || stderr.contains("OutOfMemory") {
        return Ok(Err("OOM".into()));
    }
    Ok(Err(format!("failed: {}", failure_line(&stderr))))
}

/// The line of a worker's stderr that says why it failed: the message after Rust's
/// "panicked at" line when it panicked (the last line is then the backtrace hint), else
/// the last non-empty line.
fn failure_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    let panic_message = lines
        .iter()
        .position(|l| l.contains("panicked at"))
        .and_then(|at| lines[at + 1..].iter().find(|l| !l.trim().is_empty()));
    panic_message
        .or_else(|| lines.iter().rev().find(|l| !l.trim().is_empty()))
        .map_or("", |l| l.trim())
}

#[cfg(test)]
mod tests {
    use super::failure_line;

    #[test]
    fn a_panic_is_named_by_its_message_not_the_backtrace_hint() {
        let stderr = "loading\nthread 'main' (12) panicked at src/x.rs:3:5:\nshape mismatch in `w`\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(failure_line(stderr), "shape mismatch in `w`");
        assert_eq!(
            failure_line("step 1\nError: disk full\n\n"),
            "Error: disk full"
        );
        assert_eq!(failure_line(""), "");
    }
}
