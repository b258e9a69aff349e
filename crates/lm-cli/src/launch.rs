//! `lm train --nproc-per-node N`: starts N copies of this `lm train` command as the ranks of
//! one data-parallel run on this machine, torchrun-style (RANK, LOCAL_RANK, WORLD_SIZE,
//! MASTER_ADDR, MASTER_PORT in each one's environment), and waits for all of them. When one
//! rank fails, the others are stopped and the failure names the rank.

use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};

/// Runs `lm <args>` as `nproc` ranks (a `--nproc-per-node` among `args` is ignored by the
/// ranks, whose environment already names the world).
pub fn launch(nproc: usize, args: &[String]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the lm executable")?;
    let port = match std::env::var("MASTER_PORT") {
        Ok(p) => p,
        Err(_) => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for the rendezvous")?
            .port()
            .to_string(),
    };
    let addr = std::env::var("MASTER_ADDR").unwrap_or_else(|_| "127.0.0.1".into());
    let mut children: Vec<(usize, Child)> = Vec::new();
    for rank in 0..nproc {
        let child = Command::new(&exe)
            .args(args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", &addr)
            .env("MASTER_PORT", &port)
            .spawn()
            .with_context(|| format!("starting rank {rank}"))?;
        children.push((rank, child));
    }
    let mut failed: Option<String> = None;
    while !children.is_empty() && failed.is_none() {
        let mut i = 0;
        while i < children.len() {
            let (rank, child) = &mut children[i];
            match child
                .try_wait()
                .with_context(|| format!("waiting for rank {rank}"))?
            {
                Some(status) if status.success() => {
                    children.remove(i);
                }
                Some(status) => {
                    failed = Some(format!("rank {rank} failed ({status})"));
                    break;
                }
                None => i += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(reason) = failed {
        for (_, child) in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("{reason}; the other ranks were stopped");
    }
    Ok(())
}
