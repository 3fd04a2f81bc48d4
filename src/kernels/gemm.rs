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
    // the whole buffers, each row `ld` = its stored row length apart
    let ld = |op: Op, rows_n: usize, rows_t: usize| if op == Op::N { rows_n } else { rows_t };
    let sa = Sub {
        data: a,
        ld: ld(op_a, k, m),
        op: op_a,
    };
    let sb = Sub {
        data: b,
        ld: ld(op_b, n, k),
        op: op_b,
    };
    matmul_sub(m, k, n, sa, sb, c, n, accumulate);
}

/// A row-major matrix inside a larger buffer: `rows x cols` values, `ld` apart from one row to the next, read
/// as stored or transposed.
#[derive(Clone, Copy, Debug)]
pub struct Sub<'a> {
    pub data: &'a [f32],
    pub ld: usize,
    pub op: Op,
}

/// `c = [c +] op(a) (m x k) * op(b) (k x n)` on sub-matrices: `a`, `b` and `c` (`ldc` apart) may be column
/// blocks of wider matrices, as the groups of a grouped convolution are.
#[allow(clippy::too_many_arguments)]
pub fn matmul_sub(
    m: usize,
    k: usize,
    n: usize,
    a: Sub,
    b: Sub,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    // (row stride, column stride) of op(x) for an x stored row-major with `ld`
    let strides = |s: &Sub| match s.op {
        Op::N => (s.ld as isize, 1isize),
        Op::T => (1isize, s.ld as isize),
    };
    let ((a_rs, a_cs), (b_rs, b_cs)) = (strides(&a), strides(&b));
    // the last index each operand's strides reach, plus one
    let reach = |rows: usize, cols: usize, rs: isize, cs: isize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1
        }
    };
    // Internal invariant: callers size every buffer from the same checked geometry.
    assert!(
        a.data.len() >= reach(m, k, a_rs, a_cs)
            && b.data.len() >= reach(k, n, b_rs, b_cs)
            && c.len() >= reach(m, n, ldc as isize, 1)
            && ldc >= n
    );
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                c[row * ldc..][..n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the assert above bounds every index the strides can reach in a, b and c.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
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
    fn sub_matrices_match_naive() {
        // a (3 x 2) block at column 1 of a (3 x 4) buffer times a transposed (2 x 3) block of a (5 x 2) buffer,
        // into columns 2..5 of a (3 x 6) output
        let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..10).map(|i| (i as f32 * 0.7).sin()).collect();
        let mut c = [9.0f32; 18];
        let sa = Sub {
            data: &a[1..],
            ld: 4,
            op: Op::N,
        };
        let sb = Sub {
            data: &b[2..],
            ld: 2,
            op: Op::T,
        };
        matmul_sub(3, 2, 3, sa, sb, &mut c[2..], 6, false);
        for i in 0..3 {
            for j in 0..6 {
                let want = if (2..5).contains(&j) {
                    (0..2)
                        .map(|p| a[i * 4 + 1 + p] * b[2 + (j - 2) * 2 + p])
                        .sum::<f32>()
                } else {
                    9.0
                };
                assert!((c[i * 6 + j] - want).abs() < 1e-5, "{i} {j}");
            }
        }
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
