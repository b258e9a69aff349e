//! Ports of the course's tests/test_deduplication.py (same inputs, same assertions: output
//! contents compared as a multiset, files counted), plus edge cases and a scale test of
//! MinHash + LSH with planted near-duplicates.

mod common;
use common::{html_pages, shared};

use std::path::{Path, PathBuf};

use lm_data::dedup::{
    MinHasher, MinhashParams, cluster_near_duplicates, exact_line_dedup, jaccard, minhash_dedup,
    normalize_text, shingle_hashes,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn fixtures() -> PathBuf {
    shared().join("cs336/a4/fixtures")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The sorted contents of the files of `dir` (a multiset).
fn contents(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = files_in(dir)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    all.sort();
    all
}

fn line_dup_inputs() -> Vec<PathBuf> {
    files_in(&fixtures().join("documents_with_line_duplicates"))
}

#[test]
fn test_exact_line_deduplication() {
    let out = tempfile::tempdir().unwrap();
    let inputs = line_dup_inputs();
    assert_eq!(inputs.len(), 5);
    exact_line_dedup(&inputs, out.path()).unwrap();
    assert_eq!(files_in(out.path()).len(), 5);
    let expected = contents(&fixtures().join("documents_line_deduplicated"));
    assert_eq!(contents(out.path()), expected);
    assert_eq!(expected.iter().filter(|c| c.is_empty()).count(), 2);
}

#[test]
fn test_minhash_deduplication_exact_duplicates() {
    let out = tempfile::tempdir().unwrap();
    let inputs = line_dup_inputs();
    minhash_dedup(&inputs, 100, 10, 5, 0.8, out.path()).unwrap();
    assert_eq!(files_in(out.path()).len(), 4);
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    let mut expected: Vec<String> = inputs[1..].iter().map(read).collect(); // doc2..doc5
    expected.sort();
    assert_eq!(read(&inputs[0]), read(&inputs[1]));
    assert_eq!(contents(out.path()), expected);
}

#[test]
fn test_minhash_deduplication_fuzzy_duplicates() {
    let out = tempfile::tempdir().unwrap();
    let dir = fixtures().join("documents_with_fuzzy_duplicates");
    let inputs = files_in(&dir);
    assert_eq!(inputs.len(), 3);
    minhash_dedup(&inputs, 500, 50, 5, 0.8, out.path()).unwrap();
    let got = contents(out.path());
    assert_eq!(got.len(), 2);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let pytorch = read("pytorch_license.txt");
    assert!(got.contains(&pytorch));
    let mit: Vec<String> = got.into_iter().filter(|c| *c != pytorch).collect();
    assert!(
        mit == [read("rails_mit_license.txt")] || mit == [read("react_mit_license.txt")],
        "one MIT license must remain"
    );
}

// Our own checks.

fn write_docs(dir: &Path, docs: &[(&str, &str)]) -> Vec<PathBuf> {
    docs.iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

#[test]
fn exact_dedup_missing_trailing_newline_and_crlf() {
    // A line is compared without its terminator: "shared" at the end of a.txt (no newline),
    // "shared\n" in b.txt and "shared\r\n" in c.txt are one line occurring three times, so it
    // goes from all three; kept lines keep their own bytes (terminator or not).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let inputs = write_docs(
        dir.path(),
        &[
            ("a.txt", "only in a\nshared"),
            ("b.txt", "shared\nonly in b"),
            ("c.txt", "twice\r\nshared\r\ntwice\nlast\r\n"),
        ],
    );
    let report = exact_line_dedup(&inputs, &out).unwrap();
    let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap();
    assert_eq!(read("a.txt"), "only in a\n");
    assert_eq!(read("b.txt"), "only in b");
    assert_eq!(read("c.txt"), "last\r\n");
    assert_eq!(report.lines, 2 + 2 + 4);
    assert_eq!(report.kept_lines, 3);
    // No temp files are left behind.
    assert_eq!(files_in(&out).len(), 3);
}

#[test]
fn duplicate_file_names_are_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["x", "y"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join("doc.txt"), "text\n").unwrap();
    }
    let inputs = [dir.path().join("x/doc.txt"), dir.path().join("y/doc.txt")];
    let err = exact_line_dedup(&inputs, &dir.path().join("out"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x/doc.txt") && err.contains("y/doc.txt"),
        "{err}"
    );
    let err = minhash_dedup(&inputs, 10, 2, 3, 0.8, &dir.path().join("out2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("same file name"), "{err}");
}

#[test]
fn missing_input_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.txt");
    let err = exact_line_dedup(std::slice::from_ref(&missing), &dir.path().join("o"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.txt"), "{err}");
}

#[test]
fn minhash_parameters_are_checked() {
    let err = MinhashParams::new(100, 7, 5, 0.8).unwrap_err().to_string();
    assert!(
        err.contains("100") && err.contains('7') && err.contains("divisible"),
        "{err}"
    );
    assert!(MinhashParams::new(100, 0, 5, 0.8).is_err());
    assert!(MinhashParams::new(100, 10, 0, 0.8).is_err());
    assert!(MinhashParams::new(100, 10, 5, 1.5).is_err());
    let dir = tempfile::tempdir().unwrap();
    let err = minhash_dedup(&line_dup_inputs(), 100, 7, 5, 0.8, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("num_hashes (100)") && err.contains("num_bands (7)"),
        "{err}"
    );
}

#[test]
fn normalisation_as_the_handout() {
    assert_eq!(
        normalize_text("  Héllo,   WORLD!\tÇa va?\n  Naïve café-au-lait  "),
        "hello world ca va naive cafeaulait"
    );
    assert_eq!(
        normalize_text("snake_case 3.14 don't"),
        "snake_case 314 dont"
    );
    assert_eq!(normalize_text("!!! ..."), "");
    // Whitespace and case differences alone leave the same shingles.
    let a = shingle_hashes(&normalize_text("The quick brown fox jumps."), 2);
    let b = shingle_hashes(&normalize_text("the  QUICK\nbrown fox, jumps"), 2);
    assert_eq!(a, b);
    assert_eq!(a.len(), 4);
    // Fewer words than n: one shingle; no words: none.
    assert_eq!(shingle_hashes("two words", 5).len(), 1);
    assert!(shingle_hashes("", 5).is_empty());
}

#[test]
fn jaccard_of_sets() {
    assert_eq!(jaccard(&[1, 2, 3, 4], &[3, 4, 5, 6]), 2.0 / 6.0);
    assert_eq!(jaccard(&[1], &[1]), 1.0);
    assert_eq!(jaccard(&[], &[1]), 0.0);
    assert_eq!(jaccard(&[], &[]), 1.0);
}

#[test]
fn signatures_estimate_jaccard_and_are_deterministic() {
    let params = MinhashParams::new(512, 64, 1, 0.5).unwrap();
    let hasher = MinHasher::new(&params);
    let a: Vec<u64> = (0..1000u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let mut b: Vec<u64> = a[300..].to_vec();
    b.extend((5000..5300u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    b.sort_unstable();
    let mut a_sorted = a.clone();
    a_sorted.sort_unstable();
    let truth = jaccard(&a_sorted, &b); // 700 / 1300
    let (sa, sb) = (hasher.signature(&a_sorted), hasher.signature(&b));
    let agree = sa.iter().zip(&sb).filter(|(x, y)| x == y).count() as f64 / 512.0;
    assert!((agree - truth).abs() < 0.07, "estimate {agree} vs {truth}");
    assert_eq!(sa, MinHasher::new(&params).signature(&a_sorted));
}

/// Random "words" and documents drawn from them.
struct Corpus {
    rng: ChaCha8Rng,
    words: Vec<String>,
}

impl Corpus {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let words = (0..20_000)
            .map(|_| {
                let len = rng.random_range(3..10);
                (0..len)
                    .map(|_| rng.random_range(b'a'..=b'z') as char)
                    .collect()
            })
            .collect();
        Self { rng, words }
    }

    fn document(&mut self, len: usize) -> Vec<String> {
        (0..len)
            .map(|_| self.words[self.rng.random_range(0..self.words.len())].clone())
            .collect()
    }

    /// `doc` with `edits` random words replaced.
    fn edit(&mut self, doc: &[String], edits: usize) -> Vec<String> {
        let mut out = doc.to_vec();
        for _ in 0..edits {
            let at = self.rng.random_range(0..out.len());
            out[at] = self.words[self.rng.random_range(0..self.words.len())].clone();
        }
        out
    }
}

#[test]
fn scale_planted_near_duplicates_are_found_and_nothing_else_merges() {
    let mut corpus = Corpus::new(7);
    let base: Vec<Vec<String>> = (0..1500).map(|_| corpus.document(300)).collect();
    let mut docs: Vec<Vec<String>> = base.clone();
    // 400 near-duplicates (1 to 4 words replaced: Jaccard ≈ 0.88–0.97) and 100 documents
    // sharing a lot with a base but below 0.5 (12% of the words replaced).
    let mut planted = Vec::new();
    let mut dissimilar = Vec::new();
    for (k, doc) in base.iter().enumerate().take(400) {
        docs.push(corpus.edit(doc, 1 + k % 4));
        planted.push((k, docs.len() - 1));
    }
    for (k, doc) in base.iter().enumerate().take(500).skip(400) {
        docs.push(corpus.edit(doc, 36));
        dissimilar.push((k, docs.len() - 1));
    }
    let texts: Vec<String> = docs.iter().map(|d| d.join(" ")).collect();
    assert_eq!(texts.len(), 2000);

    let params = MinhashParams::new(128, 32, 5, 0.8).unwrap();
    let hasher = MinHasher::new(&params);
    let features: Vec<_> = texts.iter().map(|t| hasher.features(t)).collect();
    let sim = |a: usize, b: usize| jaccard(&features[a].shingles, &features[b].shingles);
    for &(a, b) in &planted {
        assert!(sim(a, b) >= 0.8, "planted pair {a},{b}: {}", sim(a, b));
    }
    for &(a, b) in &dissimilar {
        assert!(sim(a, b) < 0.5, "dissimilar pair {a},{b}: {}", sim(a, b));
    }

    let clustering = cluster_near_duplicates(&features, 0.8);
    let found = planted
        .iter()
        .filter(|&&(a, b)| clustering.representative[a] == clustering.representative[b])
        .count();
    let recall = found as f64 / planted.len() as f64;
    assert!(recall >= 0.95, "recall {recall}");
    // No false merges: every document outside the planted pairs is its own cluster, the
    // first of each planted pair is the one kept, and every merge was verified ≥ 0.8.
    for i in 0..docs.len() {
        let r = clustering.representative[i] as usize;
        if r != i {
            assert!(sim(r, i) >= 0.8, "{i} merged into {r} at {}", sim(r, i));
        }
    }
    for &(a, b) in &dissimilar {
        assert!(clustering.is_kept(a) && clustering.is_kept(b));
    }
    assert_eq!(clustering.report.kept, 2000 - found);
    assert_eq!(clustering.report.similar_pairs, found);
    assert_eq!(clustering.report.exact_duplicates, 0);
}

#[test]
fn many_exact_copies_collapse_without_quadratic_candidates() {
    let params = MinhashParams::new(100, 10, 5, 0.8).unwrap();
    let hasher = MinHasher::new(&params);
    let mut texts = vec!["the same page of boilerplate text, again and again".to_string(); 3000];
    texts.push("something else entirely, with other words in it".into());
    texts.push(String::new());
    texts.push("   ...   ".into()); // normalises to nothing, like the empty document
    let features: Vec<_> = texts.iter().map(|t| hasher.features(t)).collect();
    let c = cluster_near_duplicates(&features, 0.8);
    assert_eq!(c.report.kept, 3);
    assert_eq!(c.report.exact_duplicates, 2999 + 1);
    assert_eq!(c.report.candidate_pairs, 0);
    assert!(c.is_kept(0) && c.is_kept(3000) && c.is_kept(3001) && !c.is_kept(3002));
}

/// Throughput of MinHash + LSH on real pages: `$LM_ASSETS/html` (4,898 HTML pages in 25
/// languages) with a crude tag strip, course parameters, one thread and all threads. Run with
/// `cargo test --release -p lm-data --test dedup -- --ignored --nocapture minhash_speed`; set
/// `LM_BENCH_DUMP=DIR` to also write the stripped texts (to time another tool on them).
#[test]
#[ignore = "benchmark; needs $LM_ASSETS/html"]
fn minhash_speed_on_real_html() {
    let blocks = regex::Regex::new(r"(?is)<(script|style)\b.*?</(script|style)\s*>").unwrap();
    let tags = regex::Regex::new(r"(?s)<[^>]*>").unwrap();
    let texts: Vec<String> = html_pages()
        .expect("the HTML set")
        .iter()
        .map(|page| {
            let html = String::from_utf8_lossy(&std::fs::read(&page.path).unwrap()).into_owned();
            tags.replace_all(&blocks.replace_all(&html, " "), " ")
                .into_owned()
        })
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    if let Some(dir) = std::env::var_os("LM_BENCH_DUMP") {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, t) in texts.iter().enumerate() {
            std::fs::write(Path::new(&dir).join(format!("{i:05}.txt")), t).unwrap();
        }
    }
    use rayon::prelude::*;
    for (num_hashes, num_bands) in [(100, 10), (500, 50)] {
        let params = MinhashParams::new(num_hashes, num_bands, 5, 0.8).unwrap();
        let hasher = MinHasher::new(&params);
        let run = || {
            let start = std::time::Instant::now();
            let features: Vec<_> = texts.par_iter().map(|t| hasher.features(t)).collect();
            let clustering = cluster_near_duplicates(&features, 0.8);
            (start.elapsed().as_secs_f64(), clustering.report)
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for (label, (secs, report)) in [("1 thread", one.install(run)), ("all threads", run())] {
            println!(
                "minhash {num_hashes}/{num_bands} {label}: {} docs ({:.1} MB) in {secs:.3} s = \
                 {:.0} docs/s, {:.1} MB/s; kept {}, exact dups {}, candidates {}, similar {}",
                texts.len(),
                bytes as f64 / 1e6,
                texts.len() as f64 / secs,
                bytes as f64 / 1e6 / secs,
                report.kept,
                report.exact_duplicates,
                report.candidate_pairs,
                report.similar_pairs,
            );
        }
    }
}
