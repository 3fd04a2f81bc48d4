//! Kernel-level timings of kerust's engine on the seed CNN's shapes (batch 32), printed as JSON lines for
//! `benches/kernels.py`, which runs NumPy/OpenBLAS and PyTorch on the same shapes beside it.
//!
//!     cargo bench --bench kernels -- [--threads N]
//!
//! GEMM: one call of kerust's single-threaded `matmul` (row-major, as the layers call it), GFLOP/s.
//! Conv: a Conv2D layer's forward (training mode) and, timed apart after an untimed forward, its backward
//! (kernel, bias and input gradients) on a batch, on kerust's parallel chunks with N threads, milliseconds.

use kerust::kernels::gemm::{matmul, Op};
use kerust::layers::{self, Ctx, Layer};
use kerust::rng::Rng;
use kerust::tensor::Tensor;
use serde_json::json;
use std::time::Instant;

/// (name, m, k, n): the seed CNN's products at batch 32 (forward, input gradient, kernel gradient).
const GEMMS: &[(&str, usize, usize, usize)] = &[
    ("conv1 fwd", 21632, 9, 32),
    ("conv2 fwd", 3872, 288, 64),
    ("conv3 fwd", 288, 576, 64),
    ("dense1 fwd", 32, 576, 64),
    ("conv2 dX", 3872, 64, 288),
    ("conv2 dW", 288, 3872, 64),
    ("conv3 dX", 288, 64, 576),
    ("conv3 dW", 576, 288, 64),
];

/// (name, h, w, in channels, filters): the seed CNN's three 3x3 valid convolutions.
const CONVS: &[(&str, usize, usize, usize, usize)] = &[
    ("conv1", 28, 28, 1, 32),
    ("conv2", 13, 13, 32, 64),
    ("conv3", 5, 5, 64, 64),
];
const BATCH: usize = 32;

fn fill(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() - 0.5).collect()
}

/// Median seconds of `reps` runs of `f` after one warm-up.
fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn bench_gemms(rng: &mut Rng) {
    for &(name, m, k, n) in GEMMS {
        let (a, b) = (fill(m * k, rng), fill(k * n, rng));
        let mut c = vec![0.0f32; m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let inner = ((2e8 / flops) as usize).max(1);
        let secs = median_secs(15, || {
            for _ in 0..inner {
                matmul(m, k, n, &a, Op::N, &b, Op::N, &mut c, false);
            }
        }) / inner as f64;
        let line = json!({"kind": "gemm", "name": name, "m": m, "k": k, "n": n,
                          "gflops": flops / secs / 1e9});
        println!("{line}");
    }
}

fn bench_convs(rng: &mut Rng) -> Result<(), String> {
    for &(name, h, w, c, f) in CONVS {
        let cfg = json!({"name": name, "filters": f, "kernel_size": 3});
        let mut layer = layers::from_config("Conv2D", &cfg).map_err(|e| e.to_string())?;
        let out = layer.build(&[h, w, c], rng).map_err(|e| e.to_string())?;
        let x = Tensor::new(vec![BATCH, h, w, c], fill(BATCH * h * w * c, rng))
            .map_err(|e| e.to_string())?;
        let g_len = BATCH * out.iter().product::<usize>();
        let g = Tensor::new([vec![BATCH], out.clone()].concat(), fill(g_len, rng))
            .map_err(|e| e.to_string())?;
        let mut step_rng = Rng::new(1);
        let mut forward = |layer: &mut Box<dyn Layer>| {
            let mut ctx = Ctx {
                training: true,
                rng: &mut step_rng,
            };
            layer.forward(x.clone(), &mut ctx)
        };
        let fwd = median_secs(21, || {
            let _ = forward(&mut layer);
        });
        // backward alone, each after an untimed matching forward
        let mut times = Vec::new();
        for _ in 0..22 {
            let _ = forward(&mut layer);
            let t = Instant::now();
            let _ = layer.backward(g.clone(), c > 1);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let bwd = times[times.len() / 2];
        for (kind, secs) in [("conv_fwd", fwd), ("conv_bwd", bwd)] {
            let line = json!({"kind": kind, "name": name, "batch": BATCH, "h": h, "w": w, "c": c,
                              "filters": f, "ms": secs * 1e3, "input_grad": c > 1});
            println!("{line}");
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        eprintln!("kernels bench: cannot size the thread pool: {e}");
    }
    let mut rng = Rng::new(7);
    bench_gemms(&mut rng);
    if let Err(e) = bench_convs(&mut rng) {
        eprintln!("kernels bench: {e}");
        std::process::exit(1);
    }
}
