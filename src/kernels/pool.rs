//! 2-D max and average pooling for one NHWC sample.

use super::conv::Window;

crate::simd_fn! {
    /// Max over each window (padding never wins); `argmax` records the flat input index for backward.
    pub fn max_forward(g: &Window, x: &[f32], out: &mut [f32], argmax: &mut [u32]) {
        max_forward_impl(g, x, out, argmax)
    }
}

#[inline(always)]
fn max_forward_impl(g: &Window, x: &[f32], out: &mut [f32], argmax: &mut [u32]) {
    let c = g.c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = (oy * g.ow + ox) * c;
            let (best, arg) = (&mut out[o..o + c], &mut argmax[o..o + c]);
            best.fill(f32::NEG_INFINITY);
            arg.fill(0);
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                for kx in 0..g.kw {
                    let Some(ix) = g.in_x(ox, kx) else { continue };
                    let base = (iy * g.w + ix) * c;
                    max_update(best, arg, &x[base..base + c], base as u32);
                }
            }
        }
    }
}

crate::simd_fn! {
    /// Max over each window without recording where it was (inference: nothing will go backward). Same values
    /// as `max_forward`: `>` on the same window order, so NaN never wins and an all-NaN window gives -inf.
    pub fn max_forward_values(g: &Window, x: &[f32], out: &mut [f32]) {
        max_forward_values_impl(g, x, out)
    }
}

#[inline(always)]
fn max_forward_values_impl(g: &Window, x: &[f32], out: &mut [f32]) {
    let c = g.c;
    let all_inside = (g.oh - 1) * g.sh + g.kh <= g.h && (g.ow - 1) * g.sw + g.kw <= g.w;
    if g.pad_top == 0 && g.pad_left == 0 && all_inside && c.is_multiple_of(LANES) {
        // every window inside the image ("valid" pooling) and whole register groups of channels
        return max_valid_in_lanes(g, x, out);
    }
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let best = &mut out[(oy * g.ow + ox) * c..][..c];
            best.fill(f32::NEG_INFINITY);
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                for kx in 0..g.kw {
                    let Some(ix) = g.in_x(ox, kx) else { continue };
                    let xs = &x[(iy * g.w + ix) * c..][..c];
                    // `>` keeps the first maximum; NaN never wins
                    best.iter_mut()
                        .zip(xs)
                        .for_each(|(b, &v)| *b = if v > *b { v } else { *b });
                }
            }
        }
    }
}

/// Channels handled together in `max_valid_in_lanes` (one AVX register of f32).
const LANES: usize = 8;

/// Valid max pooling with channels in groups of `LANES`, each group's running max kept in a local array (a
/// register) and stored once: a running max kept in the output buffer compiles to masked stores, which are slow.
#[inline(always)]
fn max_valid_in_lanes(g: &Window, x: &[f32], out: &mut [f32]) {
    let c = g.c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = (oy * g.ow + ox) * c;
            for lane0 in (0..c).step_by(LANES) {
                let mut best = [f32::NEG_INFINITY; LANES];
                for ky in 0..g.kh {
                    let row = ((oy * g.sh + ky) * g.w + ox * g.sw) * c + lane0;
                    for kx in 0..g.kw {
                        let mut xs = [0.0f32; LANES];
                        xs.copy_from_slice(&x[row + kx * c..][..LANES]);
                        for i in 0..LANES {
                            best[i] = if xs[i] > best[i] { xs[i] } else { best[i] };
                        }
                    }
                }
                out[o + lane0..][..LANES].copy_from_slice(&best);
            }
        }
    }
}

/// Branch-free running max over channels; `>` keeps the first maximum (NaN never wins, as in `f32::max`).
#[inline(always)]
fn max_update(best: &mut [f32], arg: &mut [u32], xs: &[f32], base: u32) {
    for (idx, ((b, a), &v)) in (base..).zip(best.iter_mut().zip(arg.iter_mut()).zip(xs)) {
        let take = v > *b;
        *b = if take { v } else { *b };
        *a = if take { idx } else { *a };
    }
}

/// An argmax entry through which no gradient flows (a fused Conv2D + ReLU marks windows whose max was 0).
pub const NO_GRAD: u32 = u32::MAX;

/// Adds each pooled gradient into `dx` at its window's argmax, skipping `NO_GRAD` entries.
pub fn max_backward(grad: &[f32], argmax: &[u32], dx: &mut [f32]) {
    for (g, &i) in grad.iter().zip(argmax) {
        if i != NO_GRAD {
            dx[i as usize] += g;
        }
    }
}

/// Number of real (non-padding) input positions under an output window.
fn count(g: &Window, oy: usize, ox: usize) -> usize {
    let ny = (0..g.kh).filter(|&k| g.in_y(oy, k).is_some()).count();
    let nx = (0..g.kw).filter(|&k| g.in_x(ox, k).is_some()).count();
    ny * nx
}

/// Mean over each window, padding excluded from the count (as Keras/TensorFlow).
pub fn avg_forward(g: &Window, x: &[f32], out: &mut [f32]) {
    let c = g.c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = (oy * g.ow + ox) * c;
            let acc = &mut out[o..o + c];
            acc.fill(0.0);
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                for kx in 0..g.kw {
                    let Some(ix) = g.in_x(ox, kx) else { continue };
                    let src = &x[(iy * g.w + ix) * c..][..c];
                    acc.iter_mut().zip(src).for_each(|(a, s)| *a += s);
                }
            }
            let inv = 1.0 / count(g, oy, ox).max(1) as f32;
            acc.iter_mut().for_each(|a| *a *= inv);
        }
    }
}

pub fn avg_backward(g: &Window, grad: &[f32], dx: &mut [f32]) {
    let c = g.c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = (oy * g.ow + ox) * c;
            let inv = 1.0 / count(g, oy, ox).max(1) as f32;
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                for kx in 0..g.kw {
                    let Some(ix) = g.in_x(ox, kx) else { continue };
                    let dst = &mut dx[(iy * g.w + ix) * c..][..c];
                    dst.iter_mut()
                        .zip(&grad[o..o + c])
                        .for_each(|(d, gv)| *d += gv * inv);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_and_avg_on_a_small_grid() {
        // 3x3 single channel, pool 2, stride 2, same padding: output 2x2, windows cut by the border.
        let g = Window::new("t", (3, 3, 1), (2, 2), (2, 2), true).unwrap();
        assert_eq!((g.oh, g.ow, g.pad_top), (2, 2, 0));
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut out = vec![0.0; 4];
        let mut arg = vec![0u32; 4];
        max_forward(&g, &x, &mut out, &mut arg);
        assert_eq!(out, vec![5.0, 6.0, 8.0, 9.0]);
        avg_forward(&g, &x, &mut out);
        assert_eq!(out, vec![3.0, 4.5, 7.5, 9.0]);
        let mut dx = vec![0.0; 9];
        max_backward(&[1.0, 2.0, 3.0, 4.0], &arg, &mut dx);
        assert_eq!(dx, vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0]);
    }

    #[test]
    fn inference_max_equals_training_max_nan_and_inf_included() {
        for (shape, pool, stride, same) in [
            ((5, 4, 3), (2, 2), (2, 1), true),
            ((5, 4, 3), (2, 2), (2, 2), false),
            ((7, 6, 2), (3, 2), (2, 3), false),
            ((6, 7, 16), (2, 2), (2, 2), false),
            ((7, 5, 8), (3, 2), (2, 1), false),
        ] {
            check_inference_max(Window::new("t", shape, pool, stride, same).unwrap());
        }
    }

    fn check_inference_max(g: Window) {
        let x: Vec<f32> = (0..g.in_len())
            .map(|i| match i % 11 {
                3 => f32::NAN,
                7 => f32::NEG_INFINITY,
                _ => ((i * 37) % 17) as f32 - 8.0,
            })
            .collect();
        let n = g.out_pixels() * g.c;
        let (mut a, mut b, mut arg) = (vec![0.0; n], vec![1.0; n], vec![0u32; n]);
        max_forward(&g, &x, &mut a, &mut arg);
        max_forward_values(&g, &x, &mut b);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}
