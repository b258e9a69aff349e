/// The handout's learning rate at iteration `t`: linear warmup to `max_lr` over `warmup_iters`,
/// cosine decay to `min_lr` at `cosine_cycle_iters`, then `min_lr`.
pub fn lr_cosine_schedule(
    t: u64,
    max_lr: f64,
    min_lr: f64,
    warmup_iters: u64,
    cosine_cycle_iters: u64,
) -> f64 {
    if t < warmup_iters {
        t as f64 / warmup_iters as f64 * max_lr
    } else if t <= cosine_cycle_iters {
        let progress =
            (t - warmup_iters) as f64 / (cosine_cycle_iters - warmup_iters).max(1) as f64;
        min_lr + 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()) * (max_lr - min_lr)
    } else {
        min_lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_peak_decay_floor() {
        let lr = |t| lr_cosine_schedule(t, 1.0, 0.1, 10, 110);
        assert_eq!(lr(0), 0.0);
        assert!((lr(5) - 0.5).abs() < 1e-12);
        assert!((lr(10) - 1.0).abs() < 1e-12);
        assert!((lr(60) - 0.55).abs() < 1e-12);
        assert!((lr(110) - 0.1).abs() < 1e-12);
        assert_eq!(lr(500), 0.1);
    }
}
