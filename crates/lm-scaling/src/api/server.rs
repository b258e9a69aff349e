//! `lm scaling serve`: the course's training API served locally (axum), answering from a
//! [`LossOracle`] — a synthetic loss surface or real short training runs — with the API's
//! budget rules: a duplicate run is refused with 409 (its loss in the body, nothing charged),
//! a run past the budget with 400, a malformed one with 422 naming the field.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use super::config::{RunConfig, RunRecord};
use crate::chinchilla::LossSurface;
use crate::error::{Result, ScalingError};

/// Where the server's losses come from.
pub trait LossOracle: Send + Sync + 'static {
    /// The final loss of a (validated) run; may take long (real training).
    fn loss(&self, config: &RunConfig) -> Result<f64>;
    fn describe(&self) -> String;
}

/// Losses from `L(N, D) = E + A/N^α + B/D^β`, times a learning-rate penalty
/// `1 + lr_penalty · ln²(lr / lr_opt)`, times `1 + noise · z` with z ~ N(0, 1) drawn from a
/// seed and the run (the same run always gets the same loss).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SurfaceOracle {
    pub surface: LossSurface,
    pub noise: f64,
    pub lr_opt: f64,
    pub lr_penalty: f64,
    pub seed: u64,
}

impl Default for SurfaceOracle {
    /// Hoffmann et al.'s fitted surface, 0.5% noise, a mild learning-rate optimum at 6e-4.
    fn default() -> Self {
        Self {
            surface: LossSurface {
                e: 1.69,
                a: 406.4,
                b: 410.7,
                alpha: 0.34,
                beta: 0.28,
            },
            noise: 0.005,
            lr_opt: 6e-4,
            lr_penalty: 0.01,
            seed: 0,
        }
    }
}

impl LossOracle for SurfaceOracle {
    fn loss(&self, c: &RunConfig) -> Result<f64> {
        let mut h = rustc_hash::FxHasher::default();
        h.write(serde_json::to_string(c).unwrap_or_default().as_bytes());
        h.write_u64(self.seed);
        let z: f64 = StandardNormal.sample(&mut ChaCha8Rng::seed_from_u64(h.finish()));
        let lr = (c.learning_rate / self.lr_opt).ln();
        Ok(self.surface.loss(c.parameters(), c.tokens())
            * (1.0 + self.lr_penalty * lr * lr)
            * (1.0 + self.noise * z))
    }

    fn describe(&self) -> String {
        let s = self.surface;
        format!(
            "loss surface {} + {}/N^{} + {}/D^{}, noise {}, seed {}",
            s.e, s.a, s.alpha, s.b, s.beta, self.noise, self.seed
        )
    }
}

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
}

/// Everything the server needs; `state_file` keeps the accounts across restarts.
pub struct ServerConfig {
    pub oracle: Arc<dyn LossOracle>,
    /// Budget per API key, in FLOPs.
    pub budget: f64,
    pub state_file: Option<PathBuf>,
}

struct App {
    oracle: Arc<dyn LossOracle>,
    budget: f64,
    state_file: Option<PathBuf>,
    /// Held across a run, so runs are answered one at a time (a training run uses every core).
    accounts: Mutex<BTreeMap<String, Account>>,
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
            accounts: Mutex::new(accounts),
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

async fn loss(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    let Some(key) = api_key(&q) else {
        return missing_key();
    };
    let config = match RunConfig::from_query(&q).and_then(|c| c.validate().map(|_| c)) {
        Ok(c) => c,
        Err(e) => return message(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    let mut accounts = app.accounts.lock().await;
    let account = accounts.entry(key).or_default();
    if let Some(prev) = account.runs.iter().find(|r| r.config == config) {
        let body = json!({
            "message": "this configuration was already run; its loss is returned and nothing is charged",
            "loss": prev.loss,
            "total_flops_used": account.flops_used,
        });
        return (StatusCode::CONFLICT, Json(body)).into_response();
    }
    let after = account.flops_used + config.train_flops as f64;
    if after > app.budget {
        return message(
            StatusCode::BAD_REQUEST,
            format!(
                "over budget: this run needs {:e} FLOPs, {:e} of {:e} are used",
                config.train_flops as f64, account.flops_used, app.budget
            ),
        );
    }
    let oracle = app.oracle.clone();
    let result = tokio::task::spawn_blocking(move || oracle.loss(&config)).await;
    let value = match result {
        Ok(Ok(v)) if v.is_finite() => v,
        Ok(Ok(v)) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the run diverged (loss {v})"),
            );
        }
        Ok(Err(e)) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the run failed: {e}"),
            );
        }
        Err(e) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the run panicked: {e}"),
            );
        }
    };
    account.runs.push(RunRecord {
        config,
        loss: value,
    });
    account.flops_used = after;
    let body = json!({ "loss": value, "total_flops_used": after });
    if let Err(e) = app.persist(&accounts) {
        return message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("saving the server state: {e}"),
        );
    }
    Json(body).into_response()
}

async fn total_flops_used(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    match api_key(&q) {
        Some(k) => {
            let accounts = app.accounts.lock().await;
            Json(accounts.get(&k).map_or(0.0, |a| a.flops_used)).into_response()
        }
        None => missing_key(),
    }
}

async fn previous_runs(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    match api_key(&q) {
        Some(k) => {
            let accounts = app.accounts.lock().await;
            let runs = accounts.get(&k).map(|a| a.runs.clone()).unwrap_or_default();
            Json(json!({ "previous_runs": runs })).into_response()
        }
        None => missing_key(),
    }
}

async fn budget(State(app): State<Arc<App>>, Query(q): Params) -> Response {
    match api_key(&q) {
        Some(k) => {
            let accounts = app.accounts.lock().await;
            let used = accounts.get(&k).map_or(0.0, |a| a.flops_used);
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
    let mut accounts = app.accounts.lock().await;
    let account = accounts.entry(key).or_default();
    if account.submission.is_some() {
        return message(StatusCode::CONFLICT, "a final submission was already made");
    }
    account.submission = Some(sub);
    if let Err(e) = app.persist(&accounts) {
        return message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("saving the server state: {e}"),
        );
    }
    Json(json!({ "accepted": true })).into_response()
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/loss", get(loss))
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
