//! Deduplication: exact lines across a collection ([`exact_line_dedup`]) and near-duplicate
//! documents by MinHash + LSH ([`minhash_dedup`]). Both take a list of files and write their
//! outputs into a directory under the inputs' own file names, each file atomically.

mod exact;
mod lsh;
mod minhash;
mod union_find;

use std::collections::HashMap;
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
