//! The training loop, generic over any autodiff backend.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::ElementConversion;
use burn::tensor::backend::{AutodiffBackend, Backend};
use indicatif::{ProgressBar, ProgressStyle};
use lm_core::TransformerLm;
use lm_core::functional::cross_entropy;
use lm_core::optim::AdamW;
use lm_core::parallel::{
    ParallelMode, ParallelRank, RankTrainer, Replica, SingleProcess, rank_rows,
};
use lm_core::summary::forward_flops_per_token;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::checkpoint::{self, TrainingState, adamw_config};
use super::config::TrainConfig;
use super::metrics::{METRICS_FILE, MetricsLog, PLOT_FILE, plot_losses};
use super::profile::{Phase, PhaseProfile};
use super::step_log::{StepLog, StepRecord};
use crate::data::{TokenFile, get_batch, sequential_batches};
use crate::error::{BasicsError, Result};

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const MODEL_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.toml";
pub const PROFILE_FILE: &str = "profile.json";

/// The error for a non-finite loss found when step `r` is read back after step `done`.
fn diverged(r: &StepRecord, done: u64, ckpt_path: &Path) -> BasicsError {
    BasicsError::invalid(
        "training",
        format!(
            "loss is {} at step {}; stopped after step {done} without saving. Last good checkpoint: {}",
            r.loss,
            r.step,
            if ckpt_path.exists() {
                ckpt_path.display().to_string()
            } else {
                "none yet".into()
            }
        ),
    )
}

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
/// RNG + config), `model.safetensors` (course names) and `loss_curve.png`. Losses are read
/// back every `train.log_interval` steps and before each evaluation and checkpoint; a
/// non-finite one stops the run with an error before anything more is saved, so the last
/// checkpoint stays the last good one.
pub fn train<B: AutodiffBackend>(
    cfg: &TrainConfig,
    run_dir: &Path,
    resume: bool,
    device: &B::Device,
    show_progress: bool,
) -> Result<RunOutcome> {
    train_data_parallel::<B>(cfg, run_dir, resume, device, show_progress, None)
}

/// What a checkpoint's optimizer state covers: `None` for the whole model, else the
/// `train.ddp` that sharded it and over how many ranks.
fn optimizer_shards(ddp: &str, world_size: usize) -> Option<(String, usize)> {
    let sharded = ParallelMode::parse(ddp, None).is_some_and(ParallelMode::shards_optimizer);
    (sharded && world_size > 1).then(|| (ddp.to_string(), world_size))
}

fn describe_shards(shards: &Option<(String, usize)>) -> String {
    match shards {
        None => "for the whole model".into(),
        Some((ddp, n)) => format!("sharded over {n} ranks (train.ddp = {ddp})"),
    }
}

/// [`train`] as one rank of a data-parallel run when `parallel` is given: every rank draws
/// the same global batch (`train.batch_size` rows) and trains on its share of the rows;
/// the rank's [`RankTrainer`] starts from rank 0's parameters and synchronises gradients
/// (and shards state, per `train.ddp`), so the run computes what one process would on the
/// whole batch. Each rank keeps its own run directory (the launcher gives ranks > 0 a
/// subdirectory) and checkpoint, which under sharding holds its own optimizer shard, so a
/// resume needs the same `train.ddp` and number of ranks; logged losses are the mean over
/// ranks.
pub fn train_data_parallel<B: AutodiffBackend>(
    cfg: &TrainConfig,
    run_dir: &Path,
    resume: bool,
    device: &B::Device,
    show_progress: bool,
    parallel: Option<Box<dyn ParallelRank<B>>>,
) -> Result<RunOutcome> {
    cfg.validate()?;
    let (rank, world) = parallel
        .as_ref()
        .map_or((0, 1), |p| (p.rank(), p.world_size()));
    let step_err =
        |e: String| BasicsError::invalid(if world > 1 { "distributed" } else { "training" }, e);
    let rows = rank_rows(cfg.train.batch_size, rank, world).ok_or_else(|| {
        BasicsError::invalid(
            "train.batch_size",
            format!(
                "{} does not divide over {world} ranks",
                cfg.train.batch_size
            ),
        )
    })?;
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

    let (model, optimizer, mut rng, start) = if resume {
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
        let saved = optimizer_shards(&state.config.train.ddp, state.world_size);
        let now = optimizer_shards(&cfg.train.ddp, world);
        if saved != now {
            return Err(BasicsError::invalid(
                "train.ddp",
                format!(
                    "{} holds optimizer state {}, this run's is {}: resume with the train.ddp \
                     and number of ranks it was written with",
                    ckpt_path.display(),
                    describe_shards(&saved),
                    describe_shards(&now)
                ),
            ));
        }
        (model, optimizer, state.rng, state.step)
    } else {
        let model = TransformerLm::<B>::new(&cfg.model, cfg.train.seed, device)
            .map_err(|e| BasicsError::invalid("model", e.to_string()))?;
        // Batches draw from their own stream so model init and data order are independent.
        let rng = ChaCha8Rng::seed_from_u64(cfg.train.seed ^ 0x5EED_DA7A);
        (model, AdamW::new(adamw_config(cfg)), rng, 0)
    };
    let mut trainer: Box<dyn RankTrainer<B>> = match parallel {
        Some(p) => p.start(model, optimizer).map_err(step_err)?,
        None => Box::new(Replica::new(model, optimizer, Box::new(SingleProcess))),
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
    let mut step_log = StepLog::<B::InnerBackend>::default();
    let mut profile = PhaseProfile::new(start, t.profile_steps);

    for step in start..t.steps {
        profile.begin::<B>(step, device)?;
        let lr = cfg.lr_at(step);
        let (x, y) = get_batch::<B>(&train_data, t.batch_size, context, &mut rng, device)?;
        let (x, y) = if rows.len() < t.batch_size {
            (
                x.slice([rows.clone(), 0..context]),
                y.slice([rows.clone(), 0..context]),
            )
        } else {
            (x, y)
        };
        profile.end::<B>(Phase::Data, device)?;
        let loss = cross_entropy(trainer.forward(x).map_err(step_err)?, y);
        profile.end::<B>(Phase::Forward, device)?;
        trainer.backward(loss.clone()).map_err(step_err)?;
        profile.end::<B>(Phase::Backward, device)?;
        let loss = loss.inner(); // the graph was consumed by backward
        let clip = (cfg.optimizer.grad_clip > 0.0).then_some(cfg.optimizer.grad_clip);
        let sq_norm = trainer.step(lr, clip).map_err(step_err)?;
        profile.end::<B>(Phase::Optimizer, device)?;
        let done = step + 1;
        step_log.push(done, lr, loss, sq_norm);

        // Past the time limit, this step is the last: it evaluates and checkpoints. (No
        // prediction from step times: a GPU's first step includes minutes of kernel compiling.)
        let mut last = done == t.steps
            || t.max_seconds
                .is_some_and(|limit| started.elapsed().as_secs_f64() >= limit);
        if t.max_seconds.is_some() {
            // Clocks differ between ranks; they must stop at the same step.
            last = trainer.mean(f64::from(u8::from(last))).map_err(step_err)? > 0.0;
        }
        if last {
            end = done;
        }
        let evaluate_now = due(done, t.eval_interval, end);
        let checkpoint_now = due(done, t.checkpoint_interval, end);
        if step_log.len() as u64 >= t.log_interval || evaluate_now || checkpoint_now {
            for mut r in step_log.flush() {
                r.loss = trainer.mean(r.loss).map_err(step_err)?;
                if !r.loss.is_finite() {
                    bar.abandon();
                    return Err(diverged(&r, done, &ckpt_path));
                }
                let tokens_per_s = tokens_per_step / r.seconds;
                let mut record = json!({
                    "step": r.step, "loss": r.loss, "lr": r.lr, "grad_norm": r.grad_norm,
                    "tokens_per_s": tokens_per_s, "wall_s": started.elapsed().as_secs_f64(),
                });
                if let Some(peak) = t.peak_tflops {
                    record["mfu"] = json!(flops_per_token * tokens_per_s / (peak * 1e12));
                }
                metrics.log(record)?;
                last_loss = r.loss;
            }
            bar.set_message(format!("loss {last_loss:.3}"));
            bar.set_position(done);
        }
        if profile.finished_at(done)
            && let Some((table, json)) = profile.report()
        {
            bar.println(table);
            let text = serde_json::to_string_pretty(&json).expect("json");
            write_run_file(run_dir, PROFILE_FILE, &text)?;
        }
        // Under sharding the whole model is gathered (by every rank) only here.
        let model = match evaluate_now || checkpoint_now {
            true => Some(trainer.model().map_err(step_err)?),
            false => None,
        };
        if let (true, Some(model)) = (evaluate_now, &model) {
            let l = evaluate(
                &model.valid(),
                &valid_data,
                t.batch_size,
                t.eval_batches,
                device,
            )?;
            metrics.log(json!({"step": done, "eval_loss": l, "perplexity": l.exp(), "wall_s": started.elapsed().as_secs_f64()}))?;
            bar.println(format!(
                "step {done}: train loss {last_loss:.4}, validation loss {l:.4} (perplexity {:.2})",
                l.exp()
            ));
            eval_loss = Some(l);
        }
        if let (true, Some(model)) = (checkpoint_now, &model) {
            let state = TrainingState {
                step: done,
                rng: rng.clone(),
                config: cfg.clone(),
                world_size: world,
            };
            checkpoint::save(&ckpt_path, model, trainer.optimizer(), &state)?;
        }
        if evaluate_now || checkpoint_now {
            step_log.restart_clock();
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
    let model = trainer.model().map_err(step_err)?;
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

/// Writes `run_dir/name` atomically.
fn write_run_file(run_dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = run_dir.join(name);
    lm_core::fsutil::write_atomic(&path, text.as_bytes()).map_err(|e| BasicsError::BadFile {
        path,
        reason: e.to_string(),
    })
}

/// `config.toml` (full config) and `run.json` (provenance, one entry per start or resume).
fn write_run_files(cfg: &TrainConfig, run_dir: &Path, resume: bool, start: u64) -> Result<()> {
    write_run_file(run_dir, CONFIG_FILE, &cfg.to_toml())?;
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
    write_run_file(
        run_dir,
        "run.json",
        &serde_json::to_string_pretty(&json!({"starts": starts})).expect("json"),
    )
}
