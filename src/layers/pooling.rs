//! MaxPooling2D / AveragePooling2D (windowed) and their global counterparts, channels-last.

use super::{expect_rank, Ctx, Layer};
use crate::config::Cfg;
use crate::error::{Error, Result};
use crate::kernels::conv::Window;
use crate::kernels::pool;
use crate::rng::Rng;
use crate::tensor::{shape_str, Tensor};
use rayon::prelude::*;
use serde_json::Value;

pub struct Pool2D {
    name: String,
    is_max: bool,
    pool_size: (usize, usize),
    strides: (usize, usize),
    same: bool,
    win: Option<Window>,
    argmax: Vec<u32>,
    batch: usize,
}

impl Pool2D {
    pub fn from_config(v: &Value, is_max: bool) -> Result<Self> {
        let class = if is_max {
            "MaxPooling2D"
        } else {
            "AveragePooling2D"
        };
        let cfg = Cfg::new(class, v)?;
        cfg.channels_last()?;
        let pool_size = cfg.pair("pool_size", Some((2, 2)))?;
        Ok(Pool2D {
            is_max,
            pool_size,
            strides: cfg.pair("strides", Some(pool_size))?,
            same: cfg.padding_same()?,
            name: cfg.name,
            win: None,
            argmax: Vec::new(),
            batch: 0,
        })
    }

    fn window(&self) -> Result<Window> {
        self.win.ok_or_else(|| {
            Error::Runtime(format!(
                "{} '{}' used before build",
                self.class_name(),
                self.name
            ))
        })
    }
}

impl Layer for Pool2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        if self.is_max {
            "MaxPooling2D"
        } else {
            "AveragePooling2D"
        }
    }

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        expect_rank(self, input_shape, 3, "(batch, height, width, channels)")?;
        let what = format!("{} '{}'", self.class_name(), self.name);
        let win = Window::new(
            &what,
            (input_shape[0], input_shape[1], input_shape[2]),
            self.pool_size,
            self.strides,
            self.same,
        )?;
        self.win = Some(win);
        Ok(vec![win.oh, win.ow, win.c])
    }

    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let win = self.window()?;
        if x.shape.len() != 4 || x.shape[1..] != [win.h, win.w, win.c] {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" ({}) is incompatible with the layer: expected shape {}, found shape {}",
                self.name,
                self.class_name(),
                shape_str(&[win.h, win.w, win.c]),
                shape_str(x.shape.get(1..).unwrap_or(&[]))
            )));
        }
        let b = x.batch();
        let (in_len, out_len) = (win.in_len(), win.out_pixels() * win.c);
        // every output value is written (each window starts from -inf or 0)
        let mut y = Tensor::for_overwrite(vec![b, win.oh, win.ow, win.c]);
        if self.is_max && !ctx.training {
            y.data
                .par_chunks_mut(out_len)
                .zip(x.data.par_chunks(in_len))
                .for_each(|(yc, xc)| pool::max_forward_values(&win, xc, yc));
        } else if self.is_max {
            self.argmax.resize(b * out_len, 0);
            y.data
                .par_chunks_mut(out_len)
                .zip(x.data.par_chunks(in_len))
                .zip(self.argmax.par_chunks_mut(out_len))
                .for_each(|((yc, xc), ac)| pool::max_forward(&win, xc, yc, ac));
        } else {
            y.data
                .par_chunks_mut(out_len)
                .zip(x.data.par_chunks(in_len))
                .for_each(|(yc, xc)| pool::avg_forward(&win, xc, yc));
        }
        if ctx.training {
            self.batch = b;
        } else {
            x.recycle();
        }
        Ok(y)
    }

    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let win = self.window()?;
        let b = self.batch;
        let (in_len, out_len) = (win.in_len(), win.out_pixels() * win.c);
        if grad.data.len() != b * out_len || (self.is_max && self.argmax.len() != b * out_len) {
            return Err(Error::Runtime(format!(
                "{} '{}': backward called without a matching training forward pass",
                self.class_name(),
                self.name
            )));
        }
        if !need_input_grad {
            return Ok(Tensor::default());
        }
        let mut dx = Tensor::zeros(vec![b, win.h, win.w, win.c]);
        if self.is_max {
            dx.data
                .par_chunks_mut(in_len)
                .zip(grad.data.par_chunks(out_len))
                .zip(self.argmax.par_chunks(out_len))
                .for_each(|((dc, gc), ac)| pool::max_backward(gc, ac, dc));
        } else {
            dx.data
                .par_chunks_mut(in_len)
                .zip(grad.data.par_chunks(out_len))
                .for_each(|(dc, gc)| pool::avg_backward(&win, gc, dc));
        }
        Ok(dx)
    }

    fn clear_cache(&mut self) {
        self.argmax = Vec::new();
        self.batch = 0;
    }
}

impl Pool2D {
    /// A built max pooling's window (for the convolution + max pooling fusion).
    pub fn max_pool_window(&self) -> Option<Window> {
        self.win.filter(|_| self.is_max)
    }
}

/// GlobalAveragePooling2D / GlobalMaxPooling2D: `(h, w, c)` to `(c)` (or `(1, 1, c)` with keepdims).
pub struct GlobalPool2D {
    name: String,
    is_max: bool,
    keepdims: bool,
    in_shape: Vec<usize>,
    hw: usize,
    c: usize,
    argmax: Vec<u32>,
    batch: usize,
}

impl GlobalPool2D {
    pub fn from_config(v: &Value, is_max: bool) -> Result<Self> {
        let class = if is_max {
            "GlobalMaxPooling2D"
        } else {
            "GlobalAveragePooling2D"
        };
        let cfg = Cfg::new(class, v)?;
        cfg.channels_last()?;
        Ok(GlobalPool2D {
            is_max,
            keepdims: cfg.bool_or("keepdims", false)?,
            name: cfg.name,
            in_shape: Vec::new(),
            hw: 0,
            c: 0,
            argmax: Vec::new(),
            batch: 0,
        })
    }
}

impl Layer for GlobalPool2D {
    fn name(&self) -> &str {
        &self.name
    }
    fn class_name(&self) -> &'static str {
        if self.is_max {
            "GlobalMaxPooling2D"
        } else {
            "GlobalAveragePooling2D"
        }
    }

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        expect_rank(self, input_shape, 3, "(batch, height, width, channels)")?;
        self.in_shape = input_shape.to_vec();
        self.hw = input_shape[0] * input_shape[1];
        self.c = input_shape[2];
        Ok(if self.keepdims {
            vec![1, 1, self.c]
        } else {
            vec![self.c]
        })
    }

    fn forward(&mut self, x: Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let (hw, c) = (self.hw, self.c);
        if x.sample_len() != hw * c || x.last_dim() != c || x.shape.len() != 4 {
            return Err(Error::Value(format!(
                "Input 0 of layer \"{}\" ({}) is incompatible with the layer: expected {} values per sample \
                 with {} channels, found shape {}",
                self.name,
                self.class_name(),
                hw * c,
                c,
                shape_str(x.shape.get(1..).unwrap_or(&[]))
            )));
        }
        let b = x.batch();
        let shape = if self.keepdims {
            vec![b, 1, 1, c]
        } else {
            vec![b, c]
        };
        let mut y = Tensor::zeros(shape);
        if self.is_max {
            self.argmax.resize(b * c, 0);
            for s in 0..b {
                let xs = &x.data[s * hw * c..][..hw * c];
                for ch in 0..c {
                    let (mut best, mut arg) = (f32::NEG_INFINITY, ch);
                    for p in 0..hw {
                        let v = xs[p * c + ch];
                        if v > best || v.is_nan() {
                            best = v;
                            arg = p * c + ch;
                        }
                    }
                    y.data[s * c + ch] = best;
                    self.argmax[s * c + ch] = arg as u32;
                }
            }
        } else {
            let inv = 1.0 / hw as f32;
            for s in 0..b {
                let ys = &mut y.data[s * c..][..c];
                for px in x.data[s * hw * c..][..hw * c].chunks(c) {
                    ys.iter_mut().zip(px).for_each(|(a, v)| *a += v);
                }
                ys.iter_mut().for_each(|a| *a *= inv);
            }
        }
        if ctx.training {
            self.batch = b;
        }
        Ok(y)
    }

    fn backward(&mut self, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
        let (b, hw, c) = (self.batch, self.hw, self.c);
        if grad.data.len() != b * c {
            return Err(Error::Runtime(format!(
                "{} '{}': backward called without a matching training forward pass",
                self.class_name(),
                self.name
            )));
        }
        if !need_input_grad {
            return Ok(Tensor::default());
        }
        let mut dx = Tensor::zeros([&[b], self.in_shape.as_slice()].concat());
        for s in 0..b {
            let g = &grad.data[s * c..][..c];
            let d = &mut dx.data[s * hw * c..][..hw * c];
            if self.is_max {
                for ch in 0..c {
                    d[self.argmax[s * c + ch] as usize] += g[ch];
                }
            } else {
                let inv = 1.0 / hw as f32;
                for px in d.chunks_mut(c) {
                    px.iter_mut().zip(g).for_each(|(a, v)| *a += v * inv);
                }
            }
        }
        Ok(dx)
    }

    fn clear_cache(&mut self) {
        self.argmax = Vec::new();
        self.batch = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck;
    use super::*;
    use serde_json::json;

    /// Values 0.1 apart in scrambled order: every max is unique, and finite differences stay on one side.
    fn distinct(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::new(
            shape.to_vec(),
            (0..n)
                .map(|i| ((i * 7919) % n) as f32 * 0.1 - 2.0)
                .collect(),
        )
        .unwrap()
    }

    fn built(layer: &mut dyn Layer, shape: &[usize]) {
        let mut rng = Rng::new(0);
        layer.build(shape, &mut rng).unwrap();
    }

    #[test]
    fn gradients_overlapping_and_ragged_windows() {
        let cases = [
            (json!({"pool_size": 2}), true),
            (json!({"pool_size": 3, "strides": 1}), true),
            (json!({"pool_size": 2, "padding": "same"}), true),
            (
                json!({"pool_size": [3, 2], "strides": [2, 1], "padding": "same"}),
                false,
            ),
            (json!({"pool_size": 2, "padding": "same"}), false),
            (json!({"pool_size": 3, "strides": 2}), false),
        ];
        for (cfg, is_max) in cases {
            let mut p = Pool2D::from_config(&cfg, is_max).unwrap();
            built(&mut p, &[5, 7, 2]);
            let x = distinct(&[2, 5, 7, 2]);
            gradcheck::check(&mut p, x, 1e-2);
        }
    }

    #[test]
    fn global_pools() {
        for is_max in [true, false] {
            let mut g = GlobalPool2D::from_config(&json!({}), is_max).unwrap();
            built(&mut g, &[3, 4, 2]);
            let x = distinct(&[2, 3, 4, 2]);
            gradcheck::check(&mut g, x, 1e-2);
        }
        let mut g = GlobalPool2D::from_config(&json!({"keepdims": true}), false).unwrap();
        let mut rng = Rng::new(0);
        assert_eq!(g.build(&[3, 4, 2], &mut rng).unwrap(), vec![1, 1, 2]);
    }

    #[test]
    fn pool_larger_than_input_rejected() {
        let mut p = Pool2D::from_config(&json!({"pool_size": 4}), true).unwrap();
        let mut rng = Rng::new(0);
        assert!(p.build(&[3, 3, 1], &mut rng).is_err());
        assert!(Pool2D::from_config(&json!({"pool_size": 0}), true).is_err());
    }
}
