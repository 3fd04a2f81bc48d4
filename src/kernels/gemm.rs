//! Single-threaded f32 matrix product on row-major slices, through the `gemm` crate (runtime SIMD dispatch).
//! Parallelism happens one level up, over fixed chunks of the batch.

/// Which way a row-major operand is read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// The slice holds the matrix as stored.
    N,
    /// The slice holds the transpose (read a `(k, m)` buffer as `(m, k)`).
    T,
}

/// `c (m x n) = [c +] op(a) (m x k) * op(b) (k x n)`; `accumulate` adds into `c` instead of overwriting it.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    c: &mut [f32],
    accumulate: bool,
) {
    // Internal invariant: callers size every buffer from the same checked geometry.
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].iter_mut().for_each(|v| *v = 0.0);
        }
        return;
    }
    let (a_rs, a_cs) = match op_a {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (b_rs, b_cs) = match op_b {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    // SAFETY: the assert above bounds every index the strides can reach: a (m*k), b (k*n), c (m*n).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], ta: bool, b: &[f32], tb: bool) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    s += av * bv;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn all_transposes_match_naive() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 9) as f32 - 4.0) * 0.2)
            .collect();
        for (ta, oa) in [(false, Op::N), (true, Op::T)] {
            for (tb, ob) in [(false, Op::N), (true, Op::T)] {
                let want = naive(m, k, n, &a, ta, &b, tb);
                let mut c = vec![1.0; m * n];
                matmul(m, k, n, &a, oa, &b, ob, &mut c, false);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-5);
                }
                matmul(m, k, n, &a, oa, &b, ob, &mut c, true);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-5);
                }
            }
        }
    }
}
