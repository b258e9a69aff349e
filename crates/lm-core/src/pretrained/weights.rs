//! Where a decoder's weights come from: a Hugging Face safetensors directory (one file
//! or shards with an index) or a GGUF file, behind one trait that yields f32 tensors by
//! their Hugging Face names.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{LmError, Result};
use crate::params::view_to_f32;

/// Tensors by Hugging Face state-dict name (`model.layers.0.self_attn.q_proj.weight`).
pub trait WeightSource {
    /// The file or directory, for error messages.
    fn path(&self) -> &Path;
    /// The tensor's values upcast (or dequantised) to f32, and its row-major shape.
    fn load(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)>;
    /// [`Self::load`] for a tensor the config expects to have shape `expected`; sources that
    /// make tensors (rather than read them) use the shape.
    fn load_shaped(&self, name: &str, expected: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        let _ = expected;
        self.load(name)
    }
    /// The tensor as stored quantised blocks that [`crate::packed::PackedMatrix`] can
    /// multiply (type, bytes in Hugging Face row order, shape); `None` for sources or
    /// tensors without such blocks.
    fn load_blocks(&self, name: &str) -> Result<Option<StoredBlocks>> {
        let _ = name;
        Ok(None)
    }
}

/// A tensor's quantised blocks as [`WeightSource::load_blocks`] returns them.
pub struct StoredBlocks {
    pub ty: crate::pretrained::gguf::GgmlType,
    pub bytes: Vec<u8>,
    pub shape: Vec<usize>,
}

/// Freshly initialised weights, for training a decoder from scratch: RMSNorm gains 1,
/// biases 0, every matrix N(0, std²) truncated at ±3 std (the course's initialisation),
/// each tensor from its own ChaCha stream keyed by the seed and its name, so a tensor's
/// values do not depend on the order of loading.
#[derive(Debug, Clone)]
pub struct RandomWeights {
    pub seed: u64,
    pub std: f64,
    path: PathBuf,
}

impl RandomWeights {
    pub fn new(seed: u64, std: f64) -> Self {
        Self {
            seed,
            std,
            path: PathBuf::from(format!("<random weights, seed {seed}>")),
        }
    }
}

impl WeightSource for RandomWeights {
    fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        Err(LmError::BadFile {
            file: self.path.clone(),
            reason: format!("random weights need the expected shape of `{name}`"),
        })
    }

    fn load_shaped(&self, name: &str, expected: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let n: usize = expected.iter().product();
        let values = if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            // FNV-1a of the name picks the stream: stable across runs and platforms.
            let stream = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(stream);
            let normal =
                Normal::new(0.0, self.std).map_err(|e| LmError::config("std", e.to_string()))?;
            let limit = 3.0 * self.std;
            (0..n)
                .map(|_| {
                    loop {
                        let v: f64 = normal.sample(&mut rng);
                        if v.abs() <= limit {
                            break v as f32;
                        }
                    }
                })
                .collect()
        };
        Ok((values, expected.to_vec()))
    }
}

/// A Hugging Face model directory's safetensors: `model.safetensors`, or the shards named
/// by `model.safetensors.index.json`. Files are memory-mapped, not read.
pub struct SafetensorsDir {
    dir: PathBuf,
    shards: Vec<(PathBuf, Mmap)>,
    /// Tensor name → where its bytes are (headers are parsed once, at open).
    location: BTreeMap<String, StoredTensor>,
}

struct StoredTensor {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range within the shard's file.
    bytes: Range<usize>,
}

impl SafetensorsDir {
    pub fn open(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.exists() {
            shard_files(&index)?
        } else {
            let single = dir.join("model.safetensors");
            if !single.exists() {
                return Err(LmError::BadFile {
                    file: dir.to_path_buf(),
                    reason: "no model.safetensors or model.safetensors.index.json".into(),
                });
            }
            vec![PathBuf::from("model.safetensors")]
        };
        let mut shards = Vec::new();
        let mut location = BTreeMap::new();
        for (i, name) in files.iter().enumerate() {
            let path = dir.join(name);
            let file = File::open(&path).map_err(|e| LmError::io(&path, e))?;
            // SAFETY: read-only map of a file we do not modify; a concurrent writer could
            // change the bytes under us, which safetensors' header checks then catch.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| LmError::io(&path, e))?;
            let bad = |e: safetensors::SafeTensorError| LmError::BadFile {
                file: path.clone(),
                reason: format!("not a safetensors file: {e}"),
            };
            // `deserialize` checks that every tensor's bytes lie inside the file.
            SafeTensors::deserialize(&map).map_err(bad)?;
            let (header_len, metadata) = SafeTensors::read_metadata(&map).map_err(bad)?;
            let data_start = 8 + header_len;
            for (name, info) in metadata.tensors() {
                let (begin, end) = info.data_offsets;
                location.insert(
                    name,
                    StoredTensor {
                        shard: i,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        bytes: data_start + begin..data_start + end,
                    },
                );
            }
            shards.push((path, map));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            shards,
            location,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.location.keys().map(String::as_str)
    }
}

/// The distinct shard files of an index, in first-seen order.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let bad = |reason: String| LmError::BadFile {
        file: index.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(index).map_err(|e| LmError::io(index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[`{tensor}`] is not a file name")))?;
        let file = PathBuf::from(file);
        if !files.contains(&file) {
            files.push(file);
        }
    }
    let dir = index.parent().unwrap_or(Path::new("."));
    if let Some(missing) = files.iter().find(|f| !dir.join(f).exists()) {
        return Err(bad(format!("shard {} is missing", missing.display())));
    }
    Ok(files)
}

impl WeightSource for SafetensorsDir {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn load(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let stored = self
            .location
            .get(name)
            .ok_or_else(|| LmError::MissingTensor {
                file: self.dir.clone(),
                tensor: name.to_string(),
            })?;
        let (path, map) = &self.shards[stored.shard];
        let view = TensorView::new(
            stored.dtype,
            stored.shape.clone(),
            &map[stored.bytes.clone()],
        )
        .map_err(|e| LmError::BadFile {
            file: path.clone(),
            reason: format!("tensor `{name}`: {e}"),
        })?;
        Ok((view_to_f32(name, &view)?, stored.shape.clone()))
    }
}
