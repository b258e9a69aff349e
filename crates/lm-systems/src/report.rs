//! The profiling report: our measurements beside the PyTorch baseline's (same cases, read
//! from the JSON lines `bench/pytorch_profile.py` prints), as a terminal table and a CSV.

use lm_core::config::Precision;
use serde::{Deserialize, Serialize};

use crate::profile::{ProfileCase, ProfileResult, Timing};

/// A case that ran, or why it did not ("OOM", or the error's last line).
pub type Outcome<T> = Result<T, String>;

/// One line of `bench/pytorch_profile.py`'s output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    pub size: String,
    pub context: usize,
    pub precision: Precision,
    /// "ok", "OOM" or "failed".
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    pub forward: Option<Timing>,
    pub backward: Option<Timing>,
    pub optimizer: Option<Timing>,
    pub step: Option<Timing>,
    pub tokens_per_s: Option<f64>,
    /// `torch.cuda.max_memory_reserved()`.
    pub memory_reserved: Option<u64>,
    #[serde(rename = "impl", default)]
    pub implementation: String,
}

impl BaselineResult {
    fn matches(&self, case: &ProfileCase) -> bool {
        self.size == case.size && self.context == case.context && self.precision == case.precision
    }

    fn outcome(&self) -> Outcome<(Timing, Option<u64>)> {
        match (self.status.as_str(), self.step) {
            ("ok", Some(step)) => Ok((step, self.memory_reserved)),
            (status, _) => Err(self.error.clone().unwrap_or_else(|| status.to_string())),
        }
    }
}

/// Parses the baseline's JSON lines (other lines, e.g. warnings, are skipped).
pub fn parse_baseline(text: &str) -> Result<Vec<BaselineResult>, serde_json::Error> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect()
}

pub struct Row {
    pub case: ProfileCase,
    pub ours: Outcome<ProfileResult>,
    pub baseline: Option<Outcome<(Timing, Option<u64>)>>,
}

impl Row {
    pub fn new(
        case: ProfileCase,
        ours: Outcome<ProfileResult>,
        baseline: &[BaselineResult],
    ) -> Self {
        let baseline = baseline
            .iter()
            .find(|b| b.matches(&case))
            .map(BaselineResult::outcome);
        Self {
            case,
            ours,
            baseline,
        }
    }

    /// PyTorch's step time over ours: above 1 means we are faster.
    pub fn speedup(&self) -> Option<f64> {
        match (&self.ours, &self.baseline) {
            (Ok(ours), Some(Ok((theirs, _)))) => Some(theirs.mean_ms / ours.step.mean_ms),
            _ => None,
        }
    }
}

pub fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "f32",
        Precision::Tf32 => "tf32",
        Precision::Bf16Mixed => "bf16-mixed",
    }
}

fn gib(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| {
        format!("{:.2}", b as f64 / (1u64 << 30) as f64)
    })
}

fn timing(t: &Timing) -> String {
    format!("{:.2}±{:.2}", t.mean_ms, t.std_ms)
}

const HEADER: [&str; 12] = [
    "size",
    "ctx",
    "precision",
    "forward ms",
    "backward ms",
    "optimizer ms",
    "step ms",
    "tokens/s",
    "mem GiB",
    "torch step ms",
    "torch mem GiB",
    "speedup",
];

fn cells(row: &Row) -> [String; 12] {
    let c = &row.case;
    let (fwd, bwd, opt, step, tps, mem) = match &row.ours {
        Ok(r) => (
            timing(&r.forward),
            timing(&r.backward),
            timing(&r.optimizer),
            timing(&r.step),
            format!("{:.0}", r.tokens_per_s),
            gib(r.memory_reserved),
        ),
        Err(why) => {
            let dash = || "-".to_string();
            (why.clone(), dash(), dash(), dash(), dash(), dash())
        }
    };
    let (torch_step, torch_mem) = match &row.baseline {
        Some(Ok((t, mem))) => (timing(t), gib(*mem)),
        Some(Err(why)) => (why.clone(), "-".into()),
        None => ("-".into(), "-".into()),
    };
    [
        c.size.clone(),
        c.context.to_string(),
        precision_name(c.precision).into(),
        fwd,
        bwd,
        opt,
        step,
        tps,
        mem,
        torch_step,
        torch_mem,
        row.speedup().map_or("-".into(), |s| format!("{s:.2}×")),
    ]
}

/// A Markdown table (it reads as plain text too).
pub fn table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out += &format!("|{}\n", " --- |".repeat(HEADER.len()));
    for row in rows {
        out += &format!("| {} |\n", cells(row).join(" | "));
    }
    out
}

/// One CSV line per case; times in ms, memory in bytes, empty where not measured.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "size,context,batch,precision,attention,status,forward_ms,forward_std_ms,backward_ms,\
         backward_std_ms,optimizer_ms,optimizer_std_ms,step_ms,step_std_ms,tokens_per_s,tflops,\
         memory_reserved,torch_step_ms,torch_memory_reserved,speedup\n",
    );
    let opt_num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    let opt_int = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for row in rows {
        let c = &row.case;
        let attention = format!("{:?}", c.attention).to_lowercase();
        let mut line = format!(
            "{},{},{},{},{attention},",
            c.size,
            c.context,
            c.batch,
            precision_name(c.precision)
        );
        match &row.ours {
            Ok(r) => {
                line += "ok,";
                for t in [&r.forward, &r.backward, &r.optimizer, &r.step] {
                    line += &format!("{:.4},{:.4},", t.mean_ms, t.std_ms);
                }
                line += &format!(
                    "{:.1},{:.3},{},",
                    r.tokens_per_s,
                    r.tflops,
                    opt_int(r.memory_reserved)
                );
            }
            Err(why) => {
                // The status, then the 11 measurement columns left empty (commas in the
                // reason would shift the columns).
                line += &format!("{}{}", why.replace(',', ";"), ",".repeat(12));
            }
        }
        let (torch_ms, torch_mem) = match &row.baseline {
            Some(Ok((t, mem))) => (Some(t.mean_ms), *mem),
            _ => (None, None),
        };
        line += &format!(
            "{},{},{}\n",
            opt_num(torch_ms),
            opt_int(torch_mem),
            opt_num(row.speedup())
        );
        out += &line;
    }
    out
}
