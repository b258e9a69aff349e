//! Measurements in child processes of this executable: a worker that runs out of device
//! memory (or crashes inside a dependency) ends only itself, and each measurement starts from
//! a fresh allocator, so memory figures do not leak from one case into the next.

use std::process::Command;

use anyhow::{Context, Result};

/// Runs `xtask <args>` and returns the last JSON line of its stdout, or why there is none:
/// "OOM" when the error says the device ran out of memory, else "failed: <last stderr line>".
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
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Ok(Err(format!("failed: {}", last.trim())))
}
