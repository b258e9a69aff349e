//! Runs on the server: accepted under the budget rules, executed one at a time, and answered
//! either synchronously (`GET /loss`) or as jobs to poll (`POST /jobs`, `GET /jobs/{id}`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{App, Params, api_key, message, missing_key};
use crate::api::config::{RunConfig, RunRecord};

/// Where a job is; serialised as `{"status": "done", "loss": …}` and the like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Done { loss: f64 },
    Failed { error: String },
}

pub(super) struct Job {
    key: String,
    config: RunConfig,
    status: JobStatus,
}

/// The outcome of asking for a run.
enum Accepted {
    /// A new job, FLOPs reserved.
    New(usize),
    /// The key already has this run: its loss and the key's FLOPs used.
    Known(f64, f64),
    /// The key has this run queued or running as job `id`.
    InFlight(usize),
}

/// Why a request names no valid run.
enum BadRequest {
    NoKey,
    Invalid(String),
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        match self {
            Self::NoKey => missing_key(),
            Self::Invalid(e) => message(StatusCode::UNPROCESSABLE_ENTITY, e),
        }
    }
}

/// The key and the validated run of a request.
fn parse(q: &BTreeMap<String, String>) -> Result<(String, RunConfig), BadRequest> {
    let key = api_key(q).ok_or(BadRequest::NoKey)?;
    let config = RunConfig::from_query(q)
        .and_then(|c| c.validate().map(|_| c))
        .map_err(|e| BadRequest::Invalid(e.to_string()))?;
    Ok((key, config))
}

/// Applies the budget rules and, for a new run, reserves its FLOPs and queues a job.
async fn accept(app: &App, key: String, config: RunConfig) -> Result<Accepted, Response> {
    let mut books = app.books.lock().await;
    let in_flight = books.jobs.iter().position(|j| {
        j.key == key
            && j.config == config
            && matches!(j.status, JobStatus::Queued | JobStatus::Running)
    });
    let account = books.accounts.entry(key.clone()).or_default();
    if let Some(prev) = account.runs.iter().find(|r| r.config == config) {
        return Ok(Accepted::Known(prev.loss, account.flops_used));
    }
    if let Some(id) = in_flight {
        return Ok(Accepted::InFlight(id));
    }
    let flops = config.train_flops as f64;
    let committed = account.flops_used + account.reserved;
    if committed + flops > app.budget {
        return Err(message(
            StatusCode::BAD_REQUEST,
            format!(
                "over budget: this run needs {flops:e} FLOPs, {committed:e} of {:e} are used or reserved",
                app.budget
            ),
        ));
    }
    account.reserved += flops;
    books.jobs.push(Job {
        key,
        config,
        status: JobStatus::Queued,
    });
    Ok(Accepted::New(books.jobs.len() - 1))
}

/// Runs job `id` (waiting for the run slot), then charges its FLOPs and records the run, or
/// refunds them if it failed.
async fn execute(app: Arc<App>, id: usize) {
    let _slot = app.run_slot.lock().await;
    let config = {
        let mut books = app.books.lock().await;
        books.jobs[id].status = JobStatus::Running;
        books.jobs[id].config
    };
    let oracle = app.oracle.clone();
    let status = match tokio::task::spawn_blocking(move || oracle.loss(&config)).await {
        Ok(Ok(v)) if v.is_finite() => JobStatus::Done { loss: v },
        Ok(Ok(v)) => JobStatus::Failed {
            error: format!("the run diverged (loss {v})"),
        },
        Ok(Err(e)) => JobStatus::Failed {
            error: format!("the run failed: {e}"),
        },
        Err(e) => JobStatus::Failed {
            error: format!("the run panicked: {e}"),
        },
    };
    let mut books = app.books.lock().await;
    let key = books.jobs[id].key.clone();
    let account = books.accounts.entry(key).or_default();
    let flops = config.train_flops as f64;
    account.reserved -= flops;
    if let JobStatus::Done { loss } = status {
        account.flops_used += flops;
        account.runs.push(RunRecord { config, loss });
    }
    books.jobs[id].status = status;
    if let Err(e) = app.persist(&books.accounts) {
        eprintln!("warning: saving the server state: {e}");
    }
}

fn conflict(body: serde_json::Value) -> Response {
    (StatusCode::CONFLICT, Json(body)).into_response()
}

fn known(loss: f64, used: f64) -> Response {
    conflict(json!({
        "message": "this configuration was already run; its loss is returned and nothing is charged",
        "loss": loss,
        "total_flops_used": used,
    }))
}

fn in_flight(id: usize) -> Response {
    conflict(json!({
        "message": format!("this configuration is already running as job {id}"),
        "job_id": id,
    }))
}

/// `GET /loss`: run now and answer with the loss.
pub(super) async fn loss(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    let (key, config) = match parse(&q) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    let id = match accept(&app, key.clone(), config).await {
        Ok(Accepted::New(id)) => id,
        Ok(Accepted::Known(loss, used)) => return known(loss, used),
        Ok(Accepted::InFlight(id)) => return in_flight(id),
        Err(r) => return r,
    };
    execute(app.clone(), id).await;
    let books = app.books.lock().await;
    match &books.jobs[id].status {
        JobStatus::Done { loss } => {
            let used = books.accounts.get(&key).map_or(0.0, |a| a.flops_used);
            Json(json!({ "loss": loss, "total_flops_used": used })).into_response()
        }
        JobStatus::Failed { error } => message(StatusCode::INTERNAL_SERVER_ERROR, error),
        other => message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("job {id} ended {other:?}"),
        ),
    }
}

/// `POST /jobs`: queue the run and answer 202 with its job id at once.
pub(super) async fn submit_job(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    let (key, config) = match parse(&q) {
        Ok(p) => p,
        Err(bad) => return bad.into_response(),
    };
    match accept(&app, key, config).await {
        Ok(Accepted::New(id)) => {
            tokio::spawn(execute(app.clone(), id));
            let body = json!({ "job_id": id, "status": "queued" });
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Ok(Accepted::Known(loss, used)) => known(loss, used),
        Ok(Accepted::InFlight(id)) => in_flight(id),
        Err(r) => r,
    }
}

/// `GET /jobs/{id}`: the job's status (404 for another key's job).
pub(super) async fn job_status(
    State(app): State<Arc<App>>,
    Path(id): Path<usize>,
    Query(q): Params,
) -> Response {
    let Some(key) = api_key(&q) else {
        return missing_key();
    };
    let books = app.books.lock().await;
    match books.jobs.get(id).filter(|j| j.key == key) {
        Some(job) => {
            let mut body = serde_json::to_value(&job.status).unwrap_or_default();
            body["job_id"] = json!(id);
            body["config"] = serde_json::to_value(job.config).unwrap_or_default();
            Json(body).into_response()
        }
        None => message(StatusCode::NOT_FOUND, format!("no job {id} for this key")),
    }
}
