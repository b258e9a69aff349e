//! `lm scaling serve`: the course's training API served locally (axum), answering from a
//! [`LossOracle`] — a synthetic loss surface or real short training runs — with the API's
//! budget rules: a duplicate run is refused with 409 (its loss in the body, nothing charged),
//! a run past the budget with 400, a malformed one with 422 naming the field. Runs can be
//! asked for synchronously (`GET /loss`) or as jobs (`POST /jobs`, then `GET /jobs/{id}`).

mod jobs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use super::config::RunRecord;
use super::oracle::LossOracle;
use crate::error::{Result, ScalingError};

pub use jobs::JobStatus;

/// A final answer handed in through `POST /submit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub compute_budget: f64,
    pub parameters: f64,
    pub tokens: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_loss: Option<f64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Account {
    runs: Vec<RunRecord>,
    flops_used: f64,
    submission: Option<Submission>,
    /// FLOPs of runs accepted but not finished (charged when they finish, refunded if they fail).
    #[serde(skip)]
    reserved: f64,
}

/// Everything the server needs; `state_file` keeps the accounts across restarts.
pub struct ServerConfig {
    pub oracle: Arc<dyn LossOracle>,
    /// Budget per API key, in FLOPs.
    pub budget: f64,
    pub state_file: Option<PathBuf>,
}

/// What the server remembers; one lock, held briefly (never across a run).
#[derive(Default)]
struct Books {
    accounts: BTreeMap<String, Account>,
    jobs: Vec<jobs::Job>,
}

struct App {
    oracle: Arc<dyn LossOracle>,
    budget: f64,
    state_file: Option<PathBuf>,
    books: Mutex<Books>,
    /// Held across a run: runs execute one at a time (a training run uses every core).
    run_slot: Mutex<()>,
}

impl App {
    fn load(cfg: ServerConfig) -> Result<Self> {
        let accounts = match &cfg.state_file {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p).map_err(|e| ScalingError::io(p, e))?;
                serde_json::from_str(&text).map_err(|e| ScalingError::bad_file(p, e.to_string()))?
            }
            _ => BTreeMap::new(),
        };
        Ok(Self {
            oracle: cfg.oracle,
            budget: cfg.budget,
            state_file: cfg.state_file,
            books: Mutex::new(Books {
                accounts,
                jobs: Vec::new(),
            }),
            run_slot: Mutex::new(()),
        })
    }

    fn persist(&self, accounts: &BTreeMap<String, Account>) -> Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(accounts)
            .map_err(|e| ScalingError::bad_file(path, e.to_string()))?;
        Ok(lm_core::fsutil::write_atomic(path, &bytes)?)
    }
}

fn message(status: StatusCode, text: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "message": text.to_string() }))).into_response()
}

type Params = Query<BTreeMap<String, String>>;

fn api_key(q: &BTreeMap<String, String>) -> Option<String> {
    q.get("api_key")
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
}

fn missing_key() -> Response {
    message(StatusCode::UNAUTHORIZED, "api_key is missing")
}

async fn total_flops_used(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    match api_key(&q) {
        Some(k) => {
            let books = app.books.lock().await;
            Json(books.accounts.get(&k).map_or(0.0, |a| a.flops_used)).into_response()
        }
        None => missing_key(),
    }
}

async fn previous_runs(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    match api_key(&q) {
        Some(k) => {
            let books = app.books.lock().await;
            let runs = books
                .accounts
                .get(&k)
                .map(|a| a.runs.clone())
                .unwrap_or_default();
            Json(json!({ "previous_runs": runs })).into_response()
        }
        None => missing_key(),
    }
}

async fn budget(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    match api_key(&q) {
        Some(k) => {
            let books = app.books.lock().await;
            let used = books.accounts.get(&k).map_or(0.0, |a| a.flops_used);
            Json(json!({ "budget": app.budget, "used": used, "remaining": app.budget - used }))
                .into_response()
        }
        None => missing_key(),
    }
}

async fn submit(
    State(app): State<Arc<App>>,
    Query(q): Params,
    Json(sub): Json<Submission>,
) -> Response {
    let Some(key) = api_key(&q) else {
        return missing_key();
    };
    let mut books = app.books.lock().await;
    let account = books.accounts.entry(key).or_default();
    if account.submission.is_some() {
        return message(StatusCode::CONFLICT, "a final submission was already made");
    }
    account.submission = Some(sub);
    if let Err(e) = app.persist(&books.accounts) {
        return message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("saving the server state: {e}"),
        );
    }
    Json(json!({ "accepted": true })).into_response()
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/loss", get(jobs::loss))
        .route("/jobs", post(jobs::submit_job))
        .route("/jobs/{id}", get(jobs::job_status))
        .route("/total_flops_used", get(total_flops_used))
        .route("/previous_runs", get(previous_runs))
        .route("/budget", get(budget))
        .route("/submit", post(submit))
        .with_state(app)
}

/// Serves on `addr` until Ctrl-C.
pub fn serve(addr: SocketAddr, cfg: ServerConfig) -> Result<()> {
    let app = Arc::new(App::load(cfg)?);
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ScalingError::Api(format!("binding {addr}: {e}")))?;
        eprintln!(
            "training API on http://{}",
            listener
                .local_addr()
                .map_err(|e| ScalingError::Api(e.to_string()))?
        );
        axum::serve(listener, router(app))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| ScalingError::Api(format!("serving: {e}")))
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ScalingError::Api(format!("starting the async runtime: {e}")))
}

/// A server on an ephemeral loopback port, on its own thread; stopped when dropped.
pub struct LocalServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalServer {
    pub fn start(cfg: ServerConfig) -> Result<Self> {
        let app = Arc::new(App::load(cfg)?);
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|e| ScalingError::Api(format!("binding a loopback port: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ScalingError::Api(e.to_string()))?;
        let rt = runtime()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let _ = axum::serve(listener, router(app))
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            })
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
