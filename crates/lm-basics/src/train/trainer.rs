//! The training loop, generic over any autodiff backend.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use lm_core::TransformerLm;
use lm_core::functional::cross_entropy;
use lm_core::optim::{AdamW, clip_to_norm, squared_norm_tensor};
use lm_core::params::named_grads;
use lm_core::summary::forward_flops_per_token;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::checkpoint::{self, TrainingState, adamw_config};
use super::config::TrainConfig;
use super::metrics::{METRICS_FILE, MetricsLog, PLOT_FILE, plot_losses};
use crate::data::{TokenFile, get_batch, sequential_batches};
use crate::error::{BasicsError, Result};

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const MODEL_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.toml";

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub steps: u64,
    pub last_train_loss: f64,
    pub eval_loss: Option<f64>,
    pub tokens_per_second: f64,
    pub seconds: f64,
    pub checkpoint: PathBuf,
}

/// Mean cross-entropy over (up to `max_batches`) sequential batches of a token file.
pub fn evaluate<B: Backend>(
    model: &TransformerLm<B>,
    data: &TokenFile,
    batch: usize,
    max_batches: usize,
    device: &B::Device,
) -> Result<f64> {
    let context = model.context_length;
    let limit = if max_batches == 0 {
        usize::MAX
    } else {
        max_batches
    };
    let (mut total, mut count) = (0.0f64, 0usize);
    for (x, y) in sequential_batches::<B>(data, batch, context, device).take(limit) {
        let rows = x.dims()[0];
        let loss: f64 = cross_entropy(model.forward(x), y).into_scalar().elem();
        total += loss * rows as f64;
        count += rows;
    }
    if count == 0 {
        return Err(BasicsError::BadFile {
            path: data.path().to_path_buf(),
            reason: format!(
                "{} tokens is too short for one window of {context}",
                data.len()
            ),
        });
    }
    Ok(total / count as f64)
}

fn progress(steps: u64, start: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    bar.set_position(start);
    bar.set_style(
        ProgressStyle::with_template(
            "train {bar:30} {pos}/{len} steps, {per_sec}, eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    bar
}

/// Trains per `cfg` in `run_dir` (created), or continues its checkpoint with `resume`.
///
/// The run directory gets `config.toml` (the full resolved config), `run.json` (git commit,
/// seed, start time), `metrics.jsonl`, `checkpoint.safetensors` (model + optimizer + step +
/// RNG + config), `model.safetensors` (course names) and `loss_curve.png`. A non-finite loss
/// stops the run with an error before any parameter is updated, leaving the last checkpoint.
pub fn train<B: AutodiffBackend>(
    cfg: &TrainConfig,
    run_dir: &Path,
    resume: bool,
    device: &B::Device,
    show_progress: bool,
) -> Result<RunOutcome> {
    cfg.validate()?;
    std::fs::create_dir_all(run_dir).map_err(|e| BasicsError::io(run_dir, e))?;
    let ckpt_path = run_dir.join(CHECKPOINT_FILE);
    if !resume && (ckpt_path.exists() || run_dir.join(METRICS_FILE).exists()) {
        return Err(BasicsError::invalid(
            "run_dir",
            format!(
                "{} already holds a run: resume it, or choose a new directory",
                run_dir.display()
            ),
        ));
    }
    let dtype = cfg.token_dtype()?;
    let train_data = TokenFile::open(&cfg.data.train, dtype)?;
    let valid_data = TokenFile::open(&cfg.data.valid, dtype)?;
    train_data.check_vocab(cfg.model.vocab_size)?;
    valid_data.check_vocab(cfg.model.vocab_size)?;

    let (mut model, mut optimizer, mut rng, start) = if resume {
        let (model, optimizer, state) = checkpoint::load::<B>(&ckpt_path, device)?;
        for (section, same) in [
            ("model", state.config.model == cfg.model),
            ("optimizer", state.config.optimizer == cfg.optimizer),
            ("data", state.config.data == cfg.data),
        ] {
            if !same {
                return Err(BasicsError::invalid(
                    section,
                    format!(
                        "differs from the checkpoint's config in {}",
                        ckpt_path.display()
                    ),
                ));
            }
        }
        (model, optimizer, state.rng, state.step)
    } else {
        let model = TransformerLm::<B>::new(&cfg.model, cfg.train.seed, device)
            .map_err(|e| BasicsError::invalid("model", e.to_string()))?;
        // Batches draw from their own stream so model init and data order are independent.
        let rng = ChaCha8Rng::seed_from_u64(cfg.train.seed ^ 0x5EED_DA7A);
        (model, AdamW::new(adamw_config(cfg)), rng, 0)
    };
    write_run_files(cfg, run_dir, resume, start)?;
    let mut metrics = MetricsLog::open(run_dir)?;

    let t = &cfg.train;
    let context = cfg.model.context_length;
    let tokens_per_step = (t.batch_size * context) as f64;
    let flops_per_token = 3.0 * forward_flops_per_token(&cfg.model, context);
    let bar = progress(t.steps, start, show_progress);
    let started = Instant::now();
    let mut last_loss = f64::NAN;
    let mut eval_loss = None;
    let mut end = t.steps;
    let due =
        |step: u64, every: u64, end: u64| step == end || (every > 0 && step.is_multiple_of(every));

    for step in start..t.steps {
        let step_start = Instant::now();
        let lr = cfg.lr_at(step);
        let (x, y) = get_batch::<B>(&train_data, t.batch_size, context, &mut rng, device)?;
        let loss = cross_entropy(model.forward(x), y);
        let mut grads = named_grads(&model, &loss.clone().backward());
        // One read-back per step: the loss and the squared gradient norm together.
        let loss = loss.inner(); // the graph was consumed by backward
        let sq_norm = squared_norm_tensor(&grads).unwrap_or_else(|| loss.zeros_like());
        let host: Vec<f64> = Tensor::cat(vec![loss, sq_norm], 0)
            .into_data()
            .convert::<f64>()
            .to_vec()
            .expect("f64");
        let (loss_value, grad_norm) = (host[0], host[1].sqrt());
        if !loss_value.is_finite() {
            bar.abandon();
            return Err(BasicsError::invalid(
                "training",
                format!(
                    "loss is {loss_value} at step {}; stopped before updating. Last good checkpoint: {}",
                    step + 1,
                    if ckpt_path.exists() {
                        ckpt_path.display().to_string()
                    } else {
                        "none yet".into()
                    }
                ),
            ));
        }
        if cfg.optimizer.grad_clip > 0.0 {
            clip_to_norm(&mut grads, grad_norm, cfg.optimizer.grad_clip, 1e-6);
        }
        model = optimizer.step_module(model, &grads, lr);
        let done = step + 1;
        last_loss = loss_value;
        let secs = step_start.elapsed().as_secs_f64();
        let tokens_per_s = tokens_per_step / secs;
        let mut record = json!({
            "step": done, "loss": loss_value, "lr": lr, "grad_norm": grad_norm,
            "tokens_per_s": tokens_per_s, "wall_s": started.elapsed().as_secs_f64(),
        });
        if let Some(peak) = t.peak_tflops {
            record["mfu"] = json!(flops_per_token * tokens_per_s / (peak * 1e12));
        }
        metrics.log(record)?;
        bar.set_message(format!("loss {loss_value:.3}"));
        bar.inc(1);

        // Past the time limit, this step is the last: it evaluates and checkpoints. (No
        // prediction from step times: a GPU's first step includes minutes of kernel compiling.)
        let last = done == t.steps
            || t.max_seconds
                .is_some_and(|limit| started.elapsed().as_secs_f64() >= limit);
        if last {
            end = done;
        }
        if due(done, t.eval_interval, end) {
            let l = evaluate(
                &model.valid(),
                &valid_data,
                t.batch_size,
                t.eval_batches,
                device,
            )?;
            metrics.log(json!({"step": done, "eval_loss": l, "perplexity": l.exp(), "wall_s": started.elapsed().as_secs_f64()}))?;
            bar.println(format!("step {done}: train loss {loss_value:.4}, validation loss {l:.4} (perplexity {:.2})", l.exp()));
            eval_loss = Some(l);
        }
        if due(done, t.checkpoint_interval, end) {
            let state = TrainingState {
                step: done,
                rng: rng.clone(),
                config: cfg.clone(),
            };
            checkpoint::save(&ckpt_path, &model, &optimizer, &state)?;
        }
        if last && done < t.steps {
            bar.println(format!(
                "time limit reached after step {done}: checkpointed; --resume continues"
            ));
            break;
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    lm_core::params::save_safetensors(&model, &run_dir.join(MODEL_FILE))
        .map_err(|e| BasicsError::invalid("model", e.to_string()))?;
    plot_losses(
        &run_dir.join(METRICS_FILE),
        &run_dir.join(PLOT_FILE),
        &format!("{}", run_dir.display()),
    )?;
    Ok(RunOutcome {
        steps: end.saturating_sub(start),
        last_train_loss: last_loss,
        eval_loss,
        tokens_per_second: tokens_per_step * end.saturating_sub(start) as f64 / seconds.max(1e-9),
        seconds,
        checkpoint: ckpt_path,
    })
}

/// `config.toml` (full config) and `run.json` (provenance, one entry per start or resume).
fn write_run_files(cfg: &TrainConfig, run_dir: &Path, resume: bool, start: u64) -> Result<()> {
    let write = |name: &str, text: &str| {
        let p = run_dir.join(name);
        lm_core::fsutil::write_atomic(&p, text.as_bytes()).map_err(|e| BasicsError::BadFile {
            path: p,
            reason: e.to_string(),
        })
    };
    write(CONFIG_FILE, &cfg.to_toml())?;
    let run_json = run_dir.join("run.json");
    let mut starts: Vec<serde_json::Value> = std::fs::read_to_string(&run_json)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["starts"].as_array().cloned())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    starts.push(json!({
        "unix_time": now, "resume": resume, "from_step": start, "git_commit": checkpoint::git_commit(),
        "seed": cfg.train.seed, "argv": std::env::args().collect::<Vec<_>>(),
    }));
    write(
        "run.json",
        &serde_json::to_string_pretty(&json!({"starts": starts})).expect("json"),
    )
}
