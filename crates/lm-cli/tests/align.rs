//! `lm align …` end to end on a tiny random Qwen2 decoder with GPT-2's real tokenizer
//! (skipped with a note when `$LM_ASSETS/tokenizers/gpt2` has not been fetched).

mod common;

use std::path::{Path, PathBuf};

use common::lm;
use lm_core::pretrained::{Architecture, Decoder, DecoderConfig};
use serde_json::Value;

type B = burn::backend::NdArray<f32>;

const GSM8K: &str = concat!(
    r#"{"question": "What is 2 plus 3?", "answer": "2 + 3 = 5\n#### 5"}"#,
    "\n",
    r#"{"question": "Tom has 4 apples and eats 1. How many are left?", "answer": "4 - 1 = 3\n#### 3"}"#,
    "\n",
    r#"{"question": "What is 6 times 7?", "answer": "6 * 7 = 42\n#### 42"}"#,
    "\n",
    r#"{"question": "A box holds 1,200 pens. How many pens in two boxes?", "answer": "2 * 1200 = 2400\n#### 2,400"}"#,
    "\n",
);

/// A temp dir holding `model/` (a random Qwen2 decoder + GPT-2's tokenizer.json) and the
/// data files.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Option<Self> {
        let Some(tokenizer) = lm_core::assets::asset("tokenizers/gpt2/tokenizer.json") else {
            eprintln!("skipped: $LM_ASSETS/tokenizers/gpt2 absent (run shared/fetch-assets)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let config = DecoderConfig {
            arch: Architecture::Qwen2,
            vocab_size: 50_257,
            hidden_size: 32,
            intermediate_size: 64,
            num_layers: 1,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 8,
            rms_norm_eps: 1e-6,
            rope_theta: 1e6,
            rope_scaling: None,
            tie_word_embeddings: true,
            attention_bias: true,
            max_position_embeddings: 512,
        };
        let model = Decoder::<B>::random(config, 3, &Default::default()).unwrap();
        let model_dir = dir.path().join("model");
        model.save_hf_dir(&model_dir).unwrap();
        std::fs::copy(&tokenizer, model_dir.join("tokenizer.json")).unwrap();
        let fixture = Self { dir };
        fixture.write("gsm8k.jsonl", GSM8K);
        fixture.write(
            "sft.jsonl",
            concat!(
                r#"{"prompt": "Q: 2+3? A:", "response": " <answer>5</answer>"}"#,
                "\n",
                r#"{"prompt": "Q: 4-1? A:", "response": " <answer>3</answer>"}"#,
                "\n",
                r#"{"prompt": "Q: 6*7? A:", "response": " <answer>42</answer>", "ground_truth": "42"}"#,
                "\n",
                r#"{"prompt": "Q: 9/3? A:", "response": " <answer>3</answer>"}"#,
                "\n",
            ),
        );
        fixture.write(
            "dpo.jsonl",
            concat!(
                r#"{"prompt": "Say hi.", "chosen": " Hi there!", "rejected": " Go away."}"#,
                "\n",
                r#"{"prompt": "2+2?", "chosen": " 4", "rejected": " 5"}"#,
                "\n",
            ),
        );
        Some(fixture)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.path(name), text).unwrap();
        self.arg(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// `lm align <algo> --model model --config <toml> --data <data> --run-dir <run> extra…`.
    fn train(
        &self,
        algo: &str,
        config: &str,
        data: &str,
        run: &str,
        extra: &[&str],
    ) -> (bool, String, String) {
        let config = self.write(&format!("{algo}.toml"), config);
        let mut args = vec![
            "align".to_string(),
            algo.into(),
            "--model".into(),
            self.arg("model"),
            "--config".into(),
            config,
            "--data".into(),
            self.arg(data),
            "--run-dir".into(),
            self.arg(run),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        lm(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const SFT: &str =
    "steps = 3\nbatch_size = 2\nmicrobatch_size = 1\neval_every = 2\n[optim]\nlr = 1e-2\n";

#[test]
fn sft_run_writes_metrics_provenance_evals_and_a_reloadable_model() {
    let Some(f) = Fixture::new() else { return };
    let gsm8k = f.arg("gsm8k.jsonl");
    let (ok, _, err) = f.train(
        "sft",
        SFT,
        "sft.jsonl",
        "run",
        &[
            "--eval-data",
            &gsm8k,
            "--eval-limit",
            "2",
            "--max-tokens",
            "4",
            "--seed",
            "5",
        ],
    );
    assert!(ok, "{err}");
    let run = f.path("run");
    let steps = jsonl(&run.join("metrics.jsonl"));
    assert!(
        run.join("metrics.png").is_file(),
        "the run's metrics are plotted"
    );
    assert_eq!(steps.len(), 3);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i + 1);
        assert!(s["loss"].as_f64().unwrap().is_finite() && s["response_tokens"].as_u64() > Some(0));
    }
    // eval_every = 2: step 2 and the last step evaluate, on the 2 examples --eval-limit keeps.
    assert!(steps[1]["eval_accuracy"].is_number() && steps[0].get("eval_accuracy").is_none());
    for step in ["step-2", "step-3"] {
        assert_eq!(
            jsonl(&run.join("eval").join(step).join("records.jsonl")).len(),
            2
        );
    }
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!(config["steps"].as_integer(), Some(3));
    assert_eq!(
        config["seed"].as_integer(),
        Some(5),
        "--seed overrides the config"
    );
    assert_eq!(config["optim"]["lr"].as_float(), Some(1e-2));
    let info = json(&run.join("run.json"));
    assert!(!info["git_commit"].as_str().unwrap().is_empty());
    assert_eq!(
        (info["seed"].as_u64(), info["algorithm"].as_str()),
        (Some(5), Some("sft"))
    );
    assert!(
        info["command"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "sft")
    );
    // The trained weights moved and the saved model loads as `--model` again.
    let before = std::fs::read(f.path("model/model.safetensors")).unwrap();
    let after = std::fs::read(run.join("model/model.safetensors")).unwrap();
    assert_eq!(before.len(), after.len());
    assert_ne!(before, after);
    assert!(run.join("model/tokenizer.json").is_file());
    let out = f.arg("eval-trained");
    let model = run.join("model");
    let (ok, _, err) = lm(&[
        "align",
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &gsm8k,
        "--max-tokens",
        "4",
        "--output",
        &out,
    ]);
    assert!(ok, "{err}");
    // A finished run directory is not overwritten.
    let (ok, _, err) = f.train("sft", SFT, "sft.jsonl", "run", &[]);
    assert!(!ok && err.contains("finished run"), "{err}");
}

#[test]
fn eval_scores_every_example_of_a_gsm8k_file() {
    let Some(f) = Fixture::new() else { return };
    let out = f.path("eval");
    let (ok, stdout, err) = lm(&[
        "align",
        "eval",
        "--model",
        &f.arg("model"),
        "--data",
        &f.arg("gsm8k.jsonl"),
        "--max-tokens",
        "6",
        "--batch",
        "3",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let records = jsonl(&out.join("records.jsonl"));
    assert_eq!(records.len(), 4);
    assert_eq!(
        records[3]["ground_truth"], "2400",
        "GSM8K's `#### 2,400` drops the comma"
    );
    for r in &records {
        // The r1_zero template is the default: its text surrounds the question.
        let prompt = r["prompt"].as_str().unwrap();
        assert!(
            prompt.contains("Assistant: <think>") && prompt.contains("User: "),
            "{prompt}"
        );
        assert!(r["response_tokens"].as_u64().unwrap() <= 6);
    }
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["n"], 4);
    let accuracy = summary["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert!(
        stdout.contains("accuracy") && stdout.contains("format rate"),
        "{stdout}"
    );
}

#[test]
fn grpo_and_expert_iteration_take_a_step() {
    let Some(f) = Fixture::new() else { return };
    let grpo = "n_grpo_steps = 1\nrollout_batch_size = 4\ngroup_size = 2\ntrain_batch_size = 4\n\
                gradient_accumulation_steps = 2\nsampling_max_tokens = 6\nmax_batch_rows = 4\neval_every = 0\n";
    let (ok, _, err) = f.train("grpo", grpo, "gsm8k.jsonl", "grpo-run", &[]);
    assert!(ok, "{err}");
    let steps = jsonl(&f.path("grpo-run/metrics.jsonl"));
    assert!(f.path("grpo-run/metrics.png").is_file());
    assert_eq!(steps.len(), 1);
    let reward = steps[0]["reward"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&reward) && steps[0]["response_length"].as_f64().unwrap() <= 6.0);
    assert!(f.path("grpo-run/model/config.json").is_file());

    let ei = "n_ei_steps = 1\nquestions_per_step = 2\nsamples_per_question = 2\nsampling_max_tokens = 6\n\
              eval_every = 0\n[sft]\nbatch_size = 1\nmicrobatch_size = 1\n";
    let (ok, _, err) = f.train("ei", ei, "gsm8k.jsonl", "ei-run", &[]);
    assert!(ok, "{err}");
    let steps = jsonl(&f.path("ei-run/metrics.jsonl"));
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["rollouts"], 4);
    assert!(f.path("ei-run/model/config.json").is_file());
}

#[test]
fn dpo_starts_at_ln2_against_its_own_reference() {
    let Some(f) = Fixture::new() else { return };
    let config = "steps = 2\nbatch_size = 2\nmicrobatch_size = 1\n[optim]\nlr = 1e-3\n";
    let gsm8k = f.arg("gsm8k.jsonl");
    let eval = [
        "--eval-data",
        &gsm8k,
        "--eval-limit",
        "1",
        "--max-tokens",
        "2",
    ];
    let (ok, _, err) = f.train("dpo", config, "dpo.jsonl", "dpo-run", &eval);
    assert!(ok, "{err}");
    // eval_every = 0: one evaluation, after training.
    let evals: Vec<_> = std::fs::read_dir(f.path("dpo-run/eval")).unwrap().collect();
    assert_eq!(evals.len(), 1);
    assert_eq!(jsonl(&f.path("dpo-run/eval/final/records.jsonl")).len(), 1);
    let steps = jsonl(&f.path("dpo-run/metrics.jsonl"));
    assert_eq!(steps.len(), 2);
    // Policy = reference at step 1: every margin is 0, the loss -log σ(0).
    let loss = steps[0]["loss"].as_f64().unwrap();
    assert!((loss - std::f64::consts::LN_2).abs() < 1e-3, "{loss}");
    assert!(steps[1]["loss"].as_f64().unwrap().is_finite());
}

#[test]
fn bad_inputs_fail_naming_the_file_or_field() {
    let Some(f) = Fixture::new() else { return };
    let (ok, _, err) = f.train("sft", SFT, "missing.jsonl", "r1", &[]);
    assert!(!ok && err.contains("missing.jsonl"), "{err}");

    let (ok, _, err) = f.train(
        "sft",
        "steps = 3\nlearning_rate = 1.0\n",
        "sft.jsonl",
        "r2",
        &[],
    );
    assert!(
        !ok && err.contains("learning_rate") && err.contains("sft.toml"),
        "{err}"
    );

    f.write(
        "bad.jsonl",
        "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"prompt\": \"a\", \"chosen\": \"b\"}\n",
    );
    let (ok, _, err) = f.train("dpo", "steps = 1\n", "bad.jsonl", "r3", &[]);
    assert!(
        !ok && err.contains("bad.jsonl") && err.contains("line 2") && err.contains("rejected"),
        "{err}"
    );

    f.write(
        "bad-sft.jsonl",
        "{\"prompt\": \"a\", \"response\": \"b\"}\nnot json\n",
    );
    let (ok, _, err) = f.train("sft", SFT, "bad-sft.jsonl", "r4", &[]);
    assert!(!ok && err.contains("bad-sft.jsonl:2"), "{err}");

    let (ok, _, err) = lm(&[
        "align",
        "eval",
        "--model",
        &f.arg("model"),
        "--data",
        &f.arg("sft.jsonl"),
        "--output",
        &f.arg("o"),
    ]);
    assert!(
        !ok && err.contains("sft.jsonl") && err.contains("question"),
        "{err}"
    );
    // Nothing was started for the runs that failed on their inputs.
    assert!(!f.path("r2/metrics.jsonl").exists() && !f.path("r3").exists());
}

#[test]
fn fixture_configs_are_the_loops_defaults() {
    use lm_align::train::{DpoConfig, ExpertIterationConfig, GrpoConfig, SftConfig};
    fn read<C: serde::de::DeserializeOwned>(name: &str) -> C {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/configs")
            .join(name);
        toml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
    assert_eq!(read::<SftConfig>("align-sft.toml"), SftConfig::default());
    assert_eq!(
        read::<ExpertIterationConfig>("align-ei.toml"),
        ExpertIterationConfig::default()
    );
    assert_eq!(read::<GrpoConfig>("align-grpo.toml"), GrpoConfig::default());
    assert_eq!(read::<DpoConfig>("align-dpo.toml"), DpoConfig::default());
}
