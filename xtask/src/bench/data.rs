//! `cargo xtask bench data`: the lab-4 pieces against the Python tools the course uses, on
//! the same inputs in one run, one core each: WARC reading (FastWARC), HTML → text
//! (Resiliparse), language ID (official fastText bindings), MinHash + LSH (datasketch).
//! Inputs: the real HTML pages of `$LM_ASSETS/html`, also packed into one WARC.gz.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use lm_data::dedup::{MinHasher, MinhashParams, cluster_near_duplicates};
use lm_data::fasttext::langid::LanguageIdentifier;
use lm_data::html::extract_text_from_html_bytes;
use lm_data::warc::{RecordType, WarcFileWriter, WarcReader, WarcVersion};
use serde_json::Value;

use super::best_of;

pub struct DataBenchOptions {
    pub html_dir: PathBuf,
    pub lid_model: PathBuf,
    pub work_dir: PathBuf,
    pub python: String,
    pub reps: usize,
    /// Use only the first N pages (0: all).
    pub limit: usize,
}

struct Measure {
    what: &'static str,
    seconds: f64,
    count: usize,
    bytes: usize,
}

pub fn run(o: &DataBenchOptions) -> Result<()> {
    let manifest = o.html_dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("{} (run shared/fetch-assets --html)", manifest.display()))?;
    let mut paths: Vec<PathBuf> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .map(|p| o.html_dir.join(p))
        .collect();
    if o.limit > 0 {
        paths.truncate(o.limit);
    }
    let pages: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).with_context(|| p.display().to_string()))
        .collect::<Result<_>>()?;
    let html_bytes: usize = pages.iter().map(Vec::len).sum();
    std::fs::create_dir_all(&o.work_dir)?;
    let warc = o.work_dir.join("pages.warc.gz");
    write_warc(&warc, &paths, &pages)?;
    println!(
        "{} pages, {:.1} MB of HTML; {} ({:.1} MB)",
        pages.len(),
        html_bytes as f64 / 1e6,
        warc.display(),
        std::fs::metadata(&warc)?.len() as f64 / 1e6
    );

    // Ours, one thread throughout (the comparison is per core).
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut ours = Vec::new();
    let (s, (n, b)) = best_of(o.reps, || read_warc(&warc));
    let (n, b) = (n?, b);
    ours.push(Measure {
        what: "warc",
        seconds: s,
        count: n,
        bytes: b,
    });
    let (s, texts) = best_of(o.reps, || {
        pages
            .iter()
            .map(|h| extract_text_from_html_bytes(h))
            .collect::<Vec<_>>()
    });
    ours.push(Measure {
        what: "extract",
        seconds: s,
        count: pages.len(),
        bytes: html_bytes,
    });
    let text_bytes: usize = texts.iter().map(String::len).sum();
    let lid = LanguageIdentifier::load(&o.lid_model)?;
    let (s, _) = best_of(o.reps, || {
        texts.iter().map(|t| lid.identify(t)).collect::<Vec<_>>()
    });
    ours.push(Measure {
        what: "langid",
        seconds: s,
        count: texts.len(),
        bytes: text_bytes,
    });
    let params = MinhashParams::new(100, 10, 5, 0.8)?;
    let hasher = MinHasher::new(&params);
    let (s, kept) = best_of(o.reps, || {
        pool.install(|| {
            let features: Vec<_> = texts.iter().map(|t| hasher.features(t)).collect();
            let c = cluster_near_duplicates(&features, 0.8);
            (0..texts.len()).filter(|&i| c.is_kept(i)).count()
        })
    });
    ours.push(Measure {
        what: "minhash",
        seconds: s,
        count: texts.len(),
        bytes: text_bytes,
    });
    println!("ours: MinHash keeps {kept} of {} documents", texts.len());

    // The same inputs for Python: page list, our texts (langid and MinHash inputs).
    let list = o.work_dir.join("pages.txt");
    std::fs::write(
        &list,
        paths
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect::<String>(),
    )?;
    let texts_file = o.work_dir.join("texts.jsonl");
    std::fs::write(
        &texts_file,
        texts
            .iter()
            .map(|t| format!("{}\n", Value::from(t.as_str())))
            .collect::<String>(),
    )?;
    let reference = o.work_dir.join("resiliparse.jsonl");
    let out = Command::new(&o.python)
        .arg("bench/python_data.py")
        .args([
            "--warc",
            &warc.to_string_lossy(),
            "--pages",
            &list.to_string_lossy(),
        ])
        .args([
            "--texts",
            &texts_file.to_string_lossy(),
            "--lid",
            &o.lid_model.to_string_lossy(),
        ])
        .args([
            "--extracted-out",
            &reference.to_string_lossy(),
            "--reps",
            &o.reps.to_string(),
        ])
        .output()
        .with_context(|| format!("running {} bench/python_data.py", o.python))?;
    if !out.status.success() {
        bail!(
            "bench/python_data.py failed (pip install fastwarc resiliparse fasttext-wheel datasketch):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let theirs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();

    println!("\n| step | ours docs/s | ours MB/s | peer | peer docs/s | peer MB/s | ours / peer |");
    println!("|---|---:|---:|---|---:|---:|---:|");
    for m in &ours {
        let Some(p) = theirs.iter().find(|p| p["what"] == m.what) else {
            continue;
        };
        let p_s = p["seconds"].as_f64().unwrap_or(f64::NAN);
        let p_n = p["count"].as_f64().unwrap_or(f64::NAN);
        let p_b = p["bytes"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {:.0} | {:.1} | {} | {:.0} | {:.1} | {:.2}× |",
            m.what,
            m.count as f64 / m.seconds,
            m.bytes as f64 / m.seconds / 1e6,
            p["tool"].as_str().unwrap_or("?"),
            p_n / p_s,
            p_b / p_s / 1e6,
            p_s / m.seconds * (m.count as f64 / p_n)
        );
    }
    let same = agreement(&texts, &reference)?;
    println!(
        "\nextraction identical to Resiliparse's on {same} of {} pages",
        texts.len()
    );
    Ok(())
}

fn write_warc(path: &Path, paths: &[PathBuf], pages: &[Vec<u8>]) -> Result<()> {
    let mut w = WarcFileWriter::create(path, WarcVersion::V1_1)?;
    for (p, html) in paths.iter().zip(pages) {
        let uri = format!("file://{}", p.display());
        let mut block =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n".to_vec();
        block.extend_from_slice(html);
        w.writer()
            .write_record(&RecordType::Response, &[("WARC-Target-URI", &uri)], &block)?;
    }
    Ok(w.finish()?)
}

/// (records, payload bytes) of a full read.
fn read_warc(path: &Path) -> (Result<usize>, usize) {
    let mut bytes = 0;
    let reader = match WarcReader::open(path) {
        Ok(r) => r,
        Err(e) => return (Err(e.into()), 0),
    };
    let mut n = 0;
    for r in reader.flatten() {
        n += 1;
        bytes += r.block.len();
    }
    (Ok(n), bytes)
}

fn agreement(ours: &[String], reference: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(reference)?;
    let theirs: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok(ours.iter().zip(&theirs).filter(|(a, b)| a == b).count())
}
