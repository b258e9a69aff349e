//! Where this process sits in a distributed run: torchrun-style environment variables
//! (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), as set by `lm train
//! --nproc-per-node`, torchrun or a Slurm wrapper.

use std::time::Duration;

use super::DistError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    pub rank: usize,
    pub world_size: usize,
    /// The GPU index on this node.
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// How long any rank waits on a peer before failing with an error naming it.
    pub timeout: Duration,
}

/// Default peer timeout; `LM_DIST_TIMEOUT_S` overrides it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl DistEnv {
    /// A single-process "world" (no peers; every collective is the identity).
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: 0,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Reads the variables through `get` (the process environment in [`Self::from_env`]);
    /// with no WORLD_SIZE this is a single process.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, DistError> {
        let Some(world) = get("WORLD_SIZE") else {
            return Ok(Self::single());
        };
        let number = |name: &str, value: String| -> Result<usize, DistError> {
            value.trim().parse().map_err(|_| DistError::Env {
                var: name.to_string(),
                reason: format!("{value:?} is not a non-negative integer"),
            })
        };
        let required = |name: &str| {
            get(name).ok_or_else(|| DistError::Env {
                var: name.to_string(),
                reason: "must be set when WORLD_SIZE is".into(),
            })
        };
        let world_size = number("WORLD_SIZE", world)?;
        let rank = number("RANK", required("RANK")?)?;
        if world_size == 0 || rank >= world_size {
            return Err(DistError::Env {
                var: "RANK".into(),
                reason: format!("rank {rank} is outside a world of {world_size}"),
            });
        }
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => number("LOCAL_RANK", v)?,
            None => rank,
        };
        let port = number("MASTER_PORT", required("MASTER_PORT")?)?;
        let master_port = u16::try_from(port).map_err(|_| DistError::Env {
            var: "MASTER_PORT".into(),
            reason: format!("{port} is not a TCP port"),
        })?;
        let timeout = match get("LM_DIST_TIMEOUT_S") {
            Some(v) => Duration::from_secs(number("LM_DIST_TIMEOUT_S", v)? as u64),
            None => DEFAULT_TIMEOUT,
        };
        Ok(Self {
            rank,
            world_size,
            local_rank,
            master_addr: get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            master_port,
            timeout,
        })
    }

    pub fn from_env() -> Result<Self, DistError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}
