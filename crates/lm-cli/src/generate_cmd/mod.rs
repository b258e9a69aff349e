//! `lm generate`: batched generation through the engine, from a pretrained model (a Hugging
//! Face directory or a GGUF file) or a lab-1 checkpoint, streaming to the terminal.

mod prompts;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use clap::Args;
use lm_core::generate::{
    CausalLm, Completion, Detokenizer, Engine, Event, Request, SamplingParams,
};
use lm_core::pretrained::Decoder;

use prompts::{ChatStyle, PromptSpec};

#[derive(Args)]
pub struct GenerateArgs {
    /// A pretrained model: a Hugging Face directory (config.json, *.safetensors,
    /// tokenizer.json) or a GGUF file (tokenizer from its metadata).
    #[arg(
        long,
        conflicts_with = "checkpoint",
        required_unless_present = "checkpoint"
    )]
    model: Option<PathBuf>,
    /// A lab-1 checkpoint (with `--tokenizer DIR`, the lab-1 BPE files).
    #[arg(long, requires = "tokenizer")]
    checkpoint: Option<PathBuf>,
    /// Tokenizer: a lab-1 tokenizer directory with --checkpoint; with --model, a
    /// tokenizer.json overriding the model's own.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// A prompt (repeatable; all run batched).
    #[arg(
        long = "prompt",
        conflicts_with = "prompts_file",
        required_unless_present = "prompts_file"
    )]
    prompts: Vec<String>,
    /// JSONL of prompts: `{"prompt": …}` or `{"messages": [{"role", "content"}]}`, optionally
    /// with `seed`, `max_tokens`, `temperature`.
    #[arg(long = "prompts")]
    prompts_file: Option<PathBuf>,
    /// Wrap each --prompt in the model's chat template (as a user message).
    #[arg(long)]
    chat: bool,
    /// System message for --chat.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 = greedy (the default: reproducible); otherwise sampled with --top-p / --top-k.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long)]
    top_k: Option<usize>,
    /// Prompt i samples from its own stream seeded `seed + i` (unless its JSONL line sets one).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop strings (repeatable); the model's end-of-text tokens always stop too.
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Keep generating past the model's end-of-text tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Sequences decoded together (KV-cache rows; finished ones are refilled).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Record each token's log-prob in the JSONL output.
    #[arg(long)]
    logprobs: bool,
    /// Write the completions as JSONL here (atomically) instead of printing them.
    #[arg(long)]
    output: Option<PathBuf>,
    /// `ndarray` (CPU) or a GPU backend this build has (`cuda`, `wgpu`).
    #[arg(long, default_value = "ndarray")]
    backend: String,
    /// On the CPU, decode with the f32 weights even where a GGUF file's quantised blocks
    /// could be multiplied directly (same values, several times less memory per token).
    #[arg(long)]
    f32_weights: bool,
}

type DecodeFn = Box<dyn Fn(&[u32]) -> String + Sync>;
type EncodeFn = Box<dyn Fn(&str) -> anyhow::Result<Vec<u32>>>;

/// What a model brings besides its weights: its tokenizer's two directions, end-of-text
/// tokens and chat template.
struct Text {
    detok: DecodeFn,
    encode: EncodeFn,
    eos: Vec<u32>,
    chat_template: Option<String>,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    match args.backend.as_str() {
        "ndarray" => run_on::<lm_core::backends::NdArray>(&args),
        #[cfg(feature = "cuda")]
        "cuda" if lm_core::backends::cuda_fusion(false) => run_on::<lm_core::backends::Cuda>(&args),
        #[cfg(feature = "cuda")]
        "cuda" => run_on::<lm_core::backends::CudaUnfused>(&args),
        #[cfg(feature = "wgpu")]
        "wgpu" => run_on::<lm_core::backends::Wgpu>(&args),
        other => {
            bail!("backend `{other}` is not in this build: rebuild lm with `--features {other}`")
        }
    }
}

fn run_on<B: Backend>(args: &GenerateArgs) -> anyhow::Result<()> {
    let device = B::Device::default();
    let started = Instant::now();
    if let Some(path) = &args.model {
        let pack = args.backend == "ndarray" && !args.f32_weights;
        let (model, text) = load_pretrained::<B>(path, args.tokenizer.as_deref(), &device, pack)?;
        eprintln!("loaded {} in {:.1?}", path.display(), started.elapsed());
        generate(&model, &text, args)
    } else {
        let ckpt = args
            .checkpoint
            .as_ref()
            .expect("clap requires --model or --checkpoint");
        let dir = args
            .tokenizer
            .as_ref()
            .expect("clap requires --tokenizer with --checkpoint");
        let (model, _) = lm_basics::train::checkpoint::load_model::<B>(ckpt, &device)?;
        let tok = lm_basics::tokenizer::files::from_dir(dir)?;
        let eos = tok.token_id(b"<|endoftext|>").into_iter().collect();
        let tok = std::sync::Arc::new(tok);
        let t2 = tok.clone();
        let text = Text {
            detok: Box::new(move |ids: &[u32]| t2.decode(ids).unwrap_or_default()),
            encode: Box::new(move |s: &str| Ok(tok.encode(s))),
            eos,
            chat_template: None,
        };
        generate(&model, &text, args)
    }
}

fn load_pretrained<B: Backend>(
    path: &Path,
    tokenizer: Option<&Path>,
    device: &B::Device,
    pack: bool,
) -> anyhow::Result<(Decoder<B>, Text)> {
    let loaded = crate::pretrained_load::load_pretrained::<B>(path, tokenizer, device, pack)?;
    let tok = std::sync::Arc::new(loaded.tokenizer);
    let (t1, t2) = (tok.clone(), tok.clone());
    let text = Text {
        detok: Box::new(move |ids: &[u32]| t1.decode(ids, true).unwrap_or_default()),
        encode: Box::new(move |s: &str| Ok(t2.encode(s, true)?)),
        eos: tok.eos_token_ids(),
        chat_template: tok.chat_template().map(str::to_string),
    };
    Ok((loaded.model, text))
}

fn generate<B: Backend, M: CausalLm<B>>(
    model: &M,
    text: &Text,
    args: &GenerateArgs,
) -> anyhow::Result<()> {
    let specs = match &args.prompts_file {
        Some(path) => prompts::from_jsonl(path)?,
        None => prompts::from_flags(&args.prompts),
    };
    let template = text.chat_template.as_deref();
    if args.chat && template.is_none() {
        bail!("--chat: this model has no chat template");
    }
    let style = template.map(|t| ChatStyle {
        template: t,
        system: args.system.as_deref(),
        bos: "",
        eos: "",
    });
    let requests = build_requests(&specs, text, args, style.as_ref())?;
    let longest = requests
        .iter()
        .map(|r| r.prompt.len() + r.params.max_tokens)
        .max()
        .unwrap_or(1);
    let max_len = longest.min(model.max_positions());
    let rows = args.batch.min(requests.len()).max(1);
    let detok: &dyn Detokenizer = &text.detok;
    let mut engine = Engine::new(model, rows, max_len)?
        .with_detokenizer(detok)
        .with_seed(args.seed);

    let single = requests.len() == 1 && args.output.is_none();
    let prompt_tokens: usize = requests.iter().map(|r| r.prompt.len()).sum();
    let started = Instant::now();
    let mut stdout = std::io::stdout().lock();
    let completions = engine.generate(requests, |event| {
        // One prompt streams its text; several print each completion when it finishes.
        match event {
            Event::Token { text, .. } if single => {
                let _ = write!(stdout, "{text}");
                let _ = stdout.flush();
            }
            Event::Finished(c) if !single && args.output.is_none() => {
                let _ = writeln!(stdout, "{}", serde_json::to_string(c).unwrap_or_default());
            }
            _ => {}
        }
    })?;
    if single {
        let _ = writeln!(stdout);
    }
    report(&completions, prompt_tokens, started);
    if let Some(out) = &args.output {
        write_jsonl(out, &completions)?;
        eprintln!(
            "wrote {} completions to {}",
            completions.len(),
            out.display()
        );
    }
    Ok(())
}

fn build_requests(
    specs: &[PromptSpec],
    text: &Text,
    args: &GenerateArgs,
    chat: Option<&ChatStyle<'_>>,
) -> anyhow::Result<Vec<Request>> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let rendered = prompts::render(spec, chat, args.chat, i)?;
            let prompt = (text.encode)(&rendered).with_context(|| format!("prompt {}", i + 1))?;
            let params = SamplingParams {
                temperature: spec.temperature.unwrap_or(args.temperature),
                top_k: args.top_k,
                top_p: args.top_p,
                max_tokens: spec.max_tokens.unwrap_or(args.max_tokens),
                stop: args.stop.clone(),
                stop_token_ids: if args.ignore_eos {
                    vec![]
                } else {
                    text.eos.clone()
                },
                seed: Some(spec.seed.unwrap_or(args.seed + i as u64)),
                logprobs: args.logprobs,
            };
            params
                .validate()
                .with_context(|| format!("prompt {}", i + 1))?;
            Ok(Request {
                id: i as u64,
                prompt,
                params,
            })
        })
        .collect()
}

fn report(completions: &[Completion], prompt_tokens: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let generated: usize = completions.iter().map(|c| c.tokens.len()).sum();
    eprintln!(
        "{} sequences: {prompt_tokens} prompt + {generated} generated tokens in {secs:.2} s ({:.1} generated tokens/s)",
        completions.len(),
        generated as f64 / secs.max(1e-9)
    );
}

fn write_jsonl(path: &Path, completions: &[Completion]) -> anyhow::Result<()> {
    let mut file = lm_core::fsutil::AtomicFile::create(path)?;
    for c in completions {
        writeln!(file, "{}", serde_json::to_string(c)?)?;
    }
    file.commit()?;
    Ok(())
}
