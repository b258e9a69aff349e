//! Candidate selection without sorting the vocabulary: top-k and the top-p nucleus.
//!
//! Candidates are `(value, token)` pairs ordered by [`more_likely`]: larger value first,
//! equal values to the lower token id, so every selection is deterministic.

use std::cmp::Ordering;

/// Rounding slack for "the nucleus mass reaches `top_p`", relative to the total mass: without
/// it, probabilities `.5 + .3` summed in floating point may fall just short of `.8`.
const TOP_P_SLACK: f64 = 1e-6;

/// Below this many candidates the nucleus search just sorts them.
const SORT_BELOW: usize = 64;

/// `a` before `b` when `a` is more likely; equal values go to the lower token id, so every
/// selection below is deterministic.
pub fn more_likely(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// The mass the nucleus must reach, less a rounding slack.
pub fn nucleus_target(top_p: f64, total: f64) -> f64 {
    top_p * total - TOP_P_SLACK * total
}

/// Weights `t` such that, if the tokens with weight `>= t` hold the target mass, the
/// nucleus is among them (they precede every other token in [`more_likely`] order).
/// `(1 - top_p) / 32` of the total usually qualifies for an LM and leaves at most
/// `32 / (1 - top_p)` tokens; `(1 - top_p) / n` always does (the rest hold less than
/// `n t`), up to rounding.
pub fn nucleus_floors(top_p: f64, total: f64, n: usize) -> [f32; 2] {
    let rest = (1.0 - top_p) * total;
    [(rest / 32.0) as f32, (rest / n.max(1) as f64) as f32]
}

/// Keeps the nucleus of the candidates (weights, not normalised): the shortest prefix in
/// [`more_likely`] order whose mass reaches `top_p` of their total, at least one token.
pub fn keep_nucleus(cands: &mut Vec<(f32, u32)>, top_p: f64) {
    let total: f64 = cands.iter().map(|c| c.0 as f64).sum();
    let target = nucleus_target(top_p, total);
    let mass = |t: f32| -> f64 { cands.iter().filter(|c| c.0 >= t).map(|c| c.0 as f64).sum() };
    if let Some(floor) = nucleus_floors(top_p, total, cands.len())
        .into_iter()
        .find(|&t| mass(t) >= target)
    {
        cands.retain(|c| c.0 >= floor);
    }
    select_nucleus(cands, target);
}

/// Puts the `k` most likely `(logit, token)` pairs in `cands` (NaN counts as `-inf`).
///
/// The `k`-th largest of any subset is at most the true `k`-th largest, so every top-k
/// token is `>=` that of a strided sample: one pass keeps only those (about
/// `k n / sample` tokens) and the quickselect runs on them, not on the whole vocabulary.
pub fn top_k_candidates(
    logits: &[f32],
    k: usize,
    cands: &mut Vec<(f32, u32)>,
    sample: &mut Vec<f32>,
) {
    let n = logits.len();
    let stride = n / (16 * k).max(4096);
    let mut floor = f32::NEG_INFINITY;
    if stride >= 2 {
        sample.clear();
        sample.extend(logits.iter().step_by(stride).filter(|x| !x.is_nan()));
        if sample.len() >= k {
            sample.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            floor = sample[k - 1];
        }
    }
    cands.clear();
    let not_nan = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    let all = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| (not_nan(x), i as u32));
    cands.extend(all.filter(|c| c.0 >= floor));
    if cands.len() > k {
        cands.select_nth_unstable_by(k - 1, more_likely);
        cands.truncate(k);
    }
}

/// Truncates `cands` to the shortest [`more_likely`] prefix whose mass reaches `target`
/// (at least one), by quickselect on mass: split the range at its median, keep the upper
/// half whole if it falls short, else search inside it. Expected O(n); the kept candidates
/// are not necessarily sorted.
pub fn select_nucleus(cands: &mut Vec<(f32, u32)>, target: f64) {
    // `cands[..lo]` are kept, with mass `acc`; the nucleus ends inside `lo..hi`.
    let (mut lo, mut hi, mut acc) = (0, cands.len(), 0.0f64);
    while hi - lo > SORT_BELOW {
        let mid = lo + (hi - lo) / 2;
        cands[lo..hi].select_nth_unstable_by(mid - lo, more_likely);
        let upper: f64 = cands[lo..=mid].iter().map(|c| c.0 as f64).sum();
        if acc + upper >= target {
            hi = mid + 1;
        } else {
            acc += upper;
            lo = mid + 1;
        }
    }
    cands[lo..hi].sort_unstable_by(more_likely);
    let mut keep = hi;
    for (n, c) in cands[lo..hi].iter().enumerate() {
        acc += c.0 as f64;
        if acc >= target {
            keep = lo + n + 1;
            break;
        }
    }
    cands.truncate(keep.max(1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn nucleus_is_the_smallest_prefix_reaching_top_p() {
        // Probabilities .5/.3/.15/.05 in shuffled token order.
        let probs = [(0.15f32, 0u32), (0.5, 1), (0.05, 2), (0.3, 3)];
        for (top_p, expect) in [(0.8, vec![1, 3]), (0.81, vec![1, 3, 0]), (0.3, vec![1])] {
            let mut c = probs.to_vec();
            keep_nucleus(&mut c, top_p);
            assert_eq!(
                c.iter().map(|c| c.1).collect::<Vec<_>>(),
                expect,
                "top_p {top_p}"
            );
        }
    }

    fn kept_ids(mut c: Vec<(f32, u32)>) -> Vec<u32> {
        c.sort_unstable_by(more_likely);
        c.into_iter().map(|c| c.1).collect()
    }

    #[test]
    fn nucleus_of_a_flat_distribution_keeps_the_lowest_ids() {
        let mut c: Vec<(f32, u32)> = (0..1000).rev().map(|i| (1.0, i)).collect();
        keep_nucleus(&mut c, 0.5);
        assert_eq!(kept_ids(c), (0..500).collect::<Vec<u32>>());
    }

    #[test]
    fn nucleus_quickselect_agrees_with_a_full_sort() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [1usize, 5, 63, 64, 65, 300, 5000] {
            for (top_p, spread) in [(0.5, 1.0f32), (0.9, 6.0), (0.99, 12.0), (0.999, 3.0)] {
                let c: Vec<(f32, u32)> = (0..n as u32)
                    .map(|i| ((rng.random::<f32>() * spread).exp(), i))
                    .collect();
                let mut sorted = c.clone();
                sorted.sort_unstable_by(more_likely);
                let total: f64 = c.iter().map(|c| c.0 as f64).sum();
                let target = top_p * total - TOP_P_SLACK * total;
                let (mut acc, mut want) = (0.0, Vec::new());
                for (w, i) in sorted {
                    want.push(i);
                    acc += w as f64;
                    if acc >= target {
                        break;
                    }
                }
                let mut got = c;
                keep_nucleus(&mut got, top_p);
                assert_eq!(kept_ids(got), want, "n {n}, top_p {top_p}");
            }
        }
    }

    #[test]
    fn top_k_prefilter_agrees_with_a_full_select() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for n in [10usize, 9000, 20_000] {
            // Few distinct values, so ties cross the k-th place; some NaN.
            let logits: Vec<f32> = (0..n)
                .map(|_| match rng.random_range(0..50) {
                    0 => f32::NAN,
                    v => (v % 17) as f32,
                })
                .collect();
            for k in [1usize, 3, 50, 700].into_iter().filter(|&k| k < n) {
                let mut want: Vec<(f32, u32)> = logits
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| (if x.is_nan() { f32::NEG_INFINITY } else { x }, i as u32))
                    .collect();
                want.sort_unstable_by(more_likely);
                want.truncate(k);
                let (mut got, mut sample) = (Vec::new(), Vec::new());
                top_k_candidates(&logits, k, &mut got, &mut sample);
                got.sort_unstable_by(more_likely);
                assert_eq!(got, want, "n {n}, k {k}");
            }
        }
    }
}
