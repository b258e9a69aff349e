//! Deduplication: exact lines across a collection ([`exact_line_dedup`]) and near-duplicate
//! documents by MinHash + LSH ([`minhash_dedup`]). Both take a list of files and write their
//! outputs into a directory under the inputs' own file names, each file atomically.

mod exact;
mod lsh;
mod minhash;
mod union_find;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use exact::{ExactDedupReport, exact_line_dedup};
pub use lsh::{Clustering, DocFeatures, MinhashReport, cluster_near_duplicates, jaccard};
pub use minhash::{MinHasher, MinhashParams, minhash_dedup, normalize_text, shingle_hashes};
pub use union_find::UnionFind;

use crate::error::{DataError, Result};

/// The output path of each input: `out_dir/<file name>`. Two inputs with the same file name
/// would overwrite each other, so that is an error naming both.
pub(crate) fn output_paths(inputs: &[PathBuf], out_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut seen: HashMap<&std::ffi::OsStr, &Path> = HashMap::new();
    inputs
        .iter()
        .map(|input| {
            let name = input
                .file_name()
                .ok_or_else(|| DataError::bad_file(input, "not a file name"))?;
            if let Some(first) = seen.insert(name, input) {
                return Err(DataError::invalid(
                    "inputs",
                    format!(
                        "{} and {} have the same file name; outputs would collide",
                        first.display(),
                        input.display()
                    ),
                ));
            }
            Ok(out_dir.join(name))
        })
        .collect()
}

pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))
}

/// A file written through a temp file in the same directory and renamed into place on
/// [`commit`](AtomicFile::commit): readers never see a partial file, and a failure (or a
/// drop without commit) leaves no output behind.
pub(crate) struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| DataError::bad_file(path, "not a file name"))?;
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let writer = self.writer.as_mut().expect("not committed yet");
        writer
            .write_all(bytes)
            .map_err(|e| DataError::io(&self.path, e))
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        let writer = self.writer.take().expect("committed once");
        let file = writer
            .into_inner()
            .map_err(|e| DataError::io(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| DataError::io(&self.path, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| DataError::io(&self.path, e))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
