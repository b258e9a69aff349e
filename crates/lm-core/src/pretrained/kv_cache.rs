//! Preallocated key/value cache: per layer `[rows, kv_heads, max_len, head_dim]` tensors
//! and a length per row, so rows of different lengths decode together.

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};

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
    /// One new token per row, row `b` at its own slot: a `[rows, 1, max_len, 1]` one-hot.
    PerRow(Tensor<B, 4, Bool>),
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
            CacheWrite::PerRow(one_hot) => {
                let shape = [rows, heads, max_len, hd];
                cache.mask_where(one_hot.clone().expand(shape), new.expand(shape))
            }
        };
        // Moving the tensors out keeps them uniquely owned, so backends can update in place.
        let device = self.k.device();
        let placeholder = || Tensor::<B, 4>::empty([0, 0, 0, 0], &device);
        let k_cache = std::mem::replace(&mut self.k, placeholder());
        let v_cache = std::mem::replace(&mut self.v, placeholder());
        self.k = update(k_cache, k);
        self.v = update(v_cache, v);
        let visible = [0..rows, 0..heads, 0..attend_len, 0..hd];
        (
            self.k.clone().slice(visible.clone()),
            self.v.clone().slice(visible),
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

    /// The `[rows, 1, max_len, 1]` one-hot of each row's next slot (for [`CacheWrite::PerRow`]);
    /// a full row matches no slot.
    pub fn next_slot_one_hot(&self, device: &B::Device) -> Tensor<B, 4, Bool> {
        let rows = self.rows();
        let mut hot = vec![false; rows * self.max_len];
        for (r, &len) in self.lens.iter().enumerate() {
            if len < self.max_len {
                hot[r * self.max_len + len] = true;
            }
        }
        Tensor::from_data(TensorData::new(hot, [rows, 1, self.max_len, 1]), device)
    }
}
