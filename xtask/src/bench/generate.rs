//! `cargo xtask bench generate`: our engine against Hugging Face transformers `generate`
//! (bench/python_generate.py) on the same GGUF weights, the same prompts, greedy decoding
//! of a fixed number of new tokens, on the CPU, in one run. Ours runs twice: with the
//! weights dequantised to f32 (as transformers) and multiplying the file's quantised
//! blocks (the same values; `lm generate`'s default on the CPU).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use lm_core::pretrained::gguf::GgufFile;
use lm_core::pretrained::gguf_model;
use lm_core::pretrained::tokenizer::TextTokenizer;
use serde_json::Value;

use super::generate_random::{Runs, measure};

type B = lm_core::backends::NdArray;

/// Code and prose prompts of a few dozen tokens.
const PROMPTS: [&str; 8] = [
    "def quicksort(items):\n    \"\"\"Sort a list of numbers.\"\"\"\n",
    "The history of the printing press begins in",
    "import numpy as np\n\n# create a 3x3 identity matrix\n",
    "Once upon a time, in a small village by the sea, there lived",
    "SELECT name, COUNT(*) FROM orders GROUP BY",
    "The three laws of thermodynamics are",
    "class Stack:\n    def __init__(self):\n",
    "To make a good cup of tea, first",
];

pub struct GenerateBenchOptions {
    pub models: Vec<PathBuf>,
    pub batches: Vec<usize>,
    pub new_tokens: usize,
    pub python: String,
    /// bench/python_generate.py (resolved by the caller: the bundle has no source tree).
    pub script: PathBuf,
    pub work_dir: PathBuf,
}

pub fn run(o: &GenerateBenchOptions) -> Result<()> {
    std::fs::create_dir_all(&o.work_dir)?;
    let prompts_file = o.work_dir.join("prompts.json");
    std::fs::write(&prompts_file, serde_json::to_string(&PROMPTS)?)?;
    println!(
        "| model | batch | new tokens | ours f32 tok/s | ours blocks tok/s | transformers tok/s \
         | f32 / transformers | blocks / transformers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for model in &o.models {
        let f32_rates = ours(model, &o.batches, o.new_tokens, false)?;
        let block_rates = ours(model, &o.batches, o.new_tokens, true)?;
        let theirs = peer(o, model, &prompts_file)?;
        let name = model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, &batch) in o.batches.iter().enumerate() {
            let peer = theirs
                .iter()
                .find(|v| v["batch"].as_u64() == Some(batch as u64))
                .and_then(|v| v["tokens_per_s"].as_f64())
                .unwrap_or(f64::NAN);
            let (f, b) = (f32_rates[i], block_rates[i]);
            println!(
                "| {name} | {batch} | {} | {f:.1} | {b:.1} | {peer:.1} | {:.2}× | {:.2}× |",
                o.new_tokens,
                f / peer,
                b / peer
            );
        }
    }
    Ok(())
}

/// Generated tokens per second of our engine at each batch size (after a warm-up call),
/// multiplying the quantised blocks when `pack`.
fn ours(path: &Path, batches: &[usize], new_tokens: usize, pack: bool) -> Result<Vec<f64>> {
    let device = Default::default();
    let model = gguf_model::load_with::<B>(path, &device, pack)
        .with_context(|| path.display().to_string())?;
    let tok = TextTokenizer::from_gguf(&GgufFile::open(path)?)?;
    let mut rates = Vec::new();
    for &batch in batches {
        let prompts = (0..batch)
            .map(|i| tok.encode(PROMPTS[i % PROMPTS.len()], false))
            .collect::<lm_core::Result<Vec<_>>>()?;
        let runs = Runs {
            new_tokens,
            warmup: 2,
            step_timing: 0,
        };
        let secs = measure(&model, &prompts, runs)?.seconds;
        rates.push((batch * new_tokens) as f64 / secs);
    }
    Ok(rates)
}

fn peer(o: &GenerateBenchOptions, model: &Path, prompts: &Path) -> Result<Vec<Value>> {
    let mut cmd = Command::new(&o.python);
    cmd.arg(&o.script)
        .arg("--model")
        .arg(model)
        .arg("--prompts")
        .arg(prompts)
        .args(["--new-tokens", &o.new_tokens.to_string()]);
    for b in &o.batches {
        cmd.args(["--batch", &b.to_string()]);
    }
    run_peer(cmd, &o.python, &o.script)
}

/// Runs the peer script and keeps the JSON lines of its stdout (other lines are logs).
pub(super) fn run_peer(mut cmd: Command, python: &str, script: &Path) -> Result<Vec<Value>> {
    let out = cmd
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}
