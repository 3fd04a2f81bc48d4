//! A plain row-major f32 tensor: the unit that flows between layers. The batch is axis 0.

use crate::error::{Error, Result};
use rayon::prelude::*;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Value(format!(
                "tensor of shape {:?} needs {} values, received {}",
                shape,
                n,
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        // Large buffers are zeroed (and their pages first touched) by all threads, not the calling one alone;
        // only on kerust's own pool (a worker thread): elsewhere rayon would start its global pool.
        const PARALLEL_FROM: usize = 1 << 16;
        let n = shape.iter().product();
        let data = if n >= PARALLEL_FROM && rayon::current_thread_index().is_some() {
            let mut v = Vec::with_capacity(n);
            v.par_extend(rayon::iter::repeat_n(0.0f32, n));
            v
        } else {
            vec![0.0; n]
        };
        Tensor { shape, data }
    }

    /// Size of axis 0 (the batch).
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Number of values per sample.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Length of the last axis.
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    pub fn reshaped(mut self, shape: Vec<usize>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.data.len() {
            return Err(Error::Value(format!(
                "cannot reshape {:?} to {:?}",
                self.shape, shape
            )));
        }
        self.shape = shape;
        Ok(self)
    }
}

/// Format a per-sample shape the Keras way: `(None, 28, 28, 1)`.
pub fn shape_str(sample_shape: &[usize]) -> String {
    let mut s = String::from("(None");
    for d in sample_shape {
        s.push_str(&format!(", {d}"));
    }
    s.push(')');
    s
}
