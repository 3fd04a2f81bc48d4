//! kerust: a Keras-compatible deep-learning engine. Everything outside `bindings` is plain Rust
//! (ndarray-free slices and `Tensor`s) and is tested with `cargo test` alone.

pub mod activations;
pub mod alloc;
pub mod bindings;
pub mod config;
pub mod constraints;
pub mod error;
pub mod graph;
pub mod initializers;
pub mod kernels;
pub mod layers;
pub mod losses;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod optimizers;
pub mod rng;
pub mod schedules;
pub mod state_metric;
pub mod tensor;
pub mod traced_loss;

/// Large blocks come from one shared cache of mappings instead of glibc's per-thread arenas (see `alloc`).
#[global_allocator]
static ALLOCATOR: alloc::KerustAlloc = alloc::KerustAlloc;
