//! MinHash signatures of documents' word n-gram sets, and the file-level [`minhash_dedup`].
//!
//! Text is normalised as the handout says (lowercase, NFD with accents removed, punctuation
//! removed, whitespace collapsed), split into words, and each word n-gram is hashed to 64 bits
//! (the "shingle"). The i-th MinHash function is `h_i(x) = (a_i·x + b_i) >> 32` with seeded
//! random odd `a_i` and random `b_i` (multiply-add-shift, a universal family), so a signature
//! costs one multiply-add per shingle and function. Each band of `rows` signature values is
//! hashed to one 64-bit bucket key; only the keys and the shingle sets (for verification) are
//! kept per document.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use unicode_normalization::char::{decompose_canonical, is_combining_mark};
use xxhash_rust::xxh3::xxh3_64;

use super::lsh::{DocFeatures, MinhashReport, cluster_near_duplicates};
use super::{create_dir, output_paths};
use crate::error::{DataError, Result};

/// The settings of a MinHash + LSH run, validated by [`MinhashParams::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct MinhashParams {
    pub num_hashes: usize,
    pub num_bands: usize,
    pub ngrams: usize,
    pub jaccard_threshold: f64,
    /// Seeds the hash functions: the same seed gives the same signatures everywhere.
    pub seed: u64,
}

impl MinhashParams {
    pub const DEFAULT_SEED: u64 = 0x5eed_0fd0_c5c5;

    pub fn new(
        num_hashes: usize,
        num_bands: usize,
        ngrams: usize,
        jaccard_threshold: f64,
    ) -> Result<Self> {
        let bad = |reason: String| Err(DataError::invalid("minhash parameters", reason));
        if num_hashes == 0 || num_bands == 0 {
            return bad(format!(
                "num_hashes ({num_hashes}) and num_bands ({num_bands}) must be positive"
            ));
        }
        if !num_hashes.is_multiple_of(num_bands) {
            return bad(format!(
                "num_hashes ({num_hashes}) must be divisible by num_bands ({num_bands})"
            ));
        }
        if ngrams == 0 {
            return bad("ngrams must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&jaccard_threshold) {
            return bad(format!(
                "jaccard_threshold ({jaccard_threshold}) must be within [0, 1]"
            ));
        }
        Ok(Self {
            num_hashes,
            num_bands,
            ngrams,
            jaccard_threshold,
            seed: Self::DEFAULT_SEED,
        })
    }

    pub fn rows_per_band(&self) -> usize {
        self.num_hashes / self.num_bands
    }
}

/// Lowercase, NFD, accents (combining marks) and punctuation removed, runs of whitespace
/// collapsed to one space, no leading or trailing space. Word characters are letters, digits
/// and '_' (Python's `\w`); every other non-space character is punctuation and is deleted.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space_pending = false;
    let mut push = |c: char| {
        if c.is_alphanumeric() || c == '_' {
            if space_pending && !out.is_empty() {
                out.push(' ');
            }
            space_pending = false;
            out.push(c);
        } else if c.is_whitespace() {
            space_pending = true;
        }
    };
    for c in text.chars() {
        if c.is_ascii() {
            push(c.to_ascii_lowercase());
        } else {
            // Decomposing char by char equals NFD of the whole text once every combining
            // mark is dropped (NFD's reordering only moves marks), and skips the reordering
            // buffer of the streaming normaliser.
            for lower in c.to_lowercase() {
                decompose_canonical(lower, |d| {
                    if !is_combining_mark(d) {
                        push(d);
                    }
                });
            }
        }
    }
    out
}

/// The sorted, distinct 64-bit hashes of the word `n`-grams of normalised `text`. A text of
/// fewer than `n` words (but at least one) is a single shingle; an empty text has none.
pub fn shingle_hashes(normalized: &str, n: usize) -> Vec<u64> {
    let words: Vec<u64> = normalized
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| xxh3_64(w.as_bytes()))
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut shingles: Vec<u64> = words.windows(n.min(words.len())).map(mix_all).collect();
    shingles.sort_unstable();
    shingles.dedup();
    shingles
}

/// An order-sensitive hash of a sequence of 64-bit values (n-grams, bands, whole sets).
pub(crate) fn mix_all(values: &[u64]) -> u64 {
    let h = values.iter().fold(values.len() as u64, |h, &v| {
        (h.rotate_left(23) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    });
    finalize(h)
}

/// The splitmix64 finaliser: every input bit affects every output bit.
fn finalize(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The seeded hash functions of one run; turns texts into [`DocFeatures`].
#[derive(Debug, Clone)]
pub struct MinHasher {
    params: MinhashParams,
    mul: Vec<u64>,
    add: Vec<u64>,
}

impl MinHasher {
    pub fn new(params: &MinhashParams) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let (mut mul, mut add) = (Vec::new(), Vec::new());
        for _ in 0..params.num_hashes {
            mul.push(rng.random::<u64>() | 1);
            add.push(rng.random::<u64>());
        }
        Self {
            params: params.clone(),
            mul,
            add,
        }
    }

    pub fn params(&self) -> &MinhashParams {
        &self.params
    }

    /// The MinHash signature of a shingle set (all `u32::MAX` for an empty set).
    pub fn signature(&self, shingles: &[u64]) -> Vec<u32> {
        let mut sig = vec![u32::MAX; self.mul.len()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { min_hashes_avx2(&mut sig, &self.mul, &self.add, shingles) };
            return sig;
        }
        min_hashes(&mut sig, &self.mul, &self.add, shingles);
        sig
    }

    /// One bucket key per band of the signature.
    pub fn band_keys(&self, signature: &[u32]) -> Vec<u64> {
        let mut band = Vec::with_capacity(self.params.rows_per_band() + 1);
        signature
            .chunks_exact(self.params.rows_per_band())
            .enumerate()
            .map(|(i, rows)| {
                band.clear();
                band.push(i as u64);
                band.extend(rows.iter().map(|&r| u64::from(r)));
                mix_all(&band)
            })
            .collect()
    }

    /// Normalise, shingle, sign and band one document.
    pub fn features(&self, text: &str) -> DocFeatures {
        let shingles = shingle_hashes(&normalize_text(text), self.params.ngrams);
        let band_keys = self.band_keys(&self.signature(&shingles));
        DocFeatures {
            shingles,
            band_keys,
        }
    }
}

/// `sig[i] = min(sig[i], min over x of h_i(x))`: the hot loop (one multiply-add per shingle
/// and hash function), written so the compiler vectorises it across hash functions.
#[inline(always)]
fn min_hashes(sig: &mut [u32], mul: &[u64], add: &[u64], shingles: &[u64]) {
    for &x in shingles {
        for ((s, &a), &b) in sig.iter_mut().zip(mul).zip(add) {
            *s = (*s).min((a.wrapping_mul(x).wrapping_add(b) >> 32) as u32);
        }
    }
}

/// [`min_hashes`] compiled for AVX2 (4 lanes of 64-bit arithmetic); same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn min_hashes_avx2(sig: &mut [u32], mul: &[u64], add: &[u64], shingles: &[u64]) {
    min_hashes(sig, mul, add, shingles);
}

/// Fuzzy document dedup over files (the course's adapter): documents whose shingle sets have
/// a Jaccard similarity ≥ `jaccard_threshold` (found through LSH candidates, then verified
/// exactly) are clustered, and only the first file of each cluster in input order is copied
/// to `out_dir/<its file name>`. Files are read as UTF-8 (invalid bytes replaced).
pub fn minhash_dedup(
    inputs: &[PathBuf],
    num_hashes: usize,
    num_bands: usize,
    ngrams: usize,
    jaccard_threshold: f64,
    out_dir: &Path,
) -> Result<MinhashReport> {
    let params = MinhashParams::new(num_hashes, num_bands, ngrams, jaccard_threshold)?;
    let outputs = output_paths(inputs, out_dir)?;
    let hasher = MinHasher::new(&params);
    let features = inputs
        .par_iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
            Ok(hasher.features(&String::from_utf8_lossy(&bytes)))
        })
        .collect::<Result<Vec<_>>>()?;
    let clustering = cluster_near_duplicates(&features, jaccard_threshold);

    create_dir(out_dir)?;
    (0..inputs.len())
        .into_par_iter()
        .filter(|&i| clustering.is_kept(i))
        .try_for_each(|i| copy_atomic(&inputs[i], &outputs[i]))?;
    Ok(clustering.report)
}

fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).map_err(|e| DataError::io(from, e))?;
    Ok(lm_core::fsutil::write_atomic(to, &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectorised_and_portable_signatures_agree() {
        let hasher = MinHasher::new(&MinhashParams::new(130, 10, 5, 0.8).unwrap());
        let shingles: Vec<u64> = (0..777u64).map(|i| finalize(i + 1)).collect();
        let mut portable = vec![u32::MAX; 130];
        min_hashes(&mut portable, &hasher.mul, &hasher.add, &shingles);
        assert_eq!(hasher.signature(&shingles), portable);
        assert!(portable.iter().all(|&v| v < u32::MAX));
    }
}
