//! A ready-made tiny training run (token files and config) for tests of the trainer and of
//! the labs built on it (data-parallel training, the CLI): seconds on a CPU.

use std::path::Path;

use super::TrainConfig;

/// Writes `ids` as a little-endian u16 token file.
pub fn write_tokens(path: &Path, ids: &[u16]) -> std::io::Result<()> {
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(path, bytes)
}

/// Token files `train.bin` (4000 tokens) and `valid.bin` (600) of a vocabulary of 61 in
/// `dir`, and the config of a 2-layer, d_model 32 model trained on them for `steps` steps
/// (batch 4 × 16 tokens, evaluation and checkpoint every 4 steps, ndarray). The config is
/// also written to `dir/config.toml` for command-line tests.
pub fn tiny_run(dir: &Path, steps: u64) -> TrainConfig {
    let ids: Vec<u16> = (0..4000u32)
        .map(|i| ((i * 7 + i / 13) % 61) as u16)
        .collect();
    let (train_path, valid_path) = (dir.join("train.bin"), dir.join("valid.bin"));
    write_tokens(&train_path, &ids).expect("writing train.bin");
    write_tokens(&valid_path, &ids[..600]).expect("writing valid.bin");
    let text = format!(
        r#"
[model]
vocab_size = 64
context_length = 16
d_model = 32
num_layers = 2
num_heads = 2
d_ff = 64
[data]
train = "{}"
valid = "{}"
[optimizer]
lr = 3e-3
min_lr = 3e-4
betas = [0.9, 0.95]
eps = 1e-8
weight_decay = 0.01
warmup_iters = 2
grad_clip = 1.0
[train]
steps = {steps}
batch_size = 4
eval_interval = 4
eval_batches = 2
checkpoint_interval = 4
seed = 3
backend = "ndarray"
"#,
        train_path.display(),
        valid_path.display()
    );
    std::fs::write(dir.join("config.toml"), &text).expect("writing config.toml");
    TrainConfig::from_toml(&text, &[]).expect("the fixture config is valid")
}
