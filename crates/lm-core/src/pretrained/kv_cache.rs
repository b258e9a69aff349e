//! Preallocated key/value cache: per layer `[rows, kv_heads, max_len, head_dim]` tensors
//! and a length per row, so rows of different lengths decode together.

use std::cell::OnceCell;

use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

use crate::kernels::DecodeQkv;

/// Keys and values of one layer.
#[derive(Debug, Clone)]
pub struct LayerKv<B: Backend> {
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
}

/// How new keys/values enter a layer's cache.
#[derive(Debug, Clone)]
pub enum CacheWrite<B: Backend> {
    /// Every row writes its `T` new tokens at slots `offset .. offset + T`.
    At(usize),
    /// One new token per row, each at its own slot.
    PerRow(RowSlots<B>),
}

/// Each row's slot for a write of one token per row (`[rows]`; a slot of `max_len` writes
/// nothing), and the `[rows, 1, max_len, 1]` one-hot of them that the tensor-op write uses,
/// built on the device at its first use and shared by every layer's keys and values.
#[derive(Debug, Clone)]
pub struct RowSlots<B: Backend> {
    pub slots: Tensor<B, 1, Int>,
    one_hot: OnceCell<Tensor<B, 4, Bool>>,
}

impl<B: Backend> RowSlots<B> {
    pub fn new(slots: Tensor<B, 1, Int>) -> Self {
        Self {
            slots,
            one_hot: OnceCell::new(),
        }
    }

    fn one_hot(&self, max_len: usize) -> Tensor<B, 4, Bool> {
        let one_hot = self.one_hot.get_or_init(|| {
            let rows = self.slots.dims()[0];
            let shape = [rows, 1, max_len, 1];
            let device = self.slots.device();
            let slot_ids = Tensor::<B, 1, Int>::arange(0..max_len as i64, &device)
                .reshape([1, 1, max_len, 1])
                .expand(shape);
            let at_slot = self.slots.clone().reshape([rows, 1, 1, 1]).expand(shape);
            at_slot.equal(slot_ids)
        });
        one_hot.clone()
    }
}

impl<B: Backend> LayerKv<B> {
    pub fn zeros(
        rows: usize,
        kv_heads: usize,
        max_len: usize,
        head_dim: usize,
        device: &B::Device,
    ) -> Self {
        let shape = [rows, kv_heads, max_len, head_dim];
        Self {
            k: Tensor::zeros(shape, device),
            v: Tensor::zeros(shape, device),
        }
    }

    /// Writes `k, v [rows, kv_heads, T, head_dim]` and returns the first `attend_len` slots
    /// of the updated cache (what the new queries attend over).
    pub fn write(
        &mut self,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        how: &CacheWrite<B>,
        attend_len: usize,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [rows, heads, max_len, hd] = self.k.dims();
        let update = |cache: Tensor<B, 4>, new: Tensor<B, 4>| match how {
            CacheWrite::At(offset) => {
                let t = new.dims()[2];
                cache.slice_assign([0..rows, 0..heads, *offset..offset + t, 0..hd], new)
            }
            CacheWrite::PerRow(slots) => {
                let shape = [rows, heads, max_len, hd];
                cache.mask_where(slots.one_hot(max_len).expand(shape), new.expand(shape))
            }
        };
        let (k_cache, v_cache) = self.take();
        self.k = update(k_cache, k);
        self.v = update(v_cache, v);
        let visible = [0..rows, 0..heads, 0..attend_len, 0..hd];
        (
            self.k.clone().slice(visible.clone()),
            self.v.clone().slice(visible),
        )
    }

    /// The decode step's q `[rows, heads, head_dim]` from `step` (bias, RoPE), with k and v
    /// written at `step.slots` by the same kernel; returns the whole caches beside q. Only
    /// where [`crate::kernels::has_decode_kernels`] holds.
    pub fn decode_qkv(&mut self, step: DecodeQkv<B>) -> (Tensor<B, 3>, Tensor<B, 4>, Tensor<B, 4>) {
        let (k_cache, v_cache) = self.take();
        let (q, k, v) = crate::kernels::decode_qkv(step, k_cache, v_cache)
            .expect("LayerKv::decode_qkv: the caller checked has_decode_kernels");
        self.k = k;
        self.v = v;
        (q, self.k.clone(), self.v.clone())
    }

    /// Moves the caches out (leaving empty placeholders), so the caller holds the only
    /// references and backends can update them in place.
    fn take(&mut self) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let device = self.k.device();
        let placeholder = || Tensor::<B, 4>::empty([0, 0, 0, 0], &device);
        (
            std::mem::replace(&mut self.k, placeholder()),
            std::mem::replace(&mut self.v, placeholder()),
        )
    }

    /// Copies rows `from .. from + n` of `src` (their first `len` slots) into rows
    /// `to .. to + n` of `self`.
    pub fn copy_rows(&mut self, to: usize, src: &Self, from: usize, n: usize, len: usize) {
        let [_, heads, _, hd] = self.k.dims();
        let dst = [to..to + n, 0..heads, 0..len, 0..hd];
        let rows = [from..from + n, 0..heads, 0..len, 0..hd];
        self.k = self
            .k
            .clone()
            .slice_assign(dst.clone(), src.k.clone().slice(rows.clone()));
        self.v = self.v.clone().slice_assign(dst, src.v.clone().slice(rows));
    }
}

/// Granularity of [`KvCache::attend_len`].
pub const ATTEND_BUCKET: usize = 128;

/// The cache of every layer plus each row's filled length.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    pub layers: Vec<LayerKv<B>>,
    /// Tokens held by each row (its next token goes to slot `lens[row]`).
    pub lens: Vec<usize>,
    pub max_len: usize,
}

impl<B: Backend> KvCache<B> {
    pub fn rows(&self) -> usize {
        self.lens.len()
    }

    /// How many slots a decode step attends over when its longest row needs `needed`:
    /// rounded up to a multiple of [`ATTEND_BUCKET`] (within `max_len`), so the attention's
    /// shapes change once per bucket instead of every step — on GPUs each new shape means
    /// new fused kernels and a new matmul autotune. The extra slots are masked.
    pub fn attend_len(&self, needed: usize) -> usize {
        crate::generate::bucketed_len(needed, ATTEND_BUCKET, self.max_len)
    }

    /// Each row's next slot (for [`CacheWrite::PerRow`]); a full row's is `max_len`, which
    /// writes nothing.
    pub fn next_slots(&self, device: &B::Device) -> RowSlots<B> {
        let slots: Vec<i64> = self
            .lens
            .iter()
            .map(|&len| len.min(self.max_len) as i64)
            .collect();
        RowSlots::new(Tensor::from_data(
            TensorData::new(slots, [self.rows()]),
            device,
        ))
    }
}
