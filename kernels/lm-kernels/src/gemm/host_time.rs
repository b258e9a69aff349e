//! Where a cuBLASLt product's host time goes (`LM_CUBLASLT_PROFILE=1`): the whole call,
//! the wait for cubecl's server thread to reach it, and the enqueueing there. Means over
//! every [`REPORT_EVERY`] products go to stderr.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Products per printed line.
const REPORT_EVERY: u64 = 2048;

/// Whether host times are collected.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("LM_CUBLASLT_PROFILE").as_deref() == Ok("1"))
}

static PRODUCTS: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds: whole call, waiting for the server thread, enqueueing.
static TOTAL: AtomicU64 = AtomicU64::new(0);
static WAITING: AtomicU64 = AtomicU64::new(0);
static ENQUEUEING: AtomicU64 = AtomicU64::new(0);

fn nanos(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}

/// Adds one product's times (taken with `Instant`s at its start, when the enqueueing
/// began and when it ended) and prints the means every [`REPORT_EVERY`] products.
pub fn record(start: Instant, enqueue_start: Instant, enqueue_end: Instant) {
    let total = nanos(start);
    let waiting = enqueue_start.saturating_duration_since(start).as_nanos() as u64;
    let enqueueing = enqueue_end
        .saturating_duration_since(enqueue_start)
        .as_nanos() as u64;
    TOTAL.fetch_add(total, Ordering::Relaxed);
    WAITING.fetch_add(waiting, Ordering::Relaxed);
    ENQUEUEING.fetch_add(enqueueing, Ordering::Relaxed);
    let n = PRODUCTS.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_multiple_of(REPORT_EVERY) {
        let us =
            |total: &AtomicU64| total.swap(0, Ordering::Relaxed) as f64 / 1e3 / REPORT_EVERY as f64;
        eprintln!(
            "cuBLASLt host path, {REPORT_EVERY} products to #{n}: {:.1} us a product ({:.1} waiting for cubecl's server thread, {:.1} enqueueing)",
            us(&TOTAL),
            us(&WAITING),
            us(&ENQUEUEING)
        );
    }
}
