//! `lm data extract` and `lm data warc-info` end to end.

mod common;

use common::shared;

fn lm(args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let out = common::lm_with_stdin(args, stdin);
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn extract_file_and_stdin_match_the_course_fixture() {
    let fixtures = shared().join("cs336/a4/fixtures");
    let expected = std::fs::read(fixtures.join("moby_extracted.txt")).unwrap();
    let html_path = fixtures.join("moby.html");
    let (ok, out, err) = lm(&["data", "extract", html_path.to_str().unwrap()], b"");
    assert!(ok, "{err}");
    assert_eq!(out, expected);
    let html = std::fs::read(&html_path).unwrap();
    let (ok, out, err) = lm(&["data", "extract", "-"], &html);
    assert!(ok, "{err}");
    assert_eq!(out, expected);
}

#[test]
fn extract_honours_the_content_type_charset() {
    let latin1 = b"<p>Gr\xfc\xdfe, caf\xe9</p>";
    let (ok, out, err) = lm(
        &[
            "data",
            "extract",
            "-",
            "--content-type",
            "text/html; charset=iso-8859-1",
        ],
        latin1,
    );
    assert!(ok, "{err}");
    assert_eq!(String::from_utf8(out).unwrap(), "Grüße, café");
}

#[test]
fn extract_missing_file_fails_with_its_name() {
    let (ok, _, err) = lm(&["data", "extract", "/nonexistent/page.html"], b"");
    assert!(!ok);
    assert!(err.contains("/nonexistent/page.html"), "{err}");
}

#[test]
fn warc_info_counts_types_and_reports_damage() {
    let warcs = shared().join("assets/warc/pywb");
    let iana = warcs.join("iana.warc.gz");
    let (ok, out, err) = lm(&["data", "warc-info", iana.to_str().unwrap()], b"");
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["records"], 343);
    assert_eq!(
        report["types"],
        serde_json::json!({"warcinfo": 1, "request": 171, "response": 48, "revisit": 123})
    );
    assert_eq!(report["errors"], serde_json::json!([]));

    // A copy cut inside a record: the records before it are counted, the cut is reported.
    let bytes = std::fs::read(warcs.join("example.warc.gz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.warc.gz");
    std::fs::write(&cut, &bytes[..bytes.len() - 300]).unwrap();
    let (ok, out, err) = lm(
        &["data", "warc-info", cut.to_str().unwrap(), "--records"],
        b"",
    );
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["records"], 5);
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    let last = report["record_list"].as_array().unwrap().last().unwrap()["offset"]
        .as_u64()
        .unwrap();
    assert!(errors[0]["offset"].as_u64().unwrap() > last);
}
