//! File helpers shared by every writer.

use std::io::Write;
use std::path::Path;

use crate::error::{LmError, Result};

/// Writes `bytes` to `path` via a temp file in the same directory and a rename, so a reader
/// never sees a half-written file and a crash leaves the old file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| LmError::io(path, std::io::Error::other("path has no file name")))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(LmError::io(path, e));
    }
    Ok(())
}
