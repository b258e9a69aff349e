//! The Qwen2 / Llama decoder (Hugging Face `Qwen2ForCausalLM` / `LlamaForCausalLM`), built
//! from the same layers as the course's model: RMSNorm, SwiGLU, RoPE (half-split form),
//! with grouped-query attention and Qwen2's q/k/v biases.

use std::path::Path;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::attention::{CacheStep, GroupedQueryAttention, Projection, QKV_NAMES, SlotMask};
use super::config::DecoderConfig;
use super::kv_cache::{CacheWrite, KvCache};
use super::weights::{RandomWeights, SafetensorsDir, WeightSource};
use crate::error::{LmError, Result};
use crate::layers::{
    Embedding, Linear, RmsNorm, Rope, RopeStyle, SwiGlu, matmul_transposed, packed_product,
};
use crate::packed::PackedMatrix;

/// `x + attn(norm(x))`, then `+ mlp(norm(·))`. The MLP is [`SwiGlu`] with
/// `w1 = gate_proj`, `w3 = up_proj`, `w2 = down_proj` (not fused into one product like
/// q/k/v: on the CPU, `matrixmultiply` took 2× as long for the stacked `[2·ff, d]` weight
/// as for its two halves at 32 rows, which made prefill slower).
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    pub input_layernorm: RmsNorm<B>,
    pub self_attn: GroupedQueryAttention<B>,
    pub post_attention_layernorm: RmsNorm<B>,
    pub mlp: SwiGlu<B>,
}

#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    pub embed_tokens: Embedding<B>,
    pub layers: Vec<DecoderLayer<B>>,
    pub norm: RmsNorm<B>,
    /// `None` when the output matrix is tied to the embeddings.
    pub lm_head: Option<Linear<B>>,
    pub rope: Rope<B>,
    #[module(skip)]
    pub config: DecoderConfig,
    /// The tied output matrix as quantised blocks (see [`Self::load_with`]).
    #[module(skip)]
    pub packed_tied_head: Option<Arc<PackedMatrix>>,
}

impl<B: Backend> Decoder<B> {
    /// Loads a Hugging Face model directory (`config.json` + safetensors).
    pub fn from_hf_dir(dir: &Path, device: &B::Device) -> Result<Self> {
        let config = DecoderConfig::from_hf_file(&dir.join("config.json"))?;
        let weights = SafetensorsDir::open(dir)?;
        Self::load(config, &weights, device)
    }

    /// A freshly initialised decoder of `config` (see [`RandomWeights`]), for training
    /// from scratch.
    pub fn random(config: DecoderConfig, seed: u64, device: &B::Device) -> Result<Self> {
        Self::load(config, &RandomWeights::new(seed, 0.02), device)
    }

    /// Builds the decoder from tensors with Hugging Face names, checking every shape
    /// against the config.
    pub fn load(config: DecoderConfig, src: &dyn WeightSource, device: &B::Device) -> Result<Self> {
        Self::load_with(config, src, device, false)
    }

    /// [`Self::load`]; with `pack`, each projection whose quantised blocks `src` has (of a
    /// type with a kernel, see [`crate::packed`]) also keeps them, so that decoding on the
    /// CPU streams those instead of the f32 weights. For inference only: training updates
    /// the f32 weights, not the blocks.
    pub fn load_with(
        config: DecoderConfig,
        src: &dyn WeightSource,
        device: &B::Device,
        pack: bool,
    ) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let w = Loader { src, device, pack };
        let (d, hd) = (c.hidden_size, c.head_dim);
        let (q_dim, kv_dim) = (c.num_heads * hd, c.num_kv_heads * hd);
        let mut layers = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let [q_name, k_name, v_name] = QKV_NAMES.map(|n| format!("{p}.self_attn.{n}"));
            let attn = GroupedQueryAttention {
                qkv_proj: w.stacked_projection(
                    &[(&q_name, q_dim), (&k_name, kv_dim), (&v_name, kv_dim)],
                    d,
                    c.attention_bias,
                )?,
                o_proj: w.linear(&format!("{p}.self_attn.o_proj"), q_dim, d)?,
                num_heads: c.num_heads,
                num_kv_heads: c.num_kv_heads,
                head_dim: hd,
            };
            let mlp = SwiGlu {
                w1: w.linear(&format!("{p}.mlp.gate_proj"), d, c.intermediate_size)?,
                w2: w.linear(&format!("{p}.mlp.down_proj"), c.intermediate_size, d)?,
                w3: w.linear(&format!("{p}.mlp.up_proj"), d, c.intermediate_size)?,
            };
            layers.push(DecoderLayer {
                input_layernorm: w.norm(&format!("{p}.input_layernorm"), d, c.rms_norm_eps)?,
                self_attn: attn,
                post_attention_layernorm: w.norm(
                    &format!("{p}.post_attention_layernorm"),
                    d,
                    c.rms_norm_eps,
                )?,
                mlp,
            });
        }
        let (lm_head, packed_tied_head) = if c.tie_word_embeddings {
            let embeddings = ["model.embed_tokens.weight".to_string()];
            (None, w.blocks(&embeddings, d, c.vocab_size)?)
        } else {
            (Some(w.linear("lm_head", d, c.vocab_size)?), None)
        };
        let rope = Rope::from_inv_freq(
            &c.inv_freq(),
            RopeStyle::HalfSplit,
            c.rope_theta,
            c.rope_positions(),
            device,
        );
        Ok(Self {
            embed_tokens: Embedding::from_weight(
                w.tensor("model.embed_tokens.weight", [c.vocab_size, d])?,
            ),
            layers,
            norm: w.norm("model.norm", d, c.rms_norm_eps)?,
            lm_head,
            rope,
            config,
            packed_tied_head,
        })
    }

    /// Final hidden states `[rows, T, d]` of `ids [rows, T]` at `positions [rows, T]`.
    ///
    /// Without a cache the `T` tokens are the whole sequence (slots `0..T`); with one, they
    /// are written as `write` says and attend over the first `mask.len` cached slots.
    pub fn hidden(
        &self,
        ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: &SlotMask,
        mut cache: Option<(&mut KvCache<B>, &CacheWrite<B>)>,
    ) -> Tensor<B, 3> {
        let t = ids.dims()[1];
        let device = ids.device();
        let bias = mask.bias::<B>(t, &device);
        let mut x = self.embed_tokens.forward::<2, 3>(ids);
        // Gathered once here rather than twice in every layer.
        let rope = self.rope.tables(positions, x.dtype());
        // Each residual add is fused with the norm after it where the backend has the kernel
        // (RmsNorm::add_forward): `normed` is the next sublayer's input.
        let mut normed = match self.layers.first() {
            Some(layer) => layer.input_layernorm.forward(x.clone()),
            None => return x,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let step = cache.as_mut().map(|(kv, write)| CacheStep {
                kv: &mut kv.layers[i],
                write: *write,
            });
            let attn = layer.self_attn.forward(normed, &rope, bias.clone(), step);
            let (h, h_normed) = layer.post_attention_layernorm.add_forward(x, attn);
            let mlp = layer.mlp.forward(h_normed);
            match self.layers.get(i + 1) {
                Some(next) => (x, normed) = next.input_layernorm.add_forward(h, mlp),
                None => return h + mlp,
            }
        }
        unreachable!("the last layer returns")
    }

    /// `norm(h) · lm_headᵀ`: logits `[rows, T, vocab]`.
    pub fn logits(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = self.norm.forward(h);
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => {
                // Tied: the embedding matrix serves as the output projection.
                let [rows, t, d] = h.dims();
                let h2: Tensor<B, 2> = h.reshape([rows * t, d]);
                let y = packed_product(&h2, self.packed_tied_head.as_deref())
                    .unwrap_or_else(|| matmul_transposed(h2, self.embed_tokens.weight.val()));
                y.reshape([rows, t, self.config.vocab_size])
            }
        }
    }

    /// Logits `[rows, T, vocab]` of whole sequences (no cache; gradients flow on autodiff
    /// backends). `attention_mask [rows · T]` (true = token, false = pad) masks pad keys;
    /// rows may be left- or right-padded.
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        attention_mask: Option<&[bool]>,
    ) -> Result<Tensor<B, 3>> {
        let [rows, t] = ids.dims();
        self.check_positions(&positions)?;
        let key_ok = match attention_mask {
            Some(m) if m.len() != rows * t => {
                return Err(LmError::shape(
                    "attention_mask",
                    format!("[{rows}, {t}]"),
                    &[m.len()],
                ));
            }
            Some(m) => m.to_vec(),
            None => vec![true; rows * t],
        };
        let mask = SlotMask {
            offsets: vec![0; rows],
            key_ok,
            len: t,
        };
        Ok(self.logits(self.hidden(ids, positions, &mask, None)))
    }

    /// Positions must index the RoPE table.
    pub fn check_positions(&self, positions: &Tensor<B, 2, Int>) -> Result<()> {
        let limit = self.rope.max_seq_len as i64;
        let data = positions.clone().into_data().convert::<i64>();
        let values = data.as_slice::<i64>().unwrap_or(&[]);
        if let Some(&bad) = values.iter().find(|&&p| p < 0 || p >= limit) {
            return Err(LmError::shape(
                "position_ids",
                format!("values in 0..{limit} (the RoPE table)"),
                &[bad.max(0) as usize],
            ));
        }
        Ok(())
    }

    /// An empty cache of `rows` rows of `max_len` slots.
    pub fn empty_cache(&self, rows: usize, max_len: usize, device: &B::Device) -> KvCache<B> {
        let c = &self.config;
        KvCache {
            layers: (0..c.num_layers)
                .map(|_| {
                    super::kv_cache::LayerKv::zeros(
                        rows,
                        c.num_kv_heads,
                        max_len,
                        c.head_dim,
                        device,
                    )
                })
                .collect(),
            lens: vec![0; rows],
            max_len,
        }
    }
}

/// Reads tensors by name and checks their shapes; with `pack`, projections also keep
/// their quantised blocks.
struct Loader<'a, B: Backend> {
    src: &'a dyn WeightSource,
    device: &'a B::Device,
    pack: bool,
}

impl<B: Backend> Loader<'_, B> {
    fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<B, D>> {
        Ok(Tensor::from_data(
            TensorData::new(self.values(name, &shape)?, shape),
            self.device,
        ))
    }

    /// The values of `name`, after checking its shape.
    fn values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (values, got) = self.src.load_shaped(name, shape)?;
        self.check_shape(name, &got, shape)?;
        Ok(values)
    }

    fn linear(&self, prefix: &str, d_in: usize, d_out: usize) -> Result<Linear<B>> {
        let name = format!("{prefix}.weight");
        let mut linear = Linear::from_weight(self.tensor(&name, [d_out, d_in])?);
        linear.packed = self.blocks(&[name], d_in, d_out)?;
        Ok(linear)
    }

    /// With `pack`, the tensors `names` (each `[rows_i, cols]`) stacked row-wise as one
    /// packed matrix of `rows` rows; `None` without `pack` or when one of them has no
    /// blocks.
    fn blocks(
        &self,
        names: &[String],
        cols: usize,
        rows: usize,
    ) -> Result<Option<Arc<PackedMatrix>>> {
        if !self.pack {
            return Ok(None);
        }
        let mut parts = Vec::with_capacity(names.len());
        for name in names {
            let Some(blocks) = self.src.load_blocks(name)? else {
                return Ok(None);
            };
            if blocks.shape.len() != 2 || blocks.shape[1] != cols {
                return Err(self.bad(format!(
                    "tensor `{name}` has shape {:?}, the model has {cols} columns",
                    blocks.shape
                )));
            }
            parts.push((blocks.ty, blocks.shape[0], blocks.bytes));
        }
        let matrix = PackedMatrix::new(cols, parts)
            .map_err(|e| self.bad(format!("tensors {names:?}: {e}")))?;
        if matrix.rows() != rows {
            return Err(self.bad(format!(
                "tensors {names:?} have {} rows, the model has {rows}",
                matrix.rows()
            )));
        }
        Ok(Some(Arc::new(matrix)))
    }

    fn check_shape(&self, name: &str, got: &[usize], expected: &[usize]) -> Result<()> {
        if got == expected {
            return Ok(());
        }
        Err(self.bad(format!(
            "tensor `{name}` has shape {got:?}, the config expects {expected:?}"
        )))
    }

    fn bad(&self, reason: String) -> LmError {
        LmError::BadFile {
            file: self.src.path().to_path_buf(),
            reason,
        }
    }

    /// Projections loaded by their own names and shapes (`(prefix, d_out)`), stacked
    /// row-wise into one (biases likewise).
    fn stacked_projection(
        &self,
        parts: &[(&str, usize)],
        d_in: usize,
        bias: bool,
    ) -> Result<Projection<B>> {
        // Stacked as plain values: a `Tensor::cat` would be an autodiff node, not a leaf
        // that can become a trainable parameter.
        let rows: usize = parts.iter().map(|&(_, d_out)| d_out).sum();
        let mut weights = Vec::with_capacity(rows * d_in);
        let mut biases = Vec::with_capacity(rows);
        for &(prefix, d_out) in parts {
            weights.extend(self.values(&format!("{prefix}.weight"), &[d_out, d_in])?);
            if bias {
                biases.extend(self.values(&format!("{prefix}.bias"), &[d_out])?);
            }
        }
        let weight = TensorData::new(weights, [rows, d_in]);
        let bias = bias.then(|| TensorData::new(biases, [rows]));
        let names: Vec<String> = parts.iter().map(|(p, _)| format!("{p}.weight")).collect();
        let mut linear = Linear::from_weight(Tensor::from_data(weight, self.device));
        linear.packed = self.blocks(&names, d_in, rows)?;
        Ok(Projection {
            linear,
            bias: bias.map(|b| Param::from_tensor(Tensor::from_data(b, self.device))),
        })
    }

    fn norm(&self, prefix: &str, d: usize, eps: f64) -> Result<RmsNorm<B>> {
        Ok(RmsNorm::from_weight(
            self.tensor(&format!("{prefix}.weight"), [d])?,
            eps,
        ))
    }
}
