//! Per-thread scratch buffers for work that needs a temporary per chunk (a convolution's patches and their
//! gradients): each thread allocates them once and reuses them for every later chunk and batch, instead of
//! allocating and freeing a buffer per chunk per step.

use std::cell::RefCell;

/// A buffer bigger than this (in floats; 16 MB) is freed after use rather than kept for the thread's lifetime.
const KEEP_UP_TO: usize = 1 << 22;

thread_local! {
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Run `f` on two scratch slices of `a` and `b` floats. Their contents are unspecified (stale values from an
/// earlier use, or zeros), never uninitialised memory: `f` must write before it reads.
pub fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    with_scratch3(a, b, 0, |x, y, _| f(x, y))
}

/// As `with_scratch`, with a third slice of `c` floats.
pub fn with_scratch3<R>(
    a: usize,
    b: usize,
    c: usize,
    f: impl FnOnce(&mut [f32], &mut [f32], &mut [f32]) -> R,
) -> R {
    // Taken out of the cell while `f` runs, so a nested call (none today) would get fresh buffers, not a panic.
    let mut bufs = SCRATCH.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    for (buf, len) in bufs.iter_mut().zip([a, b, c]) {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
    }
    let [x, y, z] = &mut bufs;
    let out = f(&mut x[..a], &mut y[..b], &mut z[..c]);
    for buf in bufs.iter_mut() {
        if buf.capacity() > KEEP_UP_TO {
            *buf = Vec::new();
        }
    }
    SCRATCH.with(|cell| *cell.borrow_mut() = bufs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_have_the_asked_lengths_and_are_reused() {
        let p = with_scratch(10, 3, |a, b| {
            assert_eq!((a.len(), b.len()), (10, 3));
            a.fill(1.5);
            a.as_ptr() as usize
        });
        // a smaller request on the same thread gets the same allocation back, stale values included
        with_scratch(4, 0, |a, b| {
            assert_eq!(a.as_ptr() as usize, p);
            assert_eq!(a, &[1.5; 4]);
            assert!(b.is_empty());
        });
    }

    #[test]
    fn oversized_buffers_are_not_kept() {
        let big = KEEP_UP_TO + 1;
        with_scratch(big, 0, |a, _| a[big - 1] = 1.0);
        SCRATCH.with(|cell| assert_eq!(cell.borrow()[0].capacity(), 0));
    }
}
