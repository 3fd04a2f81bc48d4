//! The array the op kernels work on: a row-major buffer with its full shape, generic over the float type so
//! the same kernels run in f32 (the engine) and in f64 (the finite-difference checks of every derivative).

use crate::error::{Error, Result};

/// The float types the op kernels run in.
pub trait Real:
    num_traits::Float
    + num_traits::FloatConst
    + Send
    + Sync
    + Default
    + std::fmt::Debug
    + std::iter::Sum
    + 'static
{
    fn c(x: f64) -> Self;
    fn f64(self) -> f64;
    /// `x = exp(x - top)` over `row`, returning the sum (a softmax's middle pass). f32 uses the vectorised
    /// `exp` of the activations (within a few ulps), f64 the library's.
    fn exp_shifted_sum(row: &mut [Self], top: Self) -> Self {
        let mut sum = Self::zero();
        for x in row.iter_mut() {
            *x = (*x - top).exp();
            sum = sum + *x;
        }
        sum
    }
}

impl Real for f32 {
    fn c(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn exp_shifted_sum(row: &mut [f32], top: f32) -> f32 {
        crate::activations::exp_shifted(row, top);
        row.iter().sum()
    }
}

impl Real for f64 {
    fn c(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Arr<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// `(2, 3)` as Keras prints a full shape.
pub fn tuple_str(shape: &[usize]) -> String {
    match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A possibly negative axis of an array of rank `rank`, as an index.
pub fn norm_axis(op: &str, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r.max(1) || (rank == 0 && axis != 0 && axis != -1) {
        return Err(Error::Value(format!(
            "{op}: axis {axis} is out of bounds for a tensor of rank {rank}"
        )));
    }
    Ok(if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    })
}

impl<T: Real> Arr<T> {
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Self {
        debug_assert_eq!(numel(&shape), data.len());
        Arr { shape, data }
    }

    pub fn full(shape: Vec<usize>, v: T) -> Self {
        let n = numel(&shape);
        Arr {
            shape,
            data: vec![v; n],
        }
    }

    pub fn scalar(v: T) -> Self {
        Arr {
            shape: vec![],
            data: vec![v],
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Arr::new(
            self.shape.clone(),
            self.data.iter().map(|&x| f(x)).collect(),
        )
    }

    pub fn reshaped(mut self, shape: Vec<usize>) -> Self {
        debug_assert_eq!(numel(&shape), self.data.len());
        self.shape = shape;
        self
    }

    /// The axes permuted: output axis i is input axis `perm[i]`.
    pub fn permuted(&self, perm: &[usize]) -> Self {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.clone();
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let src = strides(&self.shape);
        let st: Vec<usize> = perm.iter().map(|&p| src[p]).collect();
        let mut data = Vec::with_capacity(self.data.len());
        // trailing axes the permutation leaves in place are contiguous runs: copy them whole
        let rank = perm.len();
        let tail = perm
            .iter()
            .rev()
            .enumerate()
            .take_while(|&(i, &p)| p == rank - 1 - i)
            .count();
        let run: usize = self.shape[rank - tail..].iter().product();
        if tail > 0 && run >= 4 {
            let outer = rank - tail;
            for_each_offset(&shape[..outer], &st[..outer], |o| {
                data.extend_from_slice(&self.data[o..o + run])
            });
        } else {
            for_each_offset(&shape, &st, |o| data.push(self.data[o]));
        }
        Arr::new(shape, data)
    }

    /// This array broadcast to `shape` (numpy rules; the caller checked they fit).
    pub fn broadcast_to(&self, shape: &[usize]) -> Self {
        if self.shape == shape {
            return self.clone();
        }
        let st = broadcast_strides(&self.shape, shape);
        let mut data = Vec::with_capacity(numel(shape));
        for_each_offset(shape, &st, |o| data.push(self.data[o]));
        Arr::new(shape.to_vec(), data)
    }

    /// Sum this array (of a broadcast shape) down to `shape`: the gradient of a broadcast.
    pub fn sum_to(&self, shape: &[usize]) -> Self {
        if self.shape == shape {
            return self.clone();
        }
        let st = broadcast_strides(shape, &self.shape);
        let mut out = vec![T::zero(); numel(shape)];
        let mut i = 0;
        for_each_offset(&self.shape, &st, |o| {
            out[o] = out[o] + self.data[i];
            i += 1;
        });
        Arr::new(shape.to_vec(), out)
    }
}

/// Strides for reading an array of shape `from` as if it had the (broadcast) shape `to`: 0 along broadcast
/// axes. `from` is right-aligned to `to`.
pub fn broadcast_strides(from: &[usize], to: &[usize]) -> Vec<usize> {
    let src = strides(from);
    let lead = to.len() - from.len();
    (0..to.len())
        .map(|i| {
            if i < lead || from[i - lead] == 1 {
                0
            } else {
                src[i - lead]
            }
        })
        .collect()
}

/// Numpy broadcasting of two concrete shapes.
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let x = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let y = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if x == y || y == 1 {
            x
        } else if x == 1 {
            y
        } else {
            return Err(Error::Value(format!(
                "{op}: cannot broadcast shapes {} and {}",
                tuple_str(a),
                tuple_str(b)
            )));
        };
    }
    Ok(out)
}

/// Visit every index of `shape` in row-major order, passing the offset `sum(index * strides)`.
pub fn for_each_offset(shape: &[usize], strides: &[usize], mut f: impl FnMut(usize)) {
    let n = numel(shape);
    if n == 0 {
        return;
    }
    let rank = shape.len();
    if rank == 0 {
        f(0);
        return;
    }
    let last = shape[rank - 1];
    let last_stride = strides[rank - 1];
    let mut idx = vec![0usize; rank];
    let mut base = 0usize;
    loop {
        for j in 0..last {
            f(base + j * last_stride);
        }
        // carry into the outer axes
        let mut ax = rank - 1;
        loop {
            if ax == 0 {
                return;
            }
            ax -= 1;
            idx[ax] += 1;
            base += strides[ax];
            if idx[ax] < shape[ax] {
                break;
            }
            base -= strides[ax] * shape[ax];
            idx[ax] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_and_sum_to_are_adjoint() {
        let a = Arr::new(vec![3, 1], vec![1.0f64, 2.0, 3.0]);
        let b = a.broadcast_to(&[2, 3, 4]);
        assert_eq!(b.shape, vec![2, 3, 4]);
        assert_eq!(b.data[4], 2.0);
        let s = b.sum_to(&[3, 1]);
        assert_eq!(s.data, vec![8.0, 16.0, 24.0]);
        let p = Arr::new(vec![2, 3], (0..6).map(|i| i as f64).collect()).permuted(&[1, 0]);
        assert_eq!(p.data, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn permutations_keeping_trailing_axes_copy_whole_runs_to_the_same_values() {
        let shape = vec![2, 3, 4, 5];
        let a = Arr::new(shape.clone(), (0..120).map(|i| i as f64).collect());
        let st = strides(&shape);
        for perm in [
            [1, 0, 2, 3],
            [2, 0, 1, 3],
            [0, 2, 1, 3],
            [1, 0, 3, 2],
            [3, 2, 1, 0],
        ] {
            let p = a.permuted(&perm);
            let new_shape: Vec<usize> = perm.iter().map(|&q| shape[q]).collect();
            assert_eq!(p.shape, new_shape);
            // element by element: out[i0, i1, i2, i3] = a[index with axis perm[j] = i_j]
            for (flat, &v) in p.data.iter().enumerate() {
                let mut rest = flat;
                let mut src = 0;
                for j in (0..4).rev() {
                    let i = rest % new_shape[j];
                    rest /= new_shape[j];
                    src += i * st[perm[j]];
                }
                assert_eq!(v, a.data[src], "perm {perm:?} at {flat}");
            }
        }
    }
}
