//! WARC reading and writing on real files (pywb's sample archive) and on damaged copies.

mod common;
use common::{assets, shared};

use std::collections::BTreeMap;
use std::io::{BufReader, Cursor};
use std::path::PathBuf;

use lm_data::warc::{
    RecordError, RecordType, WarcFileWriter, WarcReader, WarcRecord, WarcVersion, WarcWriter,
};

fn shared_warc(name: &str) -> PathBuf {
    shared().join("assets/warc/pywb").join(name)
}

/// Files only in `$LM_ASSETS` (CI fetches them before the tests).
fn assets_warc(name: &str) -> PathBuf {
    assets().join("warc/pywb").join(name)
}

fn read_all(path: &std::path::Path) -> (Vec<WarcRecord>, Vec<RecordError>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for item in WarcReader::open(path).unwrap() {
        match item {
            Ok(r) => records.push(r),
            Err(e) => errors.push(e),
        }
    }
    (records, errors)
}

fn counts(records: &[WarcRecord]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.record_type().to_string()).or_insert(0) += 1;
    }
    counts
}

fn map(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn iana_counts_per_type() {
    let (records, errors) = read_all(&shared_warc("iana.warc.gz"));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        counts(&records),
        map(&[
            ("warcinfo", 1),
            ("request", 171),
            ("response", 48),
            ("revisit", 123)
        ])
    );
    // One gzip member per record: offsets strictly increase and the first is 0.
    assert_eq!(records[0].offset, 0);
    assert!(records.windows(2).all(|w| w[0].offset < w[1].offset));
    let urls: std::collections::HashSet<_> =
        records.iter().filter_map(|r| r.target_uri()).collect();
    assert!(urls.iter().all(|u| u.contains("iana.org")), "{urls:?}");
    for r in records
        .iter()
        .filter(|r| r.record_type() == RecordType::Response)
    {
        let http = r.http().expect("response records hold HTTP");
        assert!(http.status.is_some(), "{}", http.start_line);
        assert_eq!(
            r.header("Content-Length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            r.block.len()
        );
    }
}

#[test]
fn example_plain_and_gzip_agree() {
    let expected = map(&[
        ("warcinfo", 1),
        ("request", 2),
        ("response", 2),
        ("revisit", 1),
    ]);
    let (gz, gz_errors) = read_all(&shared_warc("example.warc.gz"));
    assert!(gz_errors.is_empty(), "{gz_errors:?}");
    assert_eq!(counts(&gz), expected);
    let first = &gz[0];
    assert_eq!(first.version, "WARC/1.0");
    assert_eq!(first.record_type(), RecordType::Warcinfo);
    assert_eq!(
        first
            .headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        [
            "WARC-Type",
            "WARC-Record-ID",
            "WARC-Date",
            "Content-Length",
            "Content-Type",
            "WARC-Filename"
        ]
    );
    let response = gz
        .iter()
        .find(|r| r.record_type() == RecordType::Response)
        .unwrap();
    assert_eq!(response.target_uri(), Some("http://example.com?example=1"));
    let http = response.http().unwrap();
    assert_eq!(http.status, Some(200));
    assert!(http.content_type().unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(response.payload()).contains("<title>Example Domain</title>"));

    // The plain copy has a request whose Content-Length is 3 bytes short: the stray bytes
    // are reported with their offset, and every record is still read.
    let (plain, plain_errors) = read_all(&shared_warc("example.warc"));
    assert_eq!(counts(&plain), expected);
    assert_eq!(plain_errors.len(), 1, "{plain_errors:?}");
    let short = &plain[4];
    assert_eq!(short.offset, 4061);
    assert!(plain_errors[0].offset > 4061 && plain_errors[0].offset < plain[5].offset);
    assert_eq!(plain[5].offset, 4771);
}

#[test]
fn other_writers_files() {
    let cases: &[(&str, &[(&str, usize)])] = &[
        (
            "example-wget-1-14.warc.gz",
            &[
                ("warcinfo", 1),
                ("request", 1),
                ("response", 1),
                ("resource", 3),
            ],
        ),
        (
            "example-wpull.warc.gz",
            &[
                ("warcinfo", 1),
                ("request", 1),
                ("response", 1),
                ("resource", 1),
            ],
        ),
    ];
    for (name, expected) in cases {
        let (records, errors) = read_all(&shared_warc(name));
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(counts(&records), map(expected), "{name}");
    }
}

#[test]
fn assets_files_with_known_counts() {
    let cases: &[(&str, &[(&str, usize)])] = &[
        (
            "dupes.warc.gz",
            &[
                ("warcinfo", 1),
                ("response", 3),
                ("request", 12),
                ("revisit", 9),
            ],
        ),
        // One gzip member for the whole file: read as a stream all the same.
        (
            "example-bad.warc.gz.bad",
            &[
                ("warcinfo", 1),
                ("response", 2),
                ("request", 2),
                ("revisit", 1),
            ],
        ),
        (
            "example-extra.warc",
            &[("response", 2), ("request", 2), ("revisit", 2)],
        ),
        ("httpbin-resource.warc.gz", &[("resource", 1)]),
        ("missing-status-text.warc", &[("response", 1)]),
        ("post-test.warc.gz", &[("response", 3), ("request", 3)]),
    ];
    for (name, expected) in cases {
        let path = assets_warc(name);
        if !path.exists() {
            eprintln!(
                "skipped: {} absent (run shared/fetch-assets --warc)",
                path.display()
            );
            return;
        }
        let (records, errors) = read_all(&path);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(counts(&records), map(expected), "{name}");
    }
}

#[test]
fn arc_files_are_rejected_clearly() {
    for name in ["example.arc", "example.arc.gz"] {
        let path = assets_warc(name);
        if !path.exists() {
            return;
        }
        let (records, errors) = read_all(&path);
        assert!(records.is_empty());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("ARC format is not supported"),
            "{}",
            errors[0]
        );
    }
}

#[test]
fn truncated_gzip_keeps_records_before_the_cut() {
    let bytes = std::fs::read(shared_warc("iana.warc.gz")).unwrap();
    let (all, _) = read_all(&shared_warc("iana.warc.gz"));
    let cut_member = &all[100];
    // Cut in the middle of member 100.
    let cut = (cut_member.offset + all[101].offset) / 2;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.warc.gz");
    std::fs::write(&path, &bytes[..cut as usize]).unwrap();
    let (records, errors) = read_all(&path);
    assert_eq!(records.len(), 100);
    assert_eq!(records, all[..100]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].offset, cut_member.offset);
}

#[test]
fn corrupt_gzip_member_is_skipped() {
    let mut bytes = std::fs::read(shared_warc("iana.warc.gz")).unwrap();
    let (all, _) = read_all(&shared_warc("iana.warc.gz"));
    // Scramble the deflate data of member 10 (past its 10-byte gzip header).
    let start = all[10].offset as usize + 12;
    for b in &mut bytes[start..start + 40] {
        *b ^= 0x5a;
    }
    let (records, errors) = read_all_bytes(bytes);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].offset, all[10].offset);
    assert_eq!(records.len(), all.len() - 1);
    assert_eq!(records[..10], all[..10]);
    assert_eq!(records[10..], all[11..]);
}

fn read_all_bytes(bytes: Vec<u8>) -> (Vec<WarcRecord>, Vec<RecordError>) {
    let reader = WarcReader::new(BufReader::new(Cursor::new(bytes))).unwrap();
    let (mut records, mut errors) = (Vec::new(), Vec::new());
    for item in reader {
        match item {
            Ok(r) => records.push(r),
            Err(e) => errors.push(e),
        }
    }
    (records, errors)
}

#[test]
fn truncated_plain_record_is_reported() {
    let bytes = std::fs::read(shared_warc("example.warc")).unwrap();
    let (records, errors) = read_all_bytes(bytes[..1000].to_vec());
    assert_eq!(records.len(), 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset, 460);
    assert!(errors[0].message.contains("truncated"), "{}", errors[0]);
}

#[test]
fn garbage_never_panics_or_loops() {
    let mut seed = 12345u64;
    let base = std::fs::read(shared_warc("example.warc.gz")).unwrap();
    for round in 0..200 {
        let mut bytes = base.clone();
        for _ in 0..(1 + round % 8) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (seed >> 33) as usize % bytes.len();
            bytes[at] = (seed >> 17) as u8;
        }
        if round % 3 == 0 {
            bytes.truncate((seed >> 40) as usize % bytes.len());
        }
        let (records, errors) = read_all_bytes(bytes);
        assert!(records.len() + errors.len() <= 200);
    }
    let (records, errors) = read_all_bytes(b"\x1f\x8b\x08 this is not gzip".to_vec());
    assert!(records.is_empty() && !errors.is_empty());
    let (records, errors) = read_all_bytes(b"hello\nworld\n".to_vec());
    assert!(records.is_empty() && errors.len() == 1);
}

#[test]
fn write_then_read_round_trips() {
    let (original, _) = read_all(&shared_warc("iana.warc.gz"));
    for (gzip, version) in [(true, WarcVersion::V1_0), (false, WarcVersion::V1_1)] {
        let mut writer = WarcWriter::new(Vec::new(), gzip, version);
        let mut offsets = Vec::new();
        for r in &original {
            offsets.push(writer.write(r).unwrap());
        }
        let (copy, errors) = read_all_bytes(writer.into_inner().unwrap());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(copy.len(), original.len());
        for ((a, b), offset) in original.iter().zip(&copy).zip(&offsets) {
            assert_eq!(a.headers, b.headers);
            assert_eq!(a.block, b.block);
            assert_eq!(b.offset, *offset);
        }
        if version == WarcVersion::V1_1 {
            assert_eq!(copy[0].version, "WARC/1.1");
        }
    }
}

#[test]
fn wet_file_with_conversion_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.warc.wet.gz");
    let mut file = WarcFileWriter::create(&path, WarcVersion::V1_0).unwrap();
    let texts = ["Hello world.\nSecond line.", "Zweites Dokument: Grüße", ""];
    file.writer()
        .write_record(
            &RecordType::Warcinfo,
            &[("Content-Type", "application/warc-fields")],
            b"software: lm\r\n",
        )
        .unwrap();
    for (i, text) in texts.iter().enumerate() {
        let uri = format!("http://example.com/{i}");
        file.writer()
            .write_record(
                &RecordType::Conversion,
                &[
                    ("WARC-Target-URI", &uri),
                    ("Content-Type", "text/plain"),
                    ("Content-Length", "999"),
                ],
                text.as_bytes(),
            )
            .unwrap();
    }
    assert!(!path.exists(), "the file appears only when finished");
    file.finish().unwrap();
    let (records, errors) = read_all(&path);
    assert!(errors.is_empty());
    assert_eq!(counts(&records), map(&[("warcinfo", 1), ("conversion", 3)]));
    for (i, (r, text)) in records[1..].iter().zip(texts).enumerate() {
        assert_eq!(r.payload(), text.as_bytes());
        assert_eq!(
            r.header("Content-Length"),
            Some(text.len().to_string().as_str())
        );
        assert_eq!(
            r.target_uri(),
            Some(format!("http://example.com/{i}").as_str())
        );
        assert!(r.record_id().unwrap().starts_with("<urn:uuid:"));
        assert_eq!(r.date().unwrap().len(), 20);
    }
}

/// Reading speed on iana.warc.gz held in memory, one core. Run in release:
/// `cargo test --release -p lm-data --test warc -- --ignored --nocapture`.
#[test]
#[ignore = "timing; run in release"]
fn reading_throughput() {
    let bytes = std::fs::read(shared_warc("iana.warc.gz")).unwrap();
    let rounds = 50;
    let start = std::time::Instant::now();
    let (mut records, mut block_bytes) = (0usize, 0usize);
    for _ in 0..rounds {
        let reader = WarcReader::new(BufReader::new(Cursor::new(&bytes[..]))).unwrap();
        for r in reader {
            let r = r.unwrap();
            records += 1;
            block_bytes += r.block.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "warc: {:.0} records/s, {:.1} MB/s compressed, {:.1} MB/s of content blocks",
        records as f64 / secs,
        (bytes.len() * rounds) as f64 / 1e6 / secs,
        block_bytes as f64 / 1e6 / secs
    );
}
