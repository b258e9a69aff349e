//! Project automation behind `cargo xtask`; the conformance runner is a library so the test
//! suite runs it too.

pub mod bench;
pub mod child;
pub mod conformance;
pub mod lab1;
pub mod lab2;
mod lab2_plot;
pub mod lab3;
pub mod lab5;

/// Whether CUDA runs use burn's fusion layer (`LM_CUDA_FUSION=0` turns it off: fused kernels
/// are compiled per op graph, and decoding changes the graph with every cache length).
pub fn cuda_fusion() -> bool {
    std::env::var("LM_CUDA_FUSION").map_or(true, |v| v != "0")
}
