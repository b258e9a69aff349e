//! `cargo xtask bench …`: ours and the peers in one run on the same input, reporting ratios.

pub mod adamw;
pub mod attention;
pub mod data;
pub mod gemm;
pub mod generate;
pub mod generate_random;
pub mod tokenizer;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::Value;

/// Best wall time of `reps` runs of `f` (seconds), with the last result.
pub fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let out = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.expect("at least one run"))
}

/// How [`device_seconds`] times a call on a GPU backend: `warmup` untimed calls, then at
/// least `min_calls` calls and `min_seconds`, with a device sync every `sync_every` calls
/// and before the clock stops.
#[derive(Debug, Clone, Copy)]
pub struct DeviceTiming {
    pub warmup: usize,
    pub min_calls: usize,
    pub min_seconds: f64,
    pub sync_every: usize,
}

/// Mean seconds per call of `f` on `device`, timed as `timing` says.
pub fn device_seconds<B: burn::tensor::backend::Backend>(
    device: &B::Device,
    timing: DeviceTiming,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let sync = || B::sync(device).map_err(|e| anyhow::anyhow!("device sync: {e:?}"));
    for _ in 0..timing.warmup {
        f()?;
    }
    sync()?;
    let start = Instant::now();
    let mut calls = 0;
    while calls < timing.min_calls || start.elapsed().as_secs_f64() < timing.min_seconds {
        f()?;
        calls += 1;
        if calls % timing.sync_every == 0 {
            sync()?;
        }
    }
    if calls % timing.sync_every != 0 {
        sync()?;
    }
    Ok(start.elapsed().as_secs_f64() / calls as f64)
}

/// A table cell: `v` with `digits` decimals, or "-" when there is no figure.
pub fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One JSON record per case, in order, from one run of a peer script that reads `cases` as
/// a JSON list on stdin and prints a JSON line per case (other lines are ignored).
pub fn peer_records<T: serde::Serialize>(
    python: &str,
    script: &std::path::Path,
    cases: &[T],
) -> anyhow::Result<Vec<Value>> {
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {python} {}", script.display()))?;
    child
        .stdin
        .take()
        .context("peer stdin")?
        .write_all(serde_json::to_string(cases)?.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if records.len() != cases.len() {
        bail!(
            "{} returned {} results for {} cases",
            script.display(),
            records.len(),
            cases.len()
        );
    }
    Ok(records)
}
