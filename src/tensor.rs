//! A plain row-major f32 tensor: the unit that flows between layers. The batch is axis 0.

use crate::error::{Error, Result};
use rayon::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// Buffers of inference tensors this thread is done with, for `Tensor::for_overwrite` to reuse.
    static SPARE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Most buffers kept per thread: an inference slice of the seed CNN gives back six buffers of five sizes (its
/// input and each layer's output); with fewer, the largest were dropped and allocated afresh on every slice.
const MAX_SPARE: usize = 8;
/// Smaller buffers are not worth keeping.
const MIN_SPARE_LEN: usize = 1 << 12;

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

    /// A tensor whose every value the caller overwrites before reading: its buffer may be one given back with
    /// `recycle` and hold that tensor's old values (always initialised floats, never garbage memory), which
    /// saves zeroing it. Inference only, where outputs are written whole and buffers have steady sizes.
    pub fn for_overwrite(shape: Vec<usize>) -> Self {
        let n: usize = shape.iter().product();
        let reused = SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            let pick = spare
                .iter()
                .position(|v| v.capacity() >= n && v.capacity() <= 2 * n.max(1));
            pick.map(|i| spare.swap_remove(i))
        });
        match reused {
            Some(mut data) => {
                if data.len() >= n {
                    data.truncate(n);
                } else {
                    data.resize(n, 0.0);
                }
                Tensor { shape, data }
            }
            None => Tensor::zeros(shape),
        }
    }

    /// Give this tensor's buffer to later `for_overwrite` calls on this thread.
    pub fn recycle(self) {
        if self.data.capacity() < MIN_SPARE_LEN {
            return;
        }
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < MAX_SPARE {
                spare.push(self.data);
            } else if let Some((i, _)) = spare
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.capacity())
                .filter(|(_, v)| v.capacity() < self.data.capacity())
            {
                // full: keep the bigger buffer (the costlier one to allocate and fault in again)
                spare[i] = self.data;
            }
        });
    }

    /// Free this thread's recycled buffers (at the end of an inference call, so they do not linger).
    pub fn drop_spares() {
        SPARE.with(|spare| spare.borrow_mut().clear());
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
