//! A client of the course's training API (or of `lm scaling serve`), with the ledger in
//! front: a run already paid for is answered from the ledger, a run past the budget is
//! refused before it is sent, and every answer is recorded before it is returned.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::config::{RunConfig, RunRecord};
use super::ledger::{Ledger, LedgerEntry};
use super::server::{JobStatus, Submission};
use crate::error::{Result, ScalingError};

/// The course's API budget for the scaling-laws experiments, in FLOPs.
pub const COURSE_BUDGET: f64 = 2e18;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryOutcome {
    pub loss: f64,
    /// True when no FLOPs were spent: the ledger or the server already had the run.
    pub free: bool,
}

pub struct ApiClient {
    base_url: String,
    api_key: String,
    agent: ureq::Agent,
    ledger: Ledger,
}

#[derive(Deserialize)]
struct LossBody {
    loss: f64,
    total_flops_used: Option<f64>,
}

#[derive(Deserialize)]
struct JobBody {
    job_id: usize,
}

#[derive(Deserialize)]
struct ConflictBody {
    loss: Option<f64>,
    job_id: Option<usize>,
}

/// A run queued on the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    pub id: usize,
    pub config: RunConfig,
}

/// What [`ApiClient::submit_job`] got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Submitted {
    Job(Job),
    /// Already run (ledger or server): its loss, nothing spent.
    Known(QueryOutcome),
}

#[derive(Deserialize)]
struct RunsBody {
    previous_runs: Vec<RunRecord>,
}

impl ApiClient {
    /// `ledger` is the local record (created if absent); `budget` the FLOPs the client may spend.
    pub fn new(base_url: &str, api_key: &str, ledger: &Path, budget: f64) -> Result<Self> {
        if api_key.trim().is_empty() {
            return Err(ScalingError::Api(
                "an API key is needed (--api-key or LM_API_KEY)".into(),
            ));
        }
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            // Real training behind the API can take many minutes per run.
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(6 * 3600))
                .build(),
            ledger: Ledger::open(ledger, budget)?,
        })
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The final loss of `config`, from the ledger when it was run before.
    pub fn loss(&mut self, config: &RunConfig) -> Result<QueryOutcome> {
        if let Some(loss) = self.preflight(config)? {
            return Ok(QueryOutcome { loss, free: true });
        }
        let response = self
            .with_run(self.agent.get(&format!("{}/loss", self.base_url)), config)
            .call();
        let (outcome, server_used, charged) = match response {
            Ok(r) => {
                let body: LossBody = read_json(r)?;
                (
                    Ok(QueryOutcome {
                        loss: body.loss,
                        free: false,
                    }),
                    body.total_flops_used,
                    config.train_flops as f64,
                )
            }
            // The server already ran it (e.g. from another machine): its loss, no charge.
            Err(ureq::Error::Status(409, r)) => {
                let body: LossBody = read_json(r)?;
                (
                    Ok(QueryOutcome {
                        loss: body.loss,
                        free: true,
                    }),
                    body.total_flops_used,
                    0.0,
                )
            }
            Err(e) => (Err(api_error(e)), None, 0.0),
        };
        self.ledger.record(LedgerEntry {
            loss: outcome.as_ref().ok().map(|o| o.loss),
            flops_charged: charged,
            server_flops_used: server_used,
            error: outcome.as_ref().err().map(|e| e.to_string()),
            ..LedgerEntry::now(*config)
        })?;
        outcome
    }

    /// Queues `config` as a job on the server (`POST /jobs`) and returns at once; the ledger
    /// charges it now and refunds it if the job fails. A run the ledger or the server already
    /// has comes back as [`Submitted::Known`].
    pub fn submit_job(&mut self, config: &RunConfig) -> Result<Submitted> {
        if let Some(loss) = self.preflight(config)? {
            return Ok(Submitted::Known(QueryOutcome { loss, free: true }));
        }
        let entry = |loss, flops_charged, job_id, error| LedgerEntry {
            loss,
            flops_charged,
            job_id,
            error,
            ..LedgerEntry::now(*config)
        };
        match self
            .with_run(self.agent.post(&format!("{}/jobs", self.base_url)), config)
            .call()
        {
            Ok(r) => {
                let body: JobBody = read_json(r)?;
                self.ledger.record(entry(
                    None,
                    config.train_flops as f64,
                    Some(body.job_id),
                    None,
                ))?;
                Ok(Submitted::Job(Job {
                    id: body.job_id,
                    config: *config,
                }))
            }
            Err(ureq::Error::Status(409, r)) => {
                let body: ConflictBody = read_json(r)?;
                match (body.loss, body.job_id) {
                    (Some(loss), _) => {
                        self.ledger.record(entry(Some(loss), 0.0, None, None))?;
                        Ok(Submitted::Known(QueryOutcome { loss, free: true }))
                    }
                    // Running for this key already (submitted elsewhere): follow that job.
                    (None, Some(id)) => Ok(Submitted::Job(Job {
                        id,
                        config: *config,
                    })),
                    (None, None) => Err(ScalingError::Api("409 without a loss or a job id".into())),
                }
            }
            Err(e) => {
                let err = api_error(e);
                self.ledger
                    .record(entry(None, 0.0, None, Some(err.to_string())))?;
                Err(err)
            }
        }
    }

    /// The job's status; a finished job's loss (or a failed job's refund) goes into the ledger.
    pub fn poll(&mut self, job: &Job) -> Result<JobStatus> {
        let status: JobStatus = self.get(&format!("jobs/{}", job.id))?;
        let entry = |loss, flops_charged, error| LedgerEntry {
            loss,
            flops_charged,
            job_id: Some(job.id),
            error,
            ..LedgerEntry::now(job.config)
        };
        match &status {
            JobStatus::Done { loss } if self.ledger.known_loss(&job.config).is_none() => {
                self.ledger.record(entry(Some(*loss), 0.0, None))?;
            }
            JobStatus::Failed { error } if self.ledger.job_charge(job.id) > 0.0 => {
                let refund = -self.ledger.job_charge(job.id);
                self.ledger
                    .record(entry(None, refund, Some(error.clone())))?;
            }
            _ => {}
        }
        Ok(status)
    }

    /// Polls `job` every `interval` until it finishes.
    pub fn wait(&mut self, job: &Job, interval: Duration) -> Result<QueryOutcome> {
        loop {
            match self.poll(job)? {
                JobStatus::Done { loss } => return Ok(QueryOutcome { loss, free: false }),
                JobStatus::Failed { error } => {
                    return Err(ScalingError::Api(format!("job {}: {error}", job.id)));
                }
                JobStatus::Queued | JobStatus::Running => std::thread::sleep(interval),
            }
        }
    }

    /// The runs the server has for this key.
    pub fn previous_runs(&self) -> Result<Vec<RunRecord>> {
        Ok(self.get::<RunsBody>("previous_runs")?.previous_runs)
    }

    /// FLOPs the server counts as used by this key.
    pub fn total_flops_used(&self) -> Result<f64> {
        self.get("total_flops_used")
    }

    /// Hands in the final answer (once).
    pub fn submit(&self, submission: &Submission) -> Result<()> {
        self.agent
            .post(&format!("{}/submit", self.base_url))
            .query("api_key", &self.api_key)
            .send_json(submission)
            .map_err(api_error)?;
        Ok(())
    }

    /// Checks `config` and returns the loss the ledger already has for it; fails, before
    /// anything is sent, when a new run would pass the budget.
    fn preflight(&self, config: &RunConfig) -> Result<Option<f64>> {
        config.validate()?;
        if let Some(loss) = self.ledger.known_loss(config) {
            return Ok(Some(loss));
        }
        self.ledger.check_affordable(config)?;
        Ok(None)
    }

    /// `req` with the run's fields and the key as query parameters.
    fn with_run(&self, req: ureq::Request, config: &RunConfig) -> ureq::Request {
        let req = config
            .query_pairs()
            .iter()
            .fold(req, |r, (k, v)| r.query(k, v));
        req.query("api_key", &self.api_key)
    }

    fn get<T: DeserializeOwned>(&self, endpoint: &str) -> Result<T> {
        let r = self
            .agent
            .get(&format!("{}/{endpoint}", self.base_url))
            .query("api_key", &self.api_key)
            .call()
            .map_err(api_error)?;
        read_json(r)
    }
}

/// The endpoint of a response, without its query (which carries the API key).
fn endpoint(r: &ureq::Response) -> String {
    r.get_url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn read_json<T: DeserializeOwned>(r: ureq::Response) -> Result<T> {
    let url = endpoint(&r);
    r.into_json()
        .map_err(|e| ScalingError::Api(format!("{url}: unexpected answer: {e}")))
}

/// The server's `message` (or body) with the status, or the transport failure.
fn api_error(e: ureq::Error) -> ScalingError {
    match e {
        ureq::Error::Status(code, r) => {
            let url = endpoint(&r);
            let body = r.into_string().unwrap_or_default();
            let text = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or(body);
            ScalingError::Api(format!("{url}: HTTP {code}: {text}"))
        }
        ureq::Error::Transport(t) => ScalingError::Api(format!("cannot reach the API: {t}")),
    }
}
