//! Turning the hidden vector into label probabilities with fastText's semantics: softmax,
//! one-vs-all, or hierarchical softmax over the Huffman tree of label counts with its
//! depth-first top-k search. Scores are `ln(p + 1e-5)` and the reported probability is
//! `exp(score)`, so (as in fastText) probabilities carry a +1e-5 smoothing per factor.

use super::format::Loss;
use super::matrix::Matrix;

/// fastText's `std_log`: the log used for every score.
fn smoothed_log(p: f32) -> f32 {
    (p as f64 + 1e-5).ln() as f32
}

fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0f32 + (-x).exp()) as f64) as f32
}

const SIGMOID_TABLE_SIZE: usize = 512;
const MAX_SIGMOID: f32 = 8.0;

/// fastText's one-vs-all outputs come from a 513-entry sigmoid table over [-8, 8].
fn sigmoid_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=SIGMOID_TABLE_SIZE)
            .map(|i| {
                let x = (i as f32 * 2.0 * MAX_SIGMOID) / SIGMOID_TABLE_SIZE as f32 - MAX_SIGMOID;
                (1.0 / (1.0 + (-x).exp() as f64)) as f32
            })
            .collect()
    })
}

fn table_sigmoid(table: &[f32], x: f32) -> f32 {
    if x < -MAX_SIGMOID {
        0.0
    } else if x > MAX_SIGMOID {
        1.0
    } else {
        let i = ((x + MAX_SIGMOID) * SIGMOID_TABLE_SIZE as f32 / MAX_SIGMOID / 2.0) as usize;
        table[i]
    }
}

#[derive(Clone, Copy)]
struct Node {
    left: i32,
    right: i32,
}

/// The Huffman tree fastText builds from label counts (labels sorted by decreasing count):
/// leaves are labels, inner node `i` uses output row `i - labels`.
pub struct HuffmanTree {
    nodes: Vec<Node>,
    labels: usize,
}

impl HuffmanTree {
    pub fn new(counts: &[i64]) -> Self {
        let osz = counts.len();
        let total = (2 * osz).saturating_sub(1);
        let mut nodes = vec![
            Node {
                left: -1,
                right: -1
            };
            total
        ];
        let mut count: Vec<i64> = vec![1_000_000_000_000_000; total];
        count[..osz].copy_from_slice(counts);
        let mut leaf = osz as i64 - 1;
        let mut node = osz;
        for i in osz..total {
            let mut pick = [0usize; 2];
            for p in &mut pick {
                if leaf >= 0 && count[leaf as usize] < count[node] {
                    *p = leaf as usize;
                    leaf -= 1;
                } else {
                    *p = node;
                    node += 1;
                }
            }
            nodes[i] = Node {
                left: pick[0] as i32,
                right: pick[1] as i32,
            };
            count[i] = count[pick[0]] + count[pick[1]];
        }
        Self { nodes, labels: osz }
    }

    /// Paths for training: for each label, the (inner node output row, go-right) steps.
    pub fn paths(&self) -> Vec<Vec<(usize, bool)>> {
        let mut parent = vec![usize::MAX; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            if n.left >= 0 {
                parent[n.left as usize] = i;
                parent[n.right as usize] = i;
            }
        }
        (0..self.labels)
            .map(|label| {
                let mut path = Vec::new();
                let mut cur = label;
                while parent[cur] != usize::MAX {
                    let p = parent[cur];
                    path.push((p - self.labels, self.nodes[p].right as usize == cur));
                    cur = p;
                }
                path
            })
            .collect()
    }
}

/// A bounded min-heap of (score, label) keeping the best `k`, with fastText's tie order.
struct TopK {
    k: usize,
    items: Vec<(f32, usize)>,
}

impl TopK {
    fn worst(&self) -> f32 {
        self.items.iter().map(|p| p.0).fold(f32::INFINITY, f32::min)
    }
    fn full(&self) -> bool {
        self.items.len() == self.k
    }
    fn push(&mut self, score: f32, label: usize) {
        self.items.push((score, label));
        if self.items.len() > self.k {
            let (worst, _) = self
                .items
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
                .unwrap();
            self.items.swap_remove(worst);
        }
    }
}

pub struct Output<'a> {
    pub loss: Loss,
    pub matrix: &'a Matrix,
    pub tree: Option<&'a HuffmanTree>,
}

impl Output<'_> {
    /// The `k` best labels with probability ≥ `threshold`, best first.
    pub fn predict(&self, hidden: &[f32], k: usize, threshold: f32) -> Vec<(usize, f32)> {
        let mut heap = TopK {
            k,
            items: Vec::with_capacity(k + 1),
        };
        if k == 0 {
            return Vec::new();
        }
        match (self.loss, self.tree) {
            (Loss::HierarchicalSoftmax, Some(tree)) => {
                let root = tree.nodes.len() - 1;
                self.dfs(tree, &mut heap, threshold, root, 0.0, hidden);
            }
            _ => {
                let output = self.probabilities(hidden);
                for (i, &p) in output.iter().enumerate() {
                    if p < threshold {
                        continue;
                    }
                    let score = smoothed_log(p);
                    if heap.full() && score < heap.worst() {
                        continue;
                    }
                    heap.push(score, i);
                }
            }
        }
        let mut items = heap.items;
        items.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        items.into_iter().map(|(s, i)| (i, s.exp())).collect()
    }

    /// Softmax or per-label sigmoid outputs (not used for hierarchical softmax).
    pub fn probabilities(&self, hidden: &[f32]) -> Vec<f32> {
        let (rows, _) = self.matrix.shape();
        let mut out: Vec<f32> = (0..rows).map(|i| self.matrix.dot_row(hidden, i)).collect();
        if self.loss == Loss::OneVsAll {
            let table = sigmoid_table();
            out.iter_mut().for_each(|x| *x = table_sigmoid(table, *x));
            return out;
        }
        softmax(&mut out);
        out
    }

    fn dfs(
        &self,
        tree: &HuffmanTree,
        heap: &mut TopK,
        threshold: f32,
        node: usize,
        score: f32,
        hidden: &[f32],
    ) {
        if score < smoothed_log(threshold) {
            return;
        }
        if heap.full() && score < heap.worst() {
            return;
        }
        let n = tree.nodes[node];
        if n.left == -1 && n.right == -1 {
            heap.push(score, node);
            return;
        }
        let f = sigmoid(self.matrix.dot_row(hidden, node - tree.labels));
        let left = score + smoothed_log((1.0 - f as f64) as f32);
        self.dfs(tree, heap, threshold, n.left as usize, left, hidden);
        let right = score + smoothed_log(f);
        self.dfs(tree, heap, threshold, n.right as usize, right, hidden);
    }
}

pub fn softmax(out: &mut [f32]) {
    let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut z = 0.0f32;
    for x in out.iter_mut() {
        *x = (*x - max).exp();
        z += *x;
    }
    for x in out.iter_mut() {
        *x /= z;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huffman_tree_merges_rarest_first() {
        // Counts sorted decreasing: 5, 3, 1 → first inner node joins labels 2 and 1.
        let tree = HuffmanTree::new(&[5, 3, 1]);
        assert_eq!((tree.nodes[3].left, tree.nodes[3].right), (2, 1));
        // Then the inner node (count 4) is rarer than label 0 (count 5).
        assert_eq!((tree.nodes[4].left, tree.nodes[4].right), (3, 0));
        let paths = tree.paths();
        assert_eq!(paths[0], vec![(1, true)]);
        assert_eq!(paths[2], vec![(0, false), (1, false)]);
    }
}
