//! An alignment run's directory: `config.toml` (resolved), `run.json` (provenance),
//! `metrics.jsonl`, `eval/step-N/`, and at the end `model/` (a Hugging Face directory
//! `lm generate --model` loads). `model/config.json` is written last: it marks a finished run.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use lm_align::train::MetricsLog;
use lm_core::fsutil::write_atomic;
use lm_core::pretrained::Decoder;
use lm_core::provenance::git_commit;
use lm_core::{LmError, Result};
use serde::Serialize;

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `path`, refusing one that holds a finished run (an interrupted one is
    /// started over).
    pub fn create(path: &Path) -> Result<Self> {
        let run = Self {
            path: path.to_path_buf(),
        };
        if run.model_dir().join("config.json").exists() {
            return Err(LmError::config(
                "run-dir",
                format!(
                    "{} already holds a finished run (its model/); pick another directory",
                    path.display()
                ),
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| LmError::io(path, e))?;
        Ok(run)
    }

    /// Writes the resolved config and `run.json` (commit, seed, algorithm, command line).
    pub fn write_start<C: Serialize>(&self, config: &C, algorithm: &str, seed: u64) -> Result<()> {
        let toml = toml::to_string(config).map_err(|e| LmError::config("config", e.to_string()))?;
        write_atomic(&self.path.join("config.toml"), toml.as_bytes())?;
        let info = serde_json::json!({
            "git_commit": git_commit(),
            "algorithm": algorithm,
            "seed": seed,
            "command": std::env::args().collect::<Vec<_>>(),
        });
        let json = serde_json::to_vec_pretty(&info)
            .map_err(|e| LmError::config("run.json", e.to_string()))?;
        write_atomic(&self.path.join("run.json"), &json)
    }

    /// `metrics.jsonl` (or `<name>.jsonl`), printed per step as well.
    pub fn metrics(&self, name: &str) -> Result<MetricsLog> {
        MetricsLog::create(&self.path.join(format!("{name}.jsonl")), false)
    }

    pub fn eval_dir(&self, name: &str) -> PathBuf {
        self.path.join("eval").join(name)
    }

    pub fn model_dir(&self) -> PathBuf {
        self.path.join("model")
    }

    /// Saves the trained model, with the tokenizer files beside `tokenizer_json` when the
    /// model came with one (a GGUF's built-in tokenizer has no file to copy).
    pub fn finish<B: Backend>(
        &self,
        model: &Decoder<B>,
        tokenizer_json: Option<&Path>,
    ) -> Result<()> {
        let dir = self.model_dir();
        std::fs::create_dir_all(&dir).map_err(|e| LmError::io(&dir, e))?;
        if let Some(json) = tokenizer_json {
            copy(json, &dir.join("tokenizer.json"))?;
            let beside = json.parent().unwrap_or(Path::new("."));
            for name in ["tokenizer_config.json", "chat_template.jinja"] {
                if beside.join(name).is_file() {
                    copy(&beside.join(name), &dir.join(name))?;
                }
            }
        }
        // Last: config.json marks the run finished.
        model.save_hf_dir(&dir)
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).map_err(|e| LmError::io(from, e))?;
    write_atomic(to, &bytes)
}
