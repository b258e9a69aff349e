//! The input and output matrices: dense `f32` rows, or product-quantized rows (8-bit codes
//! into 256 centroids per sub-vector, with an optional quantized norm per row).

use super::format::{Reader, Writer};
use crate::Result;

const CENTROIDS: usize = 256;

/// fastText's product quantizer: `nsubq` sub-vectors of `dsub` values (the last one
/// `lastdsub`), each coded by one byte.
pub struct ProductQuantizer {
    dim: usize,
    nsubq: usize,
    dsub: usize,
    lastdsub: usize,
    centroids: Vec<f32>,
}

impl ProductQuantizer {
    fn read(r: &mut Reader, what: &str) -> Result<Self> {
        let dim = r.i32(what)?;
        let nsubq = r.i32(what)?;
        let dsub = r.i32(what)?;
        let lastdsub = r.i32(what)?;
        let ok = dim > 0
            && nsubq > 0
            && dsub > 0
            && lastdsub > 0
            && (nsubq - 1) as i64 * dsub as i64 + lastdsub as i64 == dim as i64;
        if !ok {
            return Err(r.error(
                what,
                format!("bad layout dim {dim}, nsubq {nsubq}, dsub {dsub}, lastdsub {lastdsub}"),
            ));
        }
        let n = r.count(dim as i64 * CENTROIDS as i64, 4, what)?;
        Ok(Self {
            dim: dim as usize,
            nsubq: nsubq as usize,
            dsub: dsub as usize,
            lastdsub: lastdsub as usize,
            centroids: r.f32s(n, what)?,
        })
    }

    /// Centroid `code` of sub-quantizer `m` (the last one is laid out with `lastdsub`).
    fn centroid(&self, m: usize, code: u8) -> &[f32] {
        let code = code as usize;
        if m == self.nsubq - 1 {
            let start = m * CENTROIDS * self.dsub + code * self.lastdsub;
            &self.centroids[start..start + self.lastdsub]
        } else {
            let start = (m * CENTROIDS + code) * self.dsub;
            &self.centroids[start..start + self.dsub]
        }
    }

    fn add_code(&self, x: &mut [f32], codes: &[u8], alpha: f32) {
        for (m, &code) in codes.iter().enumerate() {
            let c = self.centroid(m, code);
            for (xi, ci) in x[m * self.dsub..].iter_mut().zip(c) {
                *xi += alpha * ci;
            }
        }
    }

    fn mul_code(&self, x: &[f32], codes: &[u8], alpha: f32) -> f32 {
        let mut res = 0.0f32;
        for (m, &code) in codes.iter().enumerate() {
            let c = self.centroid(m, code);
            for (xi, ci) in x[m * self.dsub..].iter().zip(c) {
                res += xi * ci;
            }
        }
        res * alpha
    }
}

pub struct QuantizedMatrix {
    rows: usize,
    cols: usize,
    codes: Vec<u8>,
    pq: ProductQuantizer,
    /// Per-row norm codes and their one-dimensional quantizer (`qnorm`).
    norms: Option<(Vec<u8>, ProductQuantizer)>,
}

pub enum Matrix {
    Dense {
        rows: usize,
        cols: usize,
        data: Vec<f32>,
    },
    Quantized(QuantizedMatrix),
}

impl Matrix {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self::Dense {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub fn read(r: &mut Reader, quantized: bool, what: &str) -> Result<Self> {
        if !quantized {
            let rows = r.i64(what)?;
            let cols = r.i64(what)?;
            if rows < 0 || cols < 0 {
                return Err(r.error(what, format!("bad shape {rows}×{cols}")));
            }
            let n = r.count(rows.saturating_mul(cols), 4, what)?;
            return Ok(Self::Dense {
                rows: rows as usize,
                cols: cols as usize,
                data: r.f32s(n, what)?,
            });
        }
        let qnorm = r.bool(what)?;
        let rows = r.i64(what)?;
        let cols = r.i64(what)?;
        let code_size = r.i32(what)?;
        if rows < 0 || cols <= 0 || code_size < 0 {
            return Err(r.error(what, format!("bad shape {rows}×{cols}")));
        }
        let n = r.count(code_size as i64, 1, what)?;
        let codes = r.take(n, what)?.to_vec();
        let pq = ProductQuantizer::read(r, what)?;
        if pq.dim != cols as usize || codes.len() != rows as usize * pq.nsubq {
            return Err(r.error(
                what,
                format!(
                    "{} codes for {rows} rows × {} sub-vectors",
                    codes.len(),
                    pq.nsubq
                ),
            ));
        }
        let norms = if qnorm {
            let n = r.count(rows, 1, what)?;
            let norm_codes = r.take(n, what)?.to_vec();
            let npq = ProductQuantizer::read(r, what)?;
            if npq.dim != 1 {
                return Err(r.error(what, "norm quantizer must be one-dimensional"));
            }
            Some((norm_codes, npq))
        } else {
            None
        };
        Ok(Self::Quantized(QuantizedMatrix {
            rows: rows as usize,
            cols: cols as usize,
            codes,
            pq,
            norms,
        }))
    }

    /// Writes a dense matrix (the trainer only produces dense ones).
    pub fn write(&self, w: &mut Writer) {
        match self {
            Self::Dense { rows, cols, data } => {
                w.i64(*rows as i64);
                w.i64(*cols as i64);
                w.f32s(data);
            }
            Self::Quantized(_) => unreachable!("quantized matrices are only read"),
        }
    }

    pub fn is_quantized(&self) -> bool {
        matches!(self, Self::Quantized(_))
    }

    pub fn shape(&self) -> (usize, usize) {
        match self {
            Self::Dense { rows, cols, .. } => (*rows, *cols),
            Self::Quantized(q) => (q.rows, q.cols),
        }
    }

    /// `x += row i`.
    pub fn add_row_to(&self, x: &mut [f32], i: usize) {
        match self {
            Self::Dense { cols, data, .. } => {
                for (xi, v) in x.iter_mut().zip(&data[i * cols..(i + 1) * cols]) {
                    *xi += v;
                }
            }
            Self::Quantized(q) => {
                let n = q.pq.nsubq;
                q.pq.add_code(x, &q.codes[i * n..(i + 1) * n], q.norm(i));
            }
        }
    }

    /// `row i · x`.
    pub fn dot_row(&self, x: &[f32], i: usize) -> f32 {
        match self {
            Self::Dense { cols, data, .. } => {
                let mut d = 0.0f32;
                for (v, xi) in data[i * cols..(i + 1) * cols].iter().zip(x) {
                    d += v * xi;
                }
                d
            }
            Self::Quantized(q) => {
                let n = q.pq.nsubq;
                q.pq.mul_code(x, &q.codes[i * n..(i + 1) * n], q.norm(i))
            }
        }
    }

    /// Mutable access to a dense row (training).
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        match self {
            Self::Dense { cols, data, .. } => &mut data[i * *cols..(i + 1) * *cols],
            Self::Quantized(_) => unreachable!("quantized matrices are read-only"),
        }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        match self {
            Self::Dense { cols, data, .. } => &data[i * cols..(i + 1) * cols],
            Self::Quantized(_) => unreachable!("quantized matrices have no stored rows"),
        }
    }
}

impl QuantizedMatrix {
    fn norm(&self, i: usize) -> f32 {
        match &self.norms {
            Some((codes, npq)) => npq.centroid(0, codes[i])[0],
            None => 1.0,
        }
    }
}
