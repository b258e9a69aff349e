//! `cargo xtask bench generate --random PRESET`: our engine on a randomly initialised decoder
//! of a real model's shape against transformers `generate` on a randomly initialised
//! `Qwen2ForCausalLM` of the same config (bench/python_generate.py --random): the same
//! prompt ids, greedy, exactly `new_tokens` per row. Made for the GPU machine, where the
//! real weights cannot be brought; the tokens are meaningless, the work per token is not.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::backend::Backend;
use lm_core::generate::{Engine, Event, Request, SamplingParams, StepMillis};
use lm_core::pretrained::config::{Architecture, DecoderConfig};
use lm_core::pretrained::decoder::Decoder;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use super::generate::run_peer;
use crate::conformance::BackendKind;

/// Model shapes the random mode builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Preset {
    /// A few small layers: tests the plumbing on the CPU in seconds.
    #[value(name = "tiny")]
    #[serde(rename = "tiny")]
    Tiny,
    /// Qwen2.5(-Coder)-0.5B: 24 layers, d 896, 14/2 heads, vocab 151,936, tied embeddings.
    #[value(name = "qwen2.5-0.5b")]
    #[serde(rename = "qwen2.5-0.5b")]
    Qwen25_05b,
}

impl Preset {
    pub fn config(self) -> DecoderConfig {
        let qwen = DecoderConfig {
            arch: Architecture::Qwen2,
            vocab_size: 151_936,
            hidden_size: 896,
            intermediate_size: 4864,
            num_layers: 24,
            num_heads: 14,
            num_kv_heads: 2,
            head_dim: 64,
            rms_norm_eps: 1e-6,
            rope_theta: 1e6,
            rope_scaling: None,
            tie_word_embeddings: true,
            attention_bias: true,
            max_position_embeddings: 32_768,
        };
        match self {
            Self::Qwen25_05b => qwen,
            Self::Tiny => DecoderConfig {
                vocab_size: 512,
                hidden_size: 64,
                intermediate_size: 128,
                num_layers: 2,
                num_heads: 4,
                num_kv_heads: 2,
                head_dim: 16,
                max_position_embeddings: 1024,
                ..qwen
            },
        }
    }
}

pub struct RandomBenchOptions {
    pub preset: Preset,
    pub backend: BackendKind,
    pub batches: Vec<usize>,
    pub prompt_len: usize,
    pub new_tokens: usize,
    /// New tokens of the warm-up run at each batch (kernel compilation and autotuning).
    pub warmup_tokens: usize,
    /// New tokens of a further run with per-step timing (0: none), after the timed run.
    pub step_timing_tokens: usize,
    pub seed: u64,
    /// transformers dtypes, one peer column each.
    pub dtypes: Vec<String>,
    pub python: String,
    pub script: PathBuf,
    pub skip_peer: bool,
    pub work_dir: PathBuf,
}

/// One batch size of our engine; `error` set when it failed (out of memory, …).
#[derive(Debug, Clone, Serialize)]
pub struct OursRow {
    pub batch: usize,
    pub seconds: Option<f64>,
    /// Time to the first token of the timed run (one batched prefill plus its sampling).
    pub prefill_s: Option<f64>,
    pub tokens_per_s: Option<f64>,
    /// Per decode step: host launch time, device wait, sampling (a separate timed run).
    pub step_ms: Option<StepMillis>,
    pub error: Option<String>,
}

/// The config in Hugging Face `config.json` keys, which `Qwen2Config(**…)` takes as is.
pub fn hf_config(c: &DecoderConfig) -> Result<Value> {
    if c.arch != Architecture::Qwen2 || c.head_dim * c.num_heads != c.hidden_size {
        bail!("the transformers peer builds Qwen2 with head_dim = hidden / heads only");
    }
    Ok(json!({
        "model_type": "qwen2",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads,
        "max_position_embeddings": c.max_position_embeddings,
        "rope_theta": c.rope_theta,
        "rms_norm_eps": c.rms_norm_eps,
        "tie_word_embeddings": c.tie_word_embeddings,
        "initializer_range": 0.02,
    }))
}

/// `rows` prompts of `len` token ids below `vocab`, from `seed`; batch `b` uses the first `b`.
pub fn prompt_ids(rows: usize, len: usize, vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..rows)
        .map(|_| {
            (0..len)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect()
        })
        .collect()
}

pub fn run(o: &RandomBenchOptions) -> Result<()> {
    if o.batches.is_empty() || o.batches.contains(&0) || o.prompt_len == 0 || o.new_tokens == 0 {
        bail!("--batch, --prompt-len and --new-tokens must all be at least 1");
    }
    let config = o.preset.config();
    let max_batch = o.batches.iter().copied().max().unwrap_or(1);
    let prompts = prompt_ids(max_batch, o.prompt_len, config.vocab_size, o.seed);
    std::fs::create_dir_all(&o.work_dir)?;
    let case_file = o.work_dir.join("random_case.json");
    let case = json!({ "config": hf_config(&config)?, "prompts": prompts, "seed": o.seed });
    lm_core::fsutil::write_atomic(&case_file, serde_json::to_string(&case)?.as_bytes())?;
    // The peer runs first: our process keeps its GPU memory pool until it exits.
    let peer = if o.skip_peer {
        Vec::new()
    } else {
        peer(o, &case_file)?
    };
    let ours = run_ours(o, &config, &prompts)?;
    println!("{}", table(o, &ours, &peer));
    let report = json!({
        "preset": o.preset, "config": hf_config(&config)?, "backend": o.backend,
        "prompt_len": o.prompt_len, "new_tokens": o.new_tokens, "seed": o.seed,
        "ours": ours, "transformers": peer,
    });
    let out = o.work_dir.join("results.json");
    lm_core::fsutil::write_atomic(&out, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("written: {}", out.display());
    Ok(())
}

fn run_ours(
    o: &RandomBenchOptions,
    c: &DecoderConfig,
    prompts: &[Vec<u32>],
) -> Result<Vec<OursRow>> {
    match o.backend {
        BackendKind::Ndarray => ours::<lm_core::backends::NdArray>(o, c, prompts),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => ours::<lm_core::backends::Wgpu>(o, c, prompts),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda if lm_core::backends::cuda_fusion(false) => {
            ours::<lm_core::backends::Cuda>(o, c, prompts)
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => ours::<lm_core::backends::CudaUnfused>(o, c, prompts),
        #[allow(unreachable_patterns)]
        other => bail!(
            "this xtask was built without the `{0}` backend: rebuild it with `--features {0}`",
            format!("{other:?}").to_lowercase()
        ),
    }
}

fn ours<B: Backend>(
    o: &RandomBenchOptions,
    c: &DecoderConfig,
    prompts: &[Vec<u32>],
) -> Result<Vec<OursRow>> {
    let device = B::Device::default();
    let started = Instant::now();
    let model = Decoder::<B>::random(c.clone(), o.seed, &device)?;
    eprintln!(
        "ours: random model built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    for &batch in &o.batches {
        // A failed batch (out of device memory panics in the backend) must not lose the rest.
        let measured = catch_unwind(AssertUnwindSafe(|| {
            let runs = Runs {
                new_tokens: o.new_tokens,
                warmup: o.warmup_tokens,
                step_timing: o.step_timing_tokens,
            };
            measure(&model, &prompts[..batch], runs)
        }));
        let row = match measured {
            Ok(Ok(m)) => OursRow {
                batch,
                seconds: Some(m.seconds),
                prefill_s: Some(m.prefill_s),
                tokens_per_s: Some((batch * o.new_tokens) as f64 / m.seconds),
                step_ms: m.step_ms,
                error: None,
            },
            Ok(Err(e)) => failed(batch, format!("{e:#}")),
            Err(panic) => failed(batch, panic_message(panic.as_ref())),
        };
        eprintln!("ours: {row:?}");
        rows.push(row);
    }
    Ok(rows)
}

/// The serde name of a unit enum value (`"qwen2.5-0.5b"`, `"cuda"`).
fn name(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn failed(batch: usize, error: String) -> OursRow {
    OursRow {
        batch,
        seconds: None,
        prefill_s: None,
        tokens_per_s: None,
        step_ms: None,
        error: Some(error),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    format!("panic: {text}")
}

/// The runs [`measure`] makes at one batch, each generating exactly its count per prompt.
#[derive(Debug, Clone, Copy)]
pub(super) struct Runs {
    pub new_tokens: usize,
    /// Tokens of the untimed warm-up run (kernel compilation and autotuning); at least 1.
    pub warmup: usize,
    /// Tokens of the run with per-step timing after the timed one (0: none).
    pub step_timing: usize,
}

pub(super) struct Measured {
    pub seconds: f64,
    /// Seconds to the first token of the timed run.
    pub prefill_s: f64,
    pub step_ms: Option<StepMillis>,
}

/// Greedy runs at one batch: the warm-up, the timed run (its wall time gives the rate),
/// then optionally one with per-step timing, whose device syncs would perturb the rate.
pub(super) fn measure<B: Backend>(
    model: &Decoder<B>,
    prompts: &[Vec<u32>],
    runs: Runs,
) -> Result<Measured> {
    let new_tokens = runs.new_tokens;
    let requests = |n: usize| -> Vec<Request> {
        let params = SamplingParams::greedy(n); // no stop tokens: only max_tokens ends a row
        (0..prompts.len())
            .map(|i| Request::new(i as u64, prompts[i].clone(), params.clone()))
            .collect()
    };
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(1);
    let mut engine = Engine::new(model, prompts.len(), longest + new_tokens)?;
    engine.generate(requests(runs.warmup.clamp(1, new_tokens)), |_| {})?;
    let started = Instant::now();
    let mut first_token = None;
    let done = engine.generate(requests(new_tokens), |e| {
        if first_token.is_none() && matches!(e, Event::Token { .. }) {
            first_token = Some(started.elapsed().as_secs_f64());
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(short) = done.iter().find(|c| c.tokens.len() != new_tokens) {
        bail!(
            "request {} stopped after {} of {new_tokens} tokens ({:?})",
            short.id,
            short.tokens.len(),
            short.finish
        );
    }
    let step_ms = if runs.step_timing > 0 {
        let mut engine = engine.with_step_timing(true);
        engine.generate(requests(runs.step_timing.min(new_tokens)), |_| {})?;
        engine.take_step_timing().and_then(|t| t.per_step())
    } else {
        None
    };
    Ok(Measured {
        seconds,
        prefill_s: first_token.unwrap_or(seconds),
        step_ms,
    })
}

fn peer(o: &RandomBenchOptions, case_file: &Path) -> Result<Vec<Value>> {
    let mut cmd = Command::new(&o.python);
    cmd.arg(&o.script)
        .arg("--random")
        .arg(case_file)
        .args(["--new-tokens", &o.new_tokens.to_string()])
        .args(["--warmup-tokens", &o.warmup_tokens.to_string()])
        .args([
            "--device",
            if o.backend == BackendKind::Ndarray {
                "cpu"
            } else {
                "cuda"
            },
        ]);
    for b in &o.batches {
        cmd.args(["--batch", &b.to_string()]);
    }
    for d in &o.dtypes {
        cmd.args(["--dtype", d]);
    }
    run_peer(cmd, &o.python, &o.script)
}

/// Markdown: one row per batch, our rate, one column per transformers dtype, the ratios.
pub fn table(o: &RandomBenchOptions, ours: &[OursRow], peer: &[Value]) -> String {
    let mut head = "| batch | ours tok/s | ours prefill s |".to_string();
    let mut rule = "|---:|---:|---:|".to_string();
    for d in &o.dtypes {
        head += &format!(" transformers {d} tok/s |");
        rule += "---:|";
    }
    for d in &o.dtypes {
        head += &format!(" ours / {d} |");
        rule += "---:|";
    }
    let mut lines = vec![
        format!(
            "{} random weights, ours on {}, prompt {} + {} new tokens per row, greedy",
            name(o.preset),
            name(o.backend),
            o.prompt_len,
            o.new_tokens
        ),
        String::new(),
        head,
        rule,
    ];
    for row in ours {
        let rate = |r: Option<f64>, err: Option<&str>| match (r, err) {
            (Some(r), _) => format!("{r:.1}"),
            (None, Some(e)) if e.contains("OOM") || e.to_lowercase().contains("out of memory") => {
                "OOM".into()
            }
            (None, Some(_)) => "failed".into(),
            (None, None) => "n/a".into(),
        };
        let mut line = format!(
            "| {} | {} | {} |",
            row.batch,
            rate(row.tokens_per_s, row.error.as_deref()),
            row.prefill_s.map_or("n/a".into(), |s| format!("{s:.3}"))
        );
        let theirs: Vec<Option<&Value>> = o
            .dtypes
            .iter()
            .map(|d| {
                peer.iter().find(|v| {
                    v["batch"].as_u64() == Some(row.batch as u64) && v["dtype"].as_str() == Some(d)
                })
            })
            .collect();
        for t in &theirs {
            line += &format!(
                " {} |",
                rate(
                    t.and_then(|v| v["tokens_per_s"].as_f64()),
                    t.and_then(|v| v["error"].as_str())
                )
            );
        }
        for t in &theirs {
            let ratio = row
                .tokens_per_s
                .zip(t.and_then(|v| v["tokens_per_s"].as_f64()));
            line += &ratio.map_or(" n/a |".into(), |(a, b)| format!(" {:.2}× |", a / b));
        }
        lines.push(line);
    }
    let timed: Vec<String> = ours
        .iter()
        .filter_map(|row| {
            let t = row.step_ms.as_ref()?;
            Some(format!(
                "- batch {}: {:.2} ms launching, {:.2} ms waiting for the device, {:.2} ms sampling a decode step (mean of {})",
                row.batch, t.enqueue_ms, t.wait_ms, t.sample_ms, t.steps
            ))
        })
        .collect();
    if !timed.is_empty() {
        lines.push(String::new());
        lines.push(
            "Decode steps, timed in a separate run with a device sync after the model:".into(),
        );
        lines.extend(timed);
    }
    lines.join("\n")
}

#[cfg(test)]
#[path = "generate_random_tests.rs"]
mod tests;
