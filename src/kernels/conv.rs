//! Window geometry shared by convolution and pooling, and im2col / col2im for one NHWC sample.

use crate::error::{Error, Result};

/// Output length and leading padding along one axis. "same" follows TensorFlow: the odd extra pad goes last.
pub fn out_len_and_pad(
    input: usize,
    window: usize,
    stride: usize,
    same: bool,
) -> Option<(usize, usize)> {
    if same {
        let out = input.div_ceil(stride);
        let needed = ((out.saturating_sub(1)) * stride + window).saturating_sub(input);
        Some((out, needed / 2))
    } else if input >= window {
        Some(((input - window) / stride + 1, 0))
    } else {
        None
    }
}

/// A 2-D sliding window over an `(h, w, c)` sample; a dilated window reads every `dh`-th row and `dw`-th column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl Window {
    /// `what` names the layer for the error when the window does not fit.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        what: &str,
        (h, w, c): (usize, usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        same: bool,
    ) -> Result<Self> {
        Self::dilated(what, (h, w, c), (kh, kw), (sh, sw), (1, 1), same)
    }

    /// A window whose taps are `(dh, dw)` apart: it spans `(kh - 1) * dh + 1` rows (Keras's `dilation_rate`).
    pub fn dilated(
        what: &str,
        (h, w, c): (usize, usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (dh, dw): (usize, usize),
        same: bool,
    ) -> Result<Self> {
        let (span_h, span_w) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
        match (
            out_len_and_pad(h, span_h, sh, same),
            out_len_and_pad(w, span_w, sw, same),
        ) {
            (Some((oh, pad_top)), Some((ow, pad_left))) if oh > 0 && ow > 0 => Ok(Window {
                h,
                w,
                c,
                kh,
                kw,
                sh,
                sw,
                dh,
                dw,
                oh,
                ow,
                pad_top,
                pad_left,
            }),
            _ => Err(Error::Value(format!(
                "{what}: window ({span_h}, {span_w}) is larger than the input ({h}, {w}) with \
                 padding=\"valid\". Use a smaller kernel/pool size or padding=\"same\"."
            ))),
        }
    }

    pub fn patch_len(&self) -> usize {
        self.kh * self.kw * self.c
    }

    pub fn out_pixels(&self) -> usize {
        self.oh * self.ow
    }

    pub fn in_len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// A 1x1 window with stride 1 and no padding: every pixel is its own patch, so the unfolded patches are the
    /// input itself (a pointwise convolution is one GEMM on the input, and its patch gradients are dX).
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.oh == self.h
            && self.ow == self.w
    }

    /// Input row for output row `o` and window row `k`, or None when it falls in the padding.
    #[inline]
    pub fn in_y(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.sh + k * self.dh)
            .checked_sub(self.pad_top)
            .filter(|&y| y < self.h)
    }

    #[inline]
    pub fn in_x(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.sw + k * self.dw)
            .checked_sub(self.pad_left)
            .filter(|&x| x < self.w)
    }
}

/// Unfold one sample `(h, w, c)` into `(oh*ow, kh*kw*c)` patches; patch order (ky, kx, c) matches a Keras
/// kernel `(kh, kw, in, out)` read as a `(kh*kw*in, out)` matrix.
pub fn im2col(g: &Window, x: &[f32], cols: &mut [f32]) {
    if g.dh == 1 && g.dw == 1 {
        im2col_dispatch(g, x, cols)
    } else {
        im2col_channels(g, x, 0, g.c, cols)
    }
}

/// Patches of the channels `[c0, c0 + cg)` only: `(oh*ow, kh*kw*cg)`, what one group of a grouped convolution
/// multiplies with its kernel. Any dilation; one copy of `cg` values per tap.
pub fn im2col_channels(g: &Window, x: &[f32], c0: usize, cg: usize, cols: &mut [f32]) {
    im2col_channels_dispatch(g, x, c0, cg, cols)
}

crate::simd_fn! {
    fn im2col_channels_dispatch(g: &Window, x: &[f32], c0: usize, cg: usize, cols: &mut [f32]) {
        let plen = g.kh * g.kw * cg;
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let patch = &mut cols[(oy * g.ow + ox) * plen..][..plen];
                for ky in 0..g.kh {
                    let iy = g.in_y(oy, ky);
                    for kx in 0..g.kw {
                        let dst = &mut patch[(ky * g.kw + kx) * cg..][..cg];
                        match (iy, g.in_x(ox, kx)) {
                            (Some(iy), Some(ix)) => {
                                dst.copy_from_slice(&x[(iy * g.w + ix) * g.c + c0..][..cg])
                            }
                            _ => dst.fill(0.0),
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col_channels`: add the patch gradients of channels `[c0, c0 + cg)` onto `dx`.
pub fn col2im_channels_add(g: &Window, cols: &[f32], c0: usize, cg: usize, dx: &mut [f32]) {
    col2im_channels_dispatch(g, cols, c0, cg, dx)
}

crate::simd_fn! {
    fn col2im_channels_dispatch(g: &Window, cols: &[f32], c0: usize, cg: usize, dx: &mut [f32]) {
        let plen = g.kh * g.kw * cg;
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let patch = &cols[(oy * g.ow + ox) * plen..][..plen];
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        if let Some(ix) = g.in_x(ox, kx) {
                            let src = &patch[(ky * g.kw + kx) * cg..][..cg];
                            let dst = &mut dx[(iy * g.w + ix) * g.c + c0..][..cg];
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                        }
                    }
                }
            }
        }
    }
}

crate::simd_fn! {
    fn im2col_dispatch(g: &Window, x: &[f32], cols: &mut [f32]) {
        im2col_impl(g, x, cols)
    }
}

#[inline(always)]
fn im2col_impl(g: &Window, x: &[f32], cols: &mut [f32]) {
    if g.c == 1 {
        return im2col_one_channel(g, x, cols);
    }
    let plen = g.patch_len();
    let rowlen = g.kw * g.c;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let patch = &mut cols[(oy * g.ow + ox) * plen..][..plen];
            // window columns [kx_lo, kx_hi) fall inside the image; they are contiguous in the input row
            let x0 = (ox * g.sw) as isize - g.pad_left as isize;
            let kx_lo = (-x0).max(0) as usize;
            let kx_hi = ((g.w as isize - x0).max(0) as usize).min(g.kw);
            for ky in 0..g.kh {
                let dst = &mut patch[ky * rowlen..][..rowlen];
                let Some(iy) = g.in_y(oy, ky) else {
                    dst.fill(0.0);
                    continue;
                };
                if kx_lo >= kx_hi {
                    dst.fill(0.0);
                    continue;
                }
                // (the branches keep library calls for empty ranges out of the per-pixel loop)
                if kx_lo > 0 {
                    dst[..kx_lo * g.c].fill(0.0);
                }
                let src = (iy * g.w + (x0 + kx_lo as isize) as usize) * g.c;
                dst[kx_lo * g.c..kx_hi * g.c].copy_from_slice(&x[src..src + (kx_hi - kx_lo) * g.c]);
                if kx_hi < g.kw {
                    dst[kx_hi * g.c..].fill(0.0);
                }
            }
        }
    }
}

/// One input channel (a grey image): each patch row is only `kw` values, so copying row pieces would cost a
/// library call per few floats. Scalar moves, tap by tap, over the output columns whose input is inside the
/// image (zeros on either side, in the padding).
#[inline(always)]
fn im2col_one_channel(g: &Window, x: &[f32], cols: &mut [f32]) {
    let plen = g.patch_len();
    for oy in 0..g.oh {
        let rows = &mut cols[oy * g.ow * plen..][..g.ow * plen];
        for ky in 0..g.kh {
            let iy = g.in_y(oy, ky);
            for kx in 0..g.kw {
                let tap = ky * g.kw + kx;
                // output columns ox whose input column ox*sw + kx - pad_left lies in [0, w)
                let lo = g.pad_left.saturating_sub(kx).div_ceil(g.sw).min(g.ow);
                let hi = match (g.w + g.pad_left).checked_sub(kx) {
                    Some(end) => end.div_ceil(g.sw).clamp(lo, g.ow),
                    None => lo,
                };
                let (lo, hi) = if iy.is_some() { (lo, hi) } else { (0, 0) };
                let row = iy.map_or(0, |iy| iy * g.w);
                for (ox, patch) in rows.chunks_exact_mut(plen).enumerate() {
                    patch[tap] = if ox >= lo && ox < hi {
                        x[row + ox * g.sw + kx - g.pad_left]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// The adjoint of `im2col`: add patch gradients back onto the sample's gradient `dx` (which it does not clear).
pub fn col2im_add(g: &Window, cols: &[f32], dx: &mut [f32]) {
    col2im_dispatch(g, cols, dx)
}

crate::simd_fn! {
    fn col2im_dispatch(g: &Window, cols: &[f32], dx: &mut [f32]) {
        col2im_impl(g, cols, dx)
    }
}

#[inline(always)]
fn col2im_impl(g: &Window, cols: &[f32], dx: &mut [f32]) {
    let plen = g.patch_len();
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let patch = &cols[(oy * g.ow + ox) * plen..][..plen];
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                for kx in 0..g.kw {
                    if let Some(ix) = g.in_x(ox, kx) {
                        let src = &patch[(ky * g.kw + kx) * g.c..][..g.c];
                        let dst = &mut dx[(iy * g.w + ix) * g.c..][..g.c];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_is_tensorflows() {
        // 5 wide, kernel 4, stride 1: pad 3 in all, 1 before and 2 after.
        assert_eq!(out_len_and_pad(5, 4, 1, true), Some((5, 1)));
        // 28 wide, kernel 5, stride 2: out 14, needed 13*2+5-28 = 3, 1 before.
        assert_eq!(out_len_and_pad(28, 5, 2, true), Some((14, 1)));
        assert_eq!(out_len_and_pad(28, 3, 1, false), Some((26, 0)));
        assert_eq!(out_len_and_pad(2, 3, 1, false), None);
    }

    #[test]
    fn col2im_is_adjoint_of_im2col() {
        // <im2col(x), y> == <x, col2im(y)> for any x, y.
        let g = Window::new("t", (5, 4, 2), (3, 2), (2, 1), true).unwrap();
        let x: Vec<f32> = (0..g.in_len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let y: Vec<f32> = (0..g.out_pixels() * g.patch_len())
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let mut cols = vec![0.0; y.len()];
        im2col(&g, &x, &mut cols);
        let mut back = vec![0.0; x.len()];
        col2im_add(&g, &y, &mut back);
        let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }

    /// Patch entry (pixel p, tap t, channel ch) straight from the definition.
    fn naive_im2col(g: &Window, x: &[f32]) -> Vec<f32> {
        let mut cols = vec![f32::NAN; g.out_pixels() * g.patch_len()];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        for ch in 0..g.c {
                            let v = match (g.in_y(oy, ky), g.in_x(ox, kx)) {
                                (Some(iy), Some(ix)) => x[(iy * g.w + ix) * g.c + ch],
                                _ => 0.0,
                            };
                            cols[(oy * g.ow + ox) * g.patch_len() + (ky * g.kw + kx) * g.c + ch] =
                                v;
                        }
                    }
                }
            }
        }
        cols
    }

    #[test]
    fn dilated_and_channel_range_patches_match_the_definition() {
        let g = Window::dilated("t", (7, 8, 4), (3, 2), (1, 1), (2, 3), true).unwrap();
        assert_eq!((g.oh, g.ow), (7, 8));
        let x: Vec<f32> = (0..g.in_len()).map(|i| i as f32 + 1.0).collect();
        let mut cols = vec![f32::NAN; g.out_pixels() * g.patch_len()];
        im2col(&g, &x, &mut cols);
        assert_eq!(cols, naive_im2col(&g, &x));
        // channels [1, 3) of every patch, in order
        let full = naive_im2col(&g, &x);
        let mut part = vec![f32::NAN; g.out_pixels() * g.kh * g.kw * 2];
        im2col_channels(&g, &x, 1, 2, &mut part);
        let expected: Vec<f32> = full.chunks(4).flat_map(|tap| tap[1..3].to_vec()).collect();
        assert_eq!(part, expected);
        // and its adjoint
        let y: Vec<f32> = (0..part.len()).map(|i| (i as f32 * 0.13).cos()).collect();
        let mut back = vec![0.0; x.len()];
        col2im_channels_add(&g, &y, 1, 2, &mut back);
        let lhs: f64 = part.iter().zip(&y).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!(
            (lhs - rhs).abs() < 1e-2 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }

    #[test]
    fn im2col_matches_the_definition_for_one_and_several_channels() {
        for (shape, kernel, stride, same) in [
            ((7, 6, 1), (3, 3), (1, 1), false),
            ((7, 6, 1), (4, 3), (2, 1), true),
            ((5, 8, 1), (2, 5), (1, 3), true),
            ((6, 5, 3), (3, 2), (2, 2), true),
            ((6, 5, 3), (3, 3), (1, 1), false),
        ] {
            let g = Window::new("t", shape, kernel, stride, same).unwrap();
            let x: Vec<f32> = (0..g.in_len()).map(|i| i as f32 + 1.0).collect();
            let mut cols = vec![f32::NAN; g.out_pixels() * g.patch_len()];
            im2col(&g, &x, &mut cols);
            assert_eq!(
                cols,
                naive_im2col(&g, &x),
                "{shape:?} {kernel:?} {stride:?} {same}"
            );
        }
    }
}
