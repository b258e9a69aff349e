use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::bench;
use xtask::conformance::{self, BackendKind, Options, report};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tasks for the CS336 Rust stack")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run golden cases (shared/golden format) through our ops and compare.
    Conformance {
        /// Golden directory holding manifest.json and cases/ [default: $LM_SHARED/golden,
        /// else ../shared/golden].
        #[arg(long)]
        golden: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "ndarray")]
        backend: BackendKind,
        /// Only these ops (or case names); repeatable. Default: every case.
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// Add every op of an assignment (1, 2, 3 or 5) to the filters; repeatable.
        #[arg(long)]
        lab: Vec<u8>,
        /// Multiply every tolerance by this factor (non-IEEE-f32 backends only).
        #[arg(long, default_value_t = 1.0)]
        tol_factor: f64,
        /// Matrix-product precision: `f32` (strict, the golden tolerances) or `tf32` (TF32
        /// GEMMs on CUDA; tolerances × 1000, printed). `bf16-mixed` is checked by training.
        #[arg(long, default_value = "f32", value_parser = xtask::lab2::parse_config_name::<lm_core::config::Precision>)]
        precision: lm_core::config::Precision,
    },
    /// Benchmarks: ours and the peers in one run, with ratios (see docs/PERF.md).
    Bench {
        #[command(subcommand)]
        what: BenchTarget,
    },
    /// Lab 1 end to end on generated data: corpus, tokenizer, training, evaluation, samples.
    Lab1 {
        /// Run directory [default: runs/lab1-<unix time>].
        #[arg(long)]
        run_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Size of the generated training corpus in MB.
        #[arg(long, default_value_t = 3.0)]
        corpus_mb: f64,
        /// Training steps (batch 16 × 128 tokens; about 1 s each on 2 cores).
        #[arg(long, default_value_t = 160)]
        steps: u64,
    },
    /// Lab 2 profiling harness: forward, backward and optimizer times (mean ± std) and device
    /// memory of the course's model sizes, beside the PyTorch baseline's (--baseline).
    Lab2(xtask::lab2::Lab2Args),
    /// Lab 3 end to end: fits on the course's IsoFLOP data, then plan → query a local
    /// training API → fit → plots → predictions for 1e23/1e24 FLOPs.
    Lab3(xtask::lab3::Lab3Args),
    /// Lab 5 end to end on generated arithmetic: pretrain a tiny LM, SFT, GRPO, held-out
    /// accuracy after each stage (--smoke: toy size).
    Lab5(xtask::lab5::Lab5Args),
    /// (internal) one lab-2 profiling case in a child process.
    #[command(hide = true)]
    Lab2Worker {
        #[arg(long, value_enum)]
        backend: BackendKind,
        #[arg(long)]
        case: String,
    },
    /// (internal) one BPE training run in a child process, for per-trainer peak RSS.
    #[command(hide = true)]
    BenchTrainWorker {
        #[arg(long, value_enum)]
        trainer: bench::tokenizer::Trainer,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        vocab_size: usize,
    },
    /// (internal) one attention measurement in a child process (OOM stays contained).
    #[command(hide = true)]
    BenchAttentionWorker {
        #[arg(long)]
        shape: String,
        #[arg(long, value_enum)]
        backend: BackendKind,
        #[arg(long, value_enum)]
        implementation: bench::attention::Implementation,
    },
}

#[derive(Subcommand)]
enum BenchTarget {
    /// BPE training vs HF tokenizers; encoding vs tiktoken-rs and HF tokenizers.
    Tokenizer {
        /// Repetitions per measurement (the best is kept).
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// Lab 4 vs the course's Python tools (FastWARC, Resiliparse, fastText, datasketch), one
    /// core each, on the real HTML pages of $LM_ASSETS/html (bench/python_data.py).
    Data {
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Only the first N pages (0: all 4,898).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Generation (our engine, CPU) vs Hugging Face transformers `generate` on the same GGUF
    /// weights and prompts, greedy (bench/python_generate.py). With --random: random weights
    /// of a preset's shape on --backend (the GPU benchmark), random prompt ids.
    Generate {
        /// GGUF files (default: both models of `shared/fetch-assets --models`).
        #[arg(long = "model", conflicts_with = "random")]
        models: Vec<PathBuf>,
        /// Random weights of this shape instead of GGUF files.
        #[arg(long, value_enum)]
        random: Option<bench::generate_random::Preset>,
        /// Backend of our engine (--random only; GGUF mode runs on ndarray).
        #[arg(long, value_enum, default_value = "ndarray", requires = "random")]
        backend: BackendKind,
        #[arg(long = "batch", default_values_t = [1, 8])]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 64)]
        new_tokens: usize,
        /// Prompt tokens per row (--random only).
        #[arg(long, default_value_t = 256, requires = "random")]
        prompt_len: usize,
        /// New tokens of the warm-up run before each timed one (--random only).
        #[arg(long, default_value_t = 4, requires = "random")]
        warmup_tokens: usize,
        /// New tokens of a run after the timed one that times each decode step (host launch
        /// time, device wait, sampling; one device sync a step); 0 skips it (--random only).
        #[arg(long, default_value_t = 32, requires = "random")]
        step_timing_tokens: usize,
        /// Seed of the random weights and prompt ids (--random only).
        #[arg(long, default_value_t = 0, requires = "random")]
        seed: u64,
        /// transformers dtypes, one column each (--random only).
        #[arg(long = "dtype", default_values_t = ["float32".to_string(), "bfloat16".to_string()], requires = "random")]
        dtypes: Vec<String>,
        /// Only our engine; the transformers columns read n/a (--random only).
        #[arg(long, requires = "random")]
        skip_peer: bool,
        #[arg(long, default_value = "python3")]
        python: String,
        /// The peer script (a bundle run outside the source tree passes its copy).
        #[arg(long, default_value = "bench/python_generate.py")]
        script: PathBuf,
    },
    /// The course models' matrix products: ours (cuBLASLt on CUDA) vs burn's matmul vs
    /// PyTorch's torch.matmul (bench/pytorch_gemm.py, run first), TFLOP/s and ratios.
    Gemm {
        #[arg(long, value_enum, default_value = "cuda")]
        backend: BackendKind,
        #[arg(long = "size", value_delimiter = ',', default_values_t = ["small".to_string(), "medium".to_string(), "large".to_string(), "xl".to_string()])]
        sizes: Vec<String>,
        /// f32 (strict), tf32, bf16.
        #[arg(long = "precision", value_delimiter = ',', default_values_t = ["f32".to_string(), "tf32".to_string(), "bf16".to_string()])]
        precisions: Vec<String>,
        #[arg(long = "kind", value_enum, value_delimiter = ',', default_values_t = [bench::gemm::Kind::Fwd, bench::gemm::Kind::Dx, bench::gemm::Kind::Dw])]
        kinds: Vec<bench::gemm::Kind>,
        /// Also time burn's own matmul (autotunes every new shape: slow on a cold cache).
        #[arg(long)]
        with_burn: bool,
        /// Only ours (and burn's); the PyTorch column reads "-".
        #[arg(long)]
        skip_peer: bool,
        #[arg(long, default_value = "python3")]
        python: String,
        #[arg(long, default_value = "bench/pytorch_gemm.py")]
        script: PathBuf,
    },
    /// The harness's optimizer phase alone (clip + AdamW over a course size's parameters) in
    /// each buffer layout of the fused step vs PyTorch's clip_grad_norm_ + fused AdamW
    /// (bench/pytorch_adamw.py, run first), ms per step and ratios.
    Adamw {
        #[arg(long, value_enum, default_value = "cuda")]
        backend: BackendKind,
        #[arg(long = "size", value_delimiter = ',', default_values_t = ["small".to_string(), "medium".to_string(), "large".to_string(), "xl".to_string()])]
        sizes: Vec<String>,
        /// concat (everything in chunks), alone (every parameter its own buffers),
        /// alone-from-N (parameters of N+ values alone, the rest concatenated).
        #[arg(long = "layout", value_delimiter = ',', default_values_t = ["concat".to_string(), "alone".to_string(), "alone-from-1048576".to_string()])]
        layouts: Vec<String>,
        /// Only ours; the PyTorch column reads "-".
        #[arg(long)]
        skip_peer: bool,
        #[arg(long, default_value = "python3")]
        python: String,
        #[arg(long, default_value = "bench/pytorch_adamw.py")]
        script: PathBuf,
    },
    /// FlashAttention-2 (ours) vs burn's unfused attention, latency and TFLOP/s; PyTorch's
    /// SDPA comes from bench/pytorch_attention.py in the same device run (bench/gpu_lab2.sh).
    Attention {
        #[arg(long, value_enum, default_value = "cuda")]
        backend: BackendKind,
        #[arg(long, value_enum, default_value = "full")]
        grid: bench::attention::Grid,
        /// Skip the unfused attention above this length (its score matrix is seq² per head).
        #[arg(long, default_value_t = 16384)]
        plain_max_seq: usize,
    },
}

fn shared_dir() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"))
}

fn assets_dir() -> PathBuf {
    lm_core::assets::assets_dir()
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    lm_core::kernel_cache::init();
    match cli.task {
        Task::Bench {
            what:
                BenchTarget::Data {
                    reps,
                    limit,
                    python,
                },
        } => finish(bench::data::run(&bench::data::DataBenchOptions {
            html_dir: assets_dir().join("html"),
            lid_model: shared_dir().join("assets/fasttext/lid.176.ftz"),
            work_dir: PathBuf::from("runs/bench-data"),
            python,
            reps,
            limit,
        })),
        Task::Bench {
            what:
                BenchTarget::Generate {
                    models,
                    random,
                    backend,
                    batches,
                    new_tokens,
                    prompt_len,
                    warmup_tokens,
                    step_timing_tokens,
                    seed,
                    dtypes,
                    skip_peer,
                    python,
                    script,
                },
        } => {
            if let Some(preset) = random {
                return finish(bench::generate_random::run(
                    &bench::generate_random::RandomBenchOptions {
                        preset,
                        backend,
                        batches,
                        prompt_len,
                        new_tokens,
                        warmup_tokens,
                        step_timing_tokens,
                        seed,
                        dtypes,
                        python,
                        script,
                        skip_peer,
                        work_dir: PathBuf::from("runs/bench-generate-random"),
                    },
                ));
            }
            let models = if models.is_empty() {
                let dir = assets_dir().join("models/gguf");
                vec![
                    dir.join("SmolLM2-135M-Instruct.Q4_1.gguf"),
                    dir.join("Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf"),
                ]
            } else {
                models
            };
            finish(bench::generate::run(
                &bench::generate::GenerateBenchOptions {
                    models,
                    batches,
                    new_tokens,
                    python,
                    script,
                    work_dir: PathBuf::from("runs/bench-generate"),
                },
            ))
        }
        Task::Bench {
            what: BenchTarget::Tokenizer { reps },
        } => finish(bench::tokenizer::run(&shared_dir(), &assets_dir(), reps)),
        Task::Bench {
            what:
                BenchTarget::Attention {
                    backend,
                    grid,
                    plain_max_seq,
                },
        } => finish(bench::attention::run(backend, grid, plain_max_seq)),
        Task::Bench {
            what:
                BenchTarget::Gemm {
                    backend,
                    sizes,
                    precisions,
                    kinds,
                    with_burn,
                    skip_peer,
                    python,
                    script,
                },
        } => finish(bench::gemm::run(&bench::gemm::GemmBenchOptions {
            backend,
            sizes,
            precisions,
            kinds,
            with_burn,
            peer: (!skip_peer).then_some((python, script)),
        })),
        Task::Bench {
            what:
                BenchTarget::Adamw {
                    backend,
                    sizes,
                    layouts,
                    skip_peer,
                    python,
                    script,
                },
        } => finish(
            layouts
                .iter()
                .map(|l| l.parse().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()
                .and_then(|layouts| {
                    bench::adamw::run(&bench::adamw::AdamwBenchOptions {
                        backend,
                        sizes,
                        layouts,
                        peer: (!skip_peer).then_some((python, script)),
                    })
                }),
        ),
        Task::BenchAttentionWorker {
            shape,
            backend,
            implementation,
        } => finish(bench::attention::worker(backend, &shape, implementation)),
        Task::Lab1 {
            run_dir,
            seed,
            corpus_mb,
            steps,
        } => finish(xtask::lab1::run(xtask::lab1::Lab1Options {
            run_dir,
            seed,
            corpus_mb,
            steps,
        })),
        Task::Lab2(args) => finish(xtask::lab2::run(&args.into_options(unix_time()))),
        Task::Lab2Worker { backend, case } => finish(xtask::lab2::worker(backend, &case)),
        Task::Lab3(args) => finish(xtask::lab3::run(&args, unix_time())),
        Task::Lab5(args) => finish(xtask::lab5::run(&args, unix_time())),
        Task::BenchTrainWorker {
            trainer,
            input,
            vocab_size,
        } => finish(bench::tokenizer::train_worker(trainer, &input, vocab_size)),
        Task::Conformance {
            golden,
            backend,
            mut filters,
            lab,
            tol_factor,
            precision,
        } => {
            for n in lab {
                let Some(ops) = conformance::lab_ops(n) else {
                    eprintln!("error: --lab {n}: the golden set has assignments 1, 2, 3 and 5");
                    return ExitCode::from(2);
                };
                filters.extend(ops.iter().map(|s| s.to_string()));
            }
            let golden = golden.unwrap_or_else(conformance::default_golden_dir);
            let opts = Options {
                golden,
                backend,
                filters,
                tol_factor,
                precision,
            };
            if opts.tolerance_factor() != 1.0 {
                println!(
                    "note: tolerances multiplied by {} (precision {precision:?}, --tol-factor {tol_factor})",
                    opts.tolerance_factor()
                );
            }
            println!("{}", report::header());
            match conformance::run(&opts, &mut |r| println!("{}", report::row(r))) {
                Ok(rep) => {
                    println!("{}", report::summary(&rep));
                    if rep.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
