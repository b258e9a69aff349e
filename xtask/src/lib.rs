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
