//! Rewrites: patterns of nodes that run faster as one fused pass with the same values. The graph's plan
//! (`Graph::plan`) asks here which pairs of nodes fuse; the layers keep the fused kernels as inherent methods,
//! so the `Layer` trait knows nothing of any pattern.
//!
//! Conv2D + MaxPooling2D: the convolution's output is pooled chunk by chunk while it is still in cache, so the
//! unpooled activation never streams through memory (and, in training, is never kept).

use crate::error::{Error, Result};
use crate::kernels::conv::Window;
use crate::layers::{Conv2D, Layer, Pool2D};
use crate::tensor::Tensor;

/// The pooling window when `conv` is a Conv2D and `pool` a max pooling that can run fused with it.
pub fn conv_max_pool(conv: &dyn Layer, pool: &dyn Layer, training: bool) -> Option<Window> {
    let conv = conv.as_any().downcast_ref::<Conv2D>()?;
    let window = pool.as_any().downcast_ref::<Pool2D>()?.max_pool_window()?;
    conv.can_fuse_max_pool(&window, training).then_some(window)
}

fn as_conv(layer: &mut dyn Layer) -> Result<&mut Conv2D> {
    let name = layer.name().to_string();
    layer.as_any_mut().downcast_mut::<Conv2D>().ok_or_else(|| {
        Error::Runtime(format!(
            "kerust internal error: '{name}' is fused as a Conv2D but is not one"
        ))
    })
}

/// The fused forward pass: the convolution, then the max pooling with `window`.
pub fn forward(conv: &mut dyn Layer, x: Tensor, window: &Window, training: bool) -> Result<Tensor> {
    as_conv(conv)?.forward_max_pooled(x, window, training)
}

/// The fused backward pass, from dL/d(pooled output) to dL/d(convolution input).
pub fn backward(conv: &mut dyn Layer, grad: Tensor, need_input_grad: bool) -> Result<Tensor> {
    as_conv(conv)?.backward_max_pooled(grad, need_input_grad)
}
