//! `manifest.json` of a golden directory (format 1, see shared/golden/README.md §2).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub format: u32,
    #[serde(default)]
    pub generator: String,
    #[serde(default)]
    pub seed: Option<i64>,
    pub cases: Vec<CaseSpec>,
}

/// One case: which op, where its tensors are, what to compare and how tightly.
#[derive(Debug, Clone, Deserialize)]
pub struct CaseSpec {
    pub op: String,
    pub name: String,
    #[serde(default)]
    pub source: String,
    pub file: String,
    pub prefix: String,
    #[serde(default)]
    pub attrs: BTreeMap<String, Value>,
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub params: Vec<String>,
    #[serde(default)]
    pub outputs: Vec<String>,
    #[serde(default)]
    pub grads: Vec<String>,
    pub rtol: f64,
    pub atol: f64,
    /// Per-tensor `[rtol, atol]` overrides keyed `outputs.<n>` / `grads.<n>`.
    #[serde(default)]
    pub tol: BTreeMap<String, (f64, f64)>,
}

impl CaseSpec {
    /// `(rtol, atol)` for a compared tensor key such as `outputs.y`.
    pub fn tolerance(&self, key: &str) -> (f64, f64) {
        self.tol.get(key).copied().unwrap_or((self.rtol, self.atol))
    }
}

impl Manifest {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is --golden a golden directory?)",
                path.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a golden manifest", path.display()))?;
        if manifest.format != 1 {
            bail!(
                "{}: format {} is not supported (expected 1)",
                path.display(),
                manifest.format
            );
        }
        Ok(manifest)
    }
}
