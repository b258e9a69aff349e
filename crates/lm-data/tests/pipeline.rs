//! `lm_data::pipeline` end to end on WARC files made from real HTML pages: every stage's
//! counters, PII masking, cross-file deduplication, damaged records, resuming, sharding with
//! a separate merge (same result as one run), Parquet output and the token file.

mod common;
use common::{assets, shared};

use std::path::{Path, PathBuf};

use lm_data::pipeline::{PipelineConfig, ShardSpec, Stats, merge, run};
use lm_data::warc::{RecordType, WarcFileWriter, WarcVersion};

fn page(rel: &str) -> Vec<u8> {
    let p = assets().join("html").join(rel);
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (run shared/fetch-assets --html)", p.display()))
}

fn write_warc(path: &Path, pages: &[(&str, u16, Vec<u8>)]) {
    let mut w = WarcFileWriter::create(path, WarcVersion::V1_0).unwrap();
    w.writer()
        .write_record(&RecordType::Warcinfo, &[], b"software: lm-data test\r\n")
        .unwrap();
    for (url, status, html) in pages {
        let req = format!("GET / HTTP/1.1\r\nHost: {url}\r\n\r\n");
        w.writer()
            .write_record(
                &RecordType::Request,
                &[("WARC-Target-URI", url)],
                req.as_bytes(),
            )
            .unwrap();
        let mut block =
            format!("HTTP/1.1 {status} X\r\nContent-Type: text/html; charset=utf-8\r\n\r\n")
                .into_bytes();
        block.extend_from_slice(html);
        w.writer()
            .write_record(&RecordType::Response, &[("WARC-Target-URI", url)], &block)
            .unwrap();
    }
    w.finish().unwrap();
}

const EN: [&str; 6] = [
    "debian-handbook/en-US/apt.html",
    "debian-handbook/en-US/security.html",
    "debian-handbook/en-US/packaging-system.html",
    "debian-handbook/en-US/sect.apt-get.html",
    "debian-handbook/en-US/sect.firewall-packet-filtering.html",
    "debian-handbook/en-US/unix-services.html",
];

/// Two WARC files: A has 4 English pages, a German page, a 404 and a tiny page; B has a
/// copy of A's first page under another URL, 2 English pages (one with e-mail addresses), and
/// trailing garbage (a damaged record).
fn inputs(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut a: Vec<(&str, u16, Vec<u8>)> = EN[..4].iter().map(|p| (*p, 200, page(p))).collect();
    a.push(("de", 200, page("debian-handbook/de-DE/apt.html")));
    a.push((
        "missing",
        404,
        b"<html><body>not found</body></html>".to_vec(),
    ));
    a.push(("tiny", 200, b"<html><body><p>hi</p></body></html>".to_vec()));
    write_warc(&input.join("a.warc.gz"), &a);
    let with_email = String::from_utf8(page(EN[5])).unwrap().replacen(
        "<body",
        "<body><p>Write to alice@example.org or bob@example.com.</p><span",
        1,
    );
    let b = vec![
        ("copy", 200, page(EN[0])),
        (EN[4], 200, page(EN[4])),
        (EN[5], 200, with_email.into_bytes()),
    ];
    write_warc(&input.join("b.warc.gz"), &b);
    let mut bytes = std::fs::read(input.join("b.warc.gz")).unwrap();
    bytes.extend_from_slice(
        b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 999\r\n\r\ntruncated",
    );
    std::fs::write(input.join("b.warc.gz"), bytes).unwrap();
    input
}

fn config(dir: &Path, input: &Path, out: &str, extra: &str) -> PipelineConfig {
    let text = format!(
        r#"
[input]
paths = ["{}"]
[output]
dir = "{}"
{extra}
[filters]
language_model = "{}"
languages = ["en"]
"#,
        input.display(),
        dir.join(out).display(),
        shared().join("assets/fasttext/lid.176.ftz").display()
    );
    let path = dir.join(format!("{out}.toml"));
    std::fs::write(&path, text).unwrap();
    PipelineConfig::load(&path).unwrap()
}

fn count(stats: &Stats, stage: &str) -> (u64, u64) {
    let c = &stats.stages.iter().find(|(n, _)| n == stage).unwrap().1;
    (c.seen, c.dropped)
}

#[test]
fn stages_dedup_resume_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let input = inputs(dir.path());
    let cfg = config(dir.path(), &input, "one", "");
    let report = run(&cfg, None, &|_, _| {}).unwrap();
    assert_eq!((report.files.len(), report.skipped), (2, 0));
    let (stats, outputs) = report.merged.unwrap();
    assert_eq!(stats.documents, 9, "{}", stats.summary()); // the 404 is not a document
    assert!(stats.record_errors >= 1, "{}", stats.summary());
    assert_eq!(count(&stats, "length"), (9, 1));
    assert_eq!(count(&stats, "language"), (8, 1));
    assert_eq!(count(&stats, "gopher"), (7, 0));
    assert_eq!(
        count(&stats, "dedup-minhash"),
        (7, 1),
        "the copy of the first page goes"
    );
    assert_eq!(count(&stats, "dedup-lines"), (6, 0));
    assert_eq!(stats.kept, 6);
    let docs: Vec<serde_json::Value> = std::fs::read_to_string(&outputs.documents)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 6);
    assert!(docs.iter().all(|d| d["language"] == "en"));
    let text = |d: &serde_json::Value| d["text"].as_str().unwrap().to_string();
    let masked = docs.iter().find(|d| d["url"] == EN[5]).unwrap();
    assert!(text(masked).contains("Write to |||EMAIL_ADDRESS||| or |||EMAIL_ADDRESS|||."));
    assert!(docs.iter().all(|d| !text(d).contains("alice@example.org")));
    assert!(masked["pii_masked"].as_u64().unwrap() >= 2);
    // No line occurs twice across the kept documents (navigation lines are gone).
    let mut lines = std::collections::HashSet::new();
    for d in &docs {
        for line in text(d).lines().filter(|l| !l.trim().is_empty()) {
            assert!(lines.insert(line.to_string()), "{line:?} repeated");
        }
    }
    let out = dir.path().join("one");
    for f in [
        "stats.json",
        "summary.txt",
        "examples.jsonl",
        "pipeline.toml",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let examples = std::fs::read_to_string(out.join("examples.jsonl")).unwrap();
    assert!(examples.contains("\"stage\":\"language\""), "{examples}");

    // Again: both shards are finished, nothing is redone, the output is the same.
    let before = std::fs::read(&outputs.documents).unwrap();
    let again = run(&cfg, None, &|_, _| panic!("no file should be processed")).unwrap();
    assert_eq!(again.skipped, 2);
    assert_eq!(std::fs::read(&outputs.documents).unwrap(), before);

    // Two array-job shards, then a separate merge: the same documents.
    let split = config(dir.path(), &input, "split", "");
    for i in 0..2 {
        let r = run(&split, Some(ShardSpec { index: i, count: 2 }), &|_, _| {}).unwrap();
        assert_eq!(r.files.len(), 1);
        assert!(r.merged.is_none());
    }
    let (_, merged) = merge(&split, &split.input_files().unwrap()).unwrap();
    assert_eq!(std::fs::read(&merged.documents).unwrap(), before);
}

#[test]
fn parquet_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let input = inputs(dir.path());
    let model = lm_basics::train_bpe(
        &shared().join("cs336/a1/fixtures/corpus.en"),
        &lm_basics::TrainOptions::new(300, &["<|endoftext|>"]),
    )
    .unwrap();
    let tok_dir = dir.path().join("tok");
    lm_basics::tokenizer::files::save(&model, &tok_dir).unwrap();
    let extra = format!(
        "format = \"parquet\"\n[tokenize]\ntokenizer = \"{}\"",
        tok_dir.display()
    );
    let cfg = config(dir.path(), &input, "pq", &extra);
    let (stats, outputs) = run(&cfg, None, &|_, _| {}).unwrap().merged.unwrap();
    let bytes = std::fs::read(&outputs.documents).unwrap();
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    let tokens = std::fs::read(outputs.tokens.unwrap()).unwrap();
    assert_eq!(tokens.len() as u64, outputs.token_count * 2);
    assert!(
        outputs.token_count as f64 > stats.kept_chars as f64 / 8.0,
        "{}",
        outputs.token_count
    );
}

#[test]
fn bad_configs_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "[input]\npaths = []\n[output]\ndir = \"o\"\n").unwrap();
    let e = PipelineConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("p.toml") && e.contains("input.paths"), "{e}");
    std::fs::write(
        &path,
        "[input]\npaths = [\"x\"]\n[output]\ndir = \"o\"\n[filters]\nlanguages = [\"en\"]\n",
    )
    .unwrap();
    let e = PipelineConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("language_model"), "{e}");
    std::fs::write(
        &path,
        "[input]\npaths = [\"x\"]\n[output]\ndir = \"o\"\nbogus = 1\n",
    )
    .unwrap();
    let e = PipelineConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("bogus"), "{e}");
    assert!("3/2".parse::<ShardSpec>().is_err() && "1/2".parse::<ShardSpec>().is_ok());
}

/// The README's lab-4 command: the shipped config over the shared WARC captures.
#[test]
fn the_shipped_config_runs_on_the_shared_captures() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/data/pipeline.toml");
    let mut cfg = PipelineConfig::load(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    cfg.output.dir = dir.path().to_path_buf();
    let (stats, outputs) = run(&cfg, None, &|_, _| {}).unwrap().merged.unwrap();
    assert_eq!(stats.files, 5, "{}", stats.summary());
    assert_eq!(
        stats.record_errors, 1,
        "example.warc's short Content-Length"
    );
    assert!(
        stats.documents >= 10 && stats.kept >= 5,
        "{}",
        stats.summary()
    );
    assert!(count(&stats, "language").1 >= 1, "{}", stats.summary());
    assert!(outputs.documents.exists());
}
