//! Pretrained decoder architectures (Qwen2, Llama) and their files: Hugging Face
//! directories (config.json + safetensors) and GGUF.

pub mod attention;
mod causal_lm;
pub mod config;
pub mod decoder;
pub mod gguf_model;
pub mod kv_cache;
mod save;
pub mod weights;

pub use config::{Architecture, DecoderConfig};
pub use decoder::Decoder;
pub use kv_cache::KvCache;
pub use save::hf_config_json;
pub mod chat;
pub mod gguf;
pub mod tokenizer;
