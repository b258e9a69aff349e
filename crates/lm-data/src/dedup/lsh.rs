//! Locality-sensitive hashing over MinHash band keys, exact verification of the candidates,
//! and clustering with union-find.
//!
//! Exact duplicates (identical shingle sets) are joined first and only one of each group
//! enters LSH, so thousands of copies of one page do not make a quadratic bucket. Candidate
//! pairs are the pairs sharing a bucket in any band; a pair joins a cluster only if the true
//! Jaccard similarity of the two shingle sets reaches the threshold (LSH only proposes).
//! Clusters are the connected components of verified pairs; every step is deterministic and
//! independent of thread count.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::minhash::mix_all;
use super::union_find::UnionFind;

/// What LSH needs of one document: its sorted shingle hashes and one key per band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocFeatures {
    pub shingles: Vec<u64>,
    pub band_keys: Vec<u64>,
}

/// Counts of one MinHash dedup run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MinhashReport {
    pub documents: usize,
    pub kept: usize,
    /// Documents with exactly the same shingle set as an earlier one.
    pub exact_duplicates: usize,
    /// Distinct pairs sharing a bucket in at least one band.
    pub candidate_pairs: usize,
    /// Candidate pairs whose Jaccard similarity reached the threshold.
    pub similar_pairs: usize,
}

/// Each document's cluster representative (the smallest index in its cluster).
#[derive(Debug, Clone)]
pub struct Clustering {
    pub representative: Vec<u32>,
    pub report: MinhashReport,
}

impl Clustering {
    /// Whether document `i` is the one its cluster keeps (the first in input order).
    pub fn is_kept(&self, i: usize) -> bool {
        self.representative[i] as usize == i
    }
}

/// Jaccard similarity of two sorted, distinct sets (two empty sets are identical: 1).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / (a.len() + b.len() - common) as f64
}

/// Clusters documents whose Jaccard similarity is ≥ `threshold` (transitively).
pub fn cluster_near_duplicates(docs: &[DocFeatures], threshold: f64) -> Clustering {
    let n = docs.len();
    let mut sets = UnionFind::new(n);

    // Exact duplicates: group by a hash of the whole set, confirm by comparing the sets.
    let mut by_set: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
    let mut unique: Vec<u32> = Vec::with_capacity(n);
    let mut exact_duplicates = 0;
    for (i, doc) in docs.iter().enumerate() {
        let group = by_set.entry(mix_all(&doc.shingles)).or_default();
        match group
            .iter()
            .find(|&&j| docs[j as usize].shingles == doc.shingles)
        {
            Some(&j) => {
                sets.union(j, i as u32);
                exact_duplicates += 1;
            }
            None => {
                group.push(i as u32);
                unique.push(i as u32);
            }
        }
    }
    drop(by_set);

    let num_bands = docs.first().map_or(0, |d| d.band_keys.len());
    let mut candidates: Vec<(u32, u32)> = (0..num_bands)
        .into_par_iter()
        .flat_map_iter(|band| {
            let mut buckets: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
            for &i in &unique {
                buckets
                    .entry(docs[i as usize].band_keys[band])
                    .or_default()
                    .push(i);
            }
            let mut pairs = Vec::new();
            for members in buckets.values().filter(|m| m.len() > 1) {
                for (k, &a) in members.iter().enumerate() {
                    pairs.extend(members[k + 1..].iter().map(|&b| (a, b)));
                }
            }
            pairs
        })
        .collect();
    candidates.par_sort_unstable();
    candidates.dedup();

    let similar: Vec<(u32, u32)> = candidates
        .par_iter()
        .copied()
        .filter(|&(a, b)| {
            jaccard(&docs[a as usize].shingles, &docs[b as usize].shingles) >= threshold
        })
        .collect();
    for &(a, b) in &similar {
        sets.union(a, b);
    }

    let representative: Vec<u32> = (0..n as u32).map(|i| sets.find(i)).collect();
    let kept = representative
        .iter()
        .enumerate()
        .filter(|&(i, &r)| r as usize == i)
        .count();
    Clustering {
        representative,
        report: MinhashReport {
            documents: n,
            kept,
            exact_duplicates,
            candidate_pairs: candidates.len(),
            similar_pairs: similar.len(),
        },
    }
}
