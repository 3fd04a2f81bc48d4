//! Stateless numeric kernels on slices. No shapes are inferred here: callers pass checked geometry.

pub mod conv;
pub mod gemm;
pub mod pool;
pub mod scratch;
pub mod simd;

/// Samples per parallel work item. Fixed, so chunk boundaries (and so every partial sum) do not depend on
/// the number of threads: results are bit-identical with 1, 2 or 16 threads.
pub const SAMPLES_PER_CHUNK: usize = 4;
