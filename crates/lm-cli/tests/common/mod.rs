//! What the `lm` binary's end-to-end tests share: where the shared data is, and running the
//! binary with or without standard input.
#![allow(dead_code)] // each test binary uses part of it

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// `$LM_SHARED`, else the `shared/` folder beside the checkout.
pub fn shared() -> PathBuf {
    std::env::var_os("LM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// Runs `lm args`; returns (success, stdout, stderr).
pub fn lm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lm"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs `lm args` with `stdin` on its standard input.
pub fn lm_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lm"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails on its arguments (e.g. a missing model) may exit before reading
    // stdin: a broken pipe is expected then, and the exit status tells the rest.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}
