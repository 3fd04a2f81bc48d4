//! Optimizers with Keras 3's update formulas and defaults, over a flat list of parameters.
//! Slots are keyed by the parameter's position in the model, so freezing a layer keeps the others' state.

use crate::error::{Error, Result};
use crate::layers::Param;
use crate::schedules::Schedule;
use rayon::prelude::*;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Sgd {
        momentum: f32,
        nesterov: bool,
    },
    Adam {
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        amsgrad: bool,
    },
    RmsProp {
        rho: f32,
        momentum: f32,
        epsilon: f32,
        centered: bool,
    },
    Adagrad {
        initial_accumulator_value: f32,
        epsilon: f32,
    },
    Adadelta {
        rho: f32,
        epsilon: f32,
    },
    Adamax {
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
    },
    Nadam {
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
    },
}

pub const NAMES: &[&str] = &[
    "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam",
];

#[derive(Clone, Debug)]
pub struct Optimizer {
    pub kind: Kind,
    /// The constant rate; with a schedule, the rate the schedule gave for the last step.
    pub learning_rate: f32,
    pub schedule: Option<Schedule>,
    /// Nadam's running product of momentum-cache factors (a Keras optimizer variable).
    pub nadam_u_product: f32,
    pub iterations: u64,
    pub weight_decay: Option<f32>,
    pub clipnorm: Option<f32>,
    pub clipvalue: Option<f32>,
    pub global_clipnorm: Option<f32>,
    /// Per parameter position: that parameter's slot vectors (empty until its first update).
    pub slots: Vec<Vec<Vec<f32>>>,
}

impl Optimizer {
    /// From `{"class_name": "Adam", "config": {...}}` (Keras's serialized form) or a bare name.
    pub fn from_value(v: &Value) -> Result<Self> {
        let empty = Value::Object(Default::default());
        let (name, cfg) = match v {
            Value::String(s) => (s.as_str(), &empty),
            Value::Object(o) => (
                o.get("class_name").and_then(Value::as_str).unwrap_or(""),
                o.get("config").unwrap_or(&empty),
            ),
            _ => {
                return Err(Error::Type(format!(
                    "optimizer must be a name or a dict, received {v}"
                )))
            }
        };
        let num = |k: &str, d: f32| -> Result<f32> {
            match cfg.get(k) {
                None | Some(Value::Null) => Ok(d),
                Some(x) => x
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f as f32)
                    .ok_or_else(|| {
                        Error::Value(format!("{name}: `{k}` expected a number, received {x}"))
                    }),
            }
        };
        let opt_num = |k: &str| -> Result<Option<f32>> {
            match cfg.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(_) => num(k, 0.0).map(Some),
            }
        };
        let flag = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
        // `learning_rate` is a number or a serialized schedule
        let schedule = match cfg.get("learning_rate") {
            Some(v @ Value::Object(_)) => Some(Schedule::from_value(v)?),
            _ => None,
        };
        let rate = |default: f32| -> Result<f32> {
            match &schedule {
                Some(s) => Ok(s.at(0)),
                None => num("learning_rate", default),
            }
        };
        let lower = name.to_ascii_lowercase();
        let (kind, lr, wd) = match lower.as_str() {
            "sgd" => (
                Kind::Sgd {
                    momentum: num("momentum", 0.0)?,
                    nesterov: flag("nesterov"),
                },
                rate(0.01)?,
                opt_num("weight_decay")?,
            ),
            "adam" | "adamw" => (
                Kind::Adam {
                    beta_1: num("beta_1", 0.9)?,
                    beta_2: num("beta_2", 0.999)?,
                    epsilon: num("epsilon", 1e-7)?,
                    amsgrad: flag("amsgrad"),
                },
                rate(0.001)?,
                if lower == "adamw" {
                    Some(num("weight_decay", 0.004)?)
                } else {
                    opt_num("weight_decay")?
                },
            ),
            "rmsprop" => (
                Kind::RmsProp {
                    rho: num("rho", 0.9)?,
                    momentum: num("momentum", 0.0)?,
                    epsilon: num("epsilon", 1e-7)?,
                    centered: flag("centered"),
                },
                rate(0.001)?,
                opt_num("weight_decay")?,
            ),
            "adagrad" => (
                Kind::Adagrad {
                    initial_accumulator_value: num("initial_accumulator_value", 0.1)?,
                    epsilon: num("epsilon", 1e-7)?,
                },
                rate(0.001)?,
                opt_num("weight_decay")?,
            ),
            "adadelta" => (
                Kind::Adadelta {
                    rho: num("rho", 0.95)?,
                    epsilon: num("epsilon", 1e-7)?,
                },
                rate(0.001)?,
                opt_num("weight_decay")?,
            ),
            "adamax" | "nadam" => {
                let (beta_1, beta_2, epsilon) = (
                    num("beta_1", 0.9)?,
                    num("beta_2", 0.999)?,
                    num("epsilon", 1e-7)?,
                );
                let kind = if lower == "adamax" {
                    Kind::Adamax {
                        beta_1,
                        beta_2,
                        epsilon,
                    }
                } else {
                    Kind::Nadam {
                        beta_1,
                        beta_2,
                        epsilon,
                    }
                };
                (kind, rate(0.001)?, opt_num("weight_decay")?)
            }
            _ => {
                return Err(Error::Value(format!(
                    "Unknown optimizer: '{name}'. Expected one of: {}",
                    NAMES.join(", ")
                )))
            }
        };
        if lr < 0.0 && schedule.is_none() {
            return Err(Error::Value(format!(
                "{name}: `learning_rate` must be non-negative, received {lr}"
            )));
        }
        if let Kind::Sgd { momentum, .. } | Kind::RmsProp { momentum, .. } = kind {
            if !(0.0..=1.0).contains(&momentum) {
                return Err(Error::Value(format!(
                    "{name}: `momentum` must be a float between [0, 1], received {momentum}"
                )));
            }
        }
        Ok(Optimizer {
            kind,
            learning_rate: lr,
            schedule,
            nadam_u_product: 1.0,
            iterations: 0,
            weight_decay: wd.filter(|&w| w != 0.0),
            clipnorm: opt_num("clipnorm")?,
            clipvalue: opt_num("clipvalue")?,
            global_clipnorm: opt_num("global_clipnorm")?,
            slots: Vec::new(),
        })
    }

    /// Slot names in Keras's order, e.g. Adam: `["momentum", "velocity"]` (+ `"velocity_hat"` with amsgrad).
    pub fn slot_names(&self) -> Vec<&'static str> {
        match self.kind {
            Kind::Sgd { momentum, .. } => {
                if momentum != 0.0 {
                    vec!["momentum"]
                } else {
                    vec![]
                }
            }
            Kind::Adam { amsgrad, .. } => {
                let mut v = vec!["momentum", "velocity"];
                if amsgrad {
                    v.push("velocity_hat");
                }
                v
            }
            Kind::RmsProp {
                momentum, centered, ..
            } => {
                let mut v = vec!["velocity"];
                if momentum > 0.0 {
                    v.push("momentum");
                }
                if centered {
                    v.push("average_gradient");
                }
                v
            }
            Kind::Adagrad { .. } => vec!["accumulator"],
            Kind::Adadelta { .. } => vec!["accumulated_grad", "accumulated_delta_var"],
            Kind::Adamax { .. } => vec!["m", "norm"],
            Kind::Nadam { .. } => vec!["momentum", "velocity"],
        }
    }

    fn slot_init(&self) -> f32 {
        match self.kind {
            Kind::Adagrad {
                initial_accumulator_value,
                ..
            } => initial_accumulator_value,
            _ => 0.0,
        }
    }

    /// The slots of the parameter at `pos` (of `len` values), created with their initial values if missing.
    pub fn slots_of(&mut self, pos: usize, len: usize) -> &mut Vec<Vec<f32>> {
        let n_slots = self.n_slots();
        let init = self.slot_init();
        if self.slots.len() <= pos {
            self.slots.resize(pos + 1, Vec::new());
        }
        let slots = &mut self.slots[pos];
        if slots.len() != n_slots || slots.iter().any(|s| s.len() != len) {
            *slots = vec![vec![init; len]; n_slots];
        }
        slots
    }

    fn n_slots(&self) -> usize {
        match self.kind {
            Kind::Sgd { momentum, .. } => (momentum != 0.0) as usize,
            Kind::Adam { amsgrad, .. } => 2 + amsgrad as usize,
            Kind::RmsProp {
                momentum, centered, ..
            } => 1 + (momentum > 0.0) as usize + centered as usize,
            Kind::Adagrad { .. } => 1,
            Kind::Adadelta { .. } | Kind::Adamax { .. } | Kind::Nadam { .. } => 2,
        }
    }

    /// One update of every `(position, param)` given, from the gradients they hold.
    pub fn step(&mut self, params: &mut [(usize, &mut Param)]) {
        self.clip(params);
        let t = (self.iterations + 1) as f32;
        if let Some(s) = &self.schedule {
            self.learning_rate = s.at(self.iterations);
        }
        let lr = self.learning_rate;
        if let Kind::Nadam { beta_1, .. } = self.kind {
            // Keras advances this optimizer variable once per step, before the variables' updates
            self.nadam_u_product *= beta_1 * (1.0 - 0.5 * 0.96f32.powf(t));
        }
        let nadam_u_product = self.nadam_u_product;
        let (kind, weight_decay) = (self.kind.clone(), self.weight_decay);
        for (pos, p) in params.iter_mut() {
            let slots = self.slots_of(*pos, p.value.len());
            // Every update is element-wise: fixed pieces of each variable (and of its slots) run in parallel,
            // with the same values as one pass.
            let mut pieces: Vec<Piece> = p
                .value
                .chunks_mut(UPDATE_CHUNK)
                .zip(p.grad.chunks(UPDATE_CHUNK))
                .map(|(w, g)| (w, g, Vec::with_capacity(slots.len())))
                .collect();
            for slot in slots.iter_mut() {
                for (piece, s) in pieces.iter_mut().zip(slot.chunks_mut(UPDATE_CHUNK)) {
                    piece.2.push(s);
                }
            }
            let update = |(w, g, mut s): Piece| {
                if let Some(wd) = weight_decay {
                    w.iter_mut().for_each(|w| *w -= *w * wd * lr);
                }
                apply(&kind, w, g, &mut s, lr, t, nadam_u_product);
            };
            // in parallel only on kerust's own pool (elsewhere rayon would start its global pool)
            if pieces.len() > 1 && rayon::current_thread_index().is_some() {
                pieces.into_par_iter().for_each(update);
            } else {
                pieces.into_iter().for_each(update);
            }
        }
        self.iterations += 1;
    }

    /// Keras's clipnorm (per variable), global_clipnorm (all together) and clipvalue (per element).
    fn clip(&self, params: &mut [(usize, &mut Param)]) {
        if let Some(c) = self.clipvalue {
            for (_, p) in params.iter_mut() {
                p.grad.iter_mut().for_each(|g| *g = g.clamp(-c, c));
            }
        }
        if let Some(c) = self.clipnorm {
            for (_, p) in params.iter_mut() {
                let norm = p.grad.iter().map(|g| (g * g) as f64).sum::<f64>().sqrt() as f32;
                if norm > c {
                    let s = c / norm;
                    p.grad.iter_mut().for_each(|g| *g *= s);
                }
            }
        }
        if let Some(c) = self.global_clipnorm {
            let norm = params
                .iter()
                .flat_map(|(_, p)| p.grad.iter())
                .map(|g| (g * g) as f64)
                .sum::<f64>()
                .sqrt() as f32;
            if norm > c {
                let s = c / norm;
                for (_, p) in params.iter_mut() {
                    p.grad.iter_mut().for_each(|g| *g *= s);
                }
            }
        }
    }
}

/// A piece of one variable's update: its weights, their gradients, and the same piece of each slot.
type Piece<'a> = (&'a mut [f32], &'a [f32], Vec<&'a mut [f32]>);

/// Values per parallel piece of an optimizer update (element-wise, so the split never changes a value).
const UPDATE_CHUNK: usize = 1 << 15;

/// One optimizer update of the weights `w` from their gradients `g`, with the variable's slots (Keras's order).
fn apply(
    kind: &Kind,
    w: &mut [f32],
    g: &[f32],
    slots: &mut [&mut [f32]],
    lr: f32,
    t: f32,
    nadam_u_product: f32,
) {
    match *kind {
        Kind::Sgd { momentum, nesterov } => {
            if momentum == 0.0 {
                sgd(w, g, lr);
            } else {
                sgd_momentum(w, g, slots[0], lr, momentum, nesterov);
            }
        }
        Kind::Adam {
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
        } => {
            let alpha = lr * (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t));
            let (m, rest) = slots.split_at_mut(1);
            let (v, vhat) = rest.split_at_mut(1);
            let vhat = if amsgrad {
                vhat.first_mut().map(|s| &mut **s)
            } else {
                None
            };
            adam(w, g, m[0], v[0], vhat, alpha, beta_1, beta_2, epsilon);
        }
        Kind::RmsProp {
            rho,
            momentum,
            epsilon,
            centered,
        } => {
            let (vel, rest) = slots.split_at_mut(1);
            let (mom, rest) = if momentum > 0.0 {
                let (a, b) = rest.split_at_mut(1);
                (a.first_mut().map(|s| &mut **s), b)
            } else {
                (None, rest)
            };
            let avg = if centered {
                rest.first_mut().map(|s| &mut **s)
            } else {
                None
            };
            rmsprop(w, g, vel[0], mom, avg, lr, rho, momentum, epsilon);
        }
        Kind::Adagrad { epsilon, .. } => adagrad(w, g, slots[0], lr, epsilon),
        Kind::Adadelta { rho, epsilon } => {
            let (a, b) = slots.split_at_mut(1);
            adadelta(w, g, a[0], b[0], lr, rho, epsilon)
        }
        Kind::Adamax {
            beta_1,
            beta_2,
            epsilon,
        } => {
            let (a, b) = slots.split_at_mut(1);
            let step = lr / (1.0 - beta_1.powf(t));
            adamax(w, g, a[0], b[0], step, beta_1, beta_2, epsilon)
        }
        Kind::Nadam {
            beta_1,
            beta_2,
            epsilon,
        } => {
            let (a, b) = slots.split_at_mut(1);
            let decay = 0.96f32;
            let u_t = beta_1 * (1.0 - 0.5 * decay.powf(t));
            let u_t_1 = beta_1 * (1.0 - 0.5 * decay.powf(t + 1.0));
            let c = NadamCoef {
                m_scale: u_t_1 / (1.0 - nadam_u_product * u_t_1),
                g_scale: (1.0 - u_t) / (1.0 - nadam_u_product),
                v_scale: 1.0 / (1.0 - beta_2.powf(t)),
            };
            nadam(w, g, a[0], b[0], lr, beta_1, beta_2, epsilon, c)
        }
    }
}

// Update kernels: plain iterator loops (vectorised, and compiled for AVX2 / AVX-512 when the CPU has them).

/// A slot value below float32's normal range stored as zero. Moving averages of gradients that have become zero
/// (a pixel that is always blank, a unit that died) decay into subnormal numbers and, in round-to-nearest, stay
/// at the smallest one forever; every later update of such a slot then takes a microcode assist (measured: Adam
/// on the MNIST MLP spent most of each step there). Zero instead changes no weight: a subnormal moment moves a
/// weight by less than 1e-30.
#[inline(always)]
fn ftz(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

crate::simd_fn! {
    pub fn sgd(w: &mut [f32], g: &[f32], lr: f32) {
        w.iter_mut().zip(g).for_each(|(w, g)| *w -= g * lr);
    }
}

crate::simd_fn! {
    pub fn sgd_momentum(w: &mut [f32], g: &[f32], m: &mut [f32], lr: f32, momentum: f32, nesterov: bool) {
        for ((w, &g), m) in w.iter_mut().zip(g).zip(m.iter_mut()) {
            *m = ftz(*m * momentum - g * lr);
            *w += if nesterov { *m * momentum - g * lr } else { *m };
        }
    }
}

crate::simd_fn! {
    /// Keras 3 Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps).
    pub fn adam(
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        vhat: Option<&mut [f32]>,
        alpha: f32,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
    ) {
        let (c1, c2) = (1.0 - beta_1, 1.0 - beta_2);
        match vhat {
            None => {
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    *m = ftz(*m + (g - *m) * c1);
                    *v = ftz(*v + (g * g - *v) * c2);
                    *w -= *m * alpha / (v.sqrt() + epsilon);
                }
            }
            Some(vhat) => {
                let it = w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()).zip(vhat.iter_mut());
                for ((((w, &g), m), v), vh) in it {
                    *m = ftz(*m + (g - *m) * c1);
                    *v = ftz(*v + (g * g - *v) * c2);
                    *vh = vh.max(*v);
                    *w -= *m * alpha / (vh.sqrt() + epsilon);
                }
            }
        }
    }
}

crate::simd_fn! {
    /// Keras 3 RMSprop: epsilon inside the square root; momentum accumulates the increment.
    pub fn rmsprop(
        w: &mut [f32],
        g: &[f32],
        vel: &mut [f32],
        mom: Option<&mut [f32]>,
        avg: Option<&mut [f32]>,
        lr: f32,
        rho: f32,
        momentum: f32,
        epsilon: f32,
    ) {
        let mut mom = mom;
        let mut avg = avg;
        for i in 0..w.len() {
            vel[i] = ftz(rho * vel[i] + (1.0 - rho) * g[i] * g[i]);
            let denom = match avg.as_deref_mut() {
                Some(a) => {
                    a[i] = ftz(rho * a[i] + (1.0 - rho) * g[i]);
                    vel[i] - a[i] * a[i] + epsilon
                }
                None => vel[i] + epsilon,
            };
            let inc = lr * g[i] / denom.sqrt();
            match mom.as_deref_mut() {
                Some(m) => {
                    m[i] = ftz(momentum * m[i] + inc);
                    w[i] -= m[i];
                }
                None => w[i] -= inc,
            }
        }
    }
}

crate::simd_fn! {
    /// Keras 3 Adadelta: rms(x) = sqrt(x + eps); delta = -rms(acc_delta) g / rms(acc_grad); w += lr delta.
    pub fn adadelta(w: &mut [f32], g: &[f32], acc_g: &mut [f32], acc_d: &mut [f32], lr: f32, rho: f32, epsilon: f32) {
        for (((w, &g), ag), ad) in w.iter_mut().zip(g).zip(acc_g.iter_mut()).zip(acc_d.iter_mut()) {
            *ag = ftz(rho * *ag + (1.0 - rho) * g * g);
            let delta = -(*ad + epsilon).sqrt() * g / (*ag + epsilon).sqrt();
            *ad = ftz(rho * *ad + (1.0 - rho) * delta * delta);
            *w += lr * delta;
        }
    }
}

crate::simd_fn! {
    /// Keras 3 Adamax: m += (g - m)(1 - b1); u = max(b2 u, |g|); w -= lr / (1 - b1^t) * m / (u + eps).
    pub fn adamax(
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        u: &mut [f32],
        step: f32,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
    ) {
        for (((w, &g), m), u) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(u.iter_mut()) {
            *m = ftz(*m + (g - *m) * (1.0 - beta_1));
            *u = ftz((beta_2 * *u).max(g.abs()));
            *w -= step * *m / (*u + epsilon);
        }
    }
}

/// Nadam's per-step scalars (Keras 3): m_hat = m_scale m + g_scale g; v_hat = v_scale v.
#[derive(Clone, Copy, Debug)]
pub struct NadamCoef {
    pub m_scale: f32,
    pub g_scale: f32,
    pub v_scale: f32,
}

crate::simd_fn! {
    pub fn nadam(
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        lr: f32,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        c: NadamCoef,
    ) {
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = ftz(*m + (g - *m) * (1.0 - beta_1));
            *v = ftz(*v + (g * g - *v) * (1.0 - beta_2));
            let m_hat = c.m_scale * *m + c.g_scale * g;
            let v_hat = *v * c.v_scale;
            *w -= m_hat * lr / (v_hat.sqrt() + epsilon);
        }
    }
}

crate::simd_fn! {
    pub fn adagrad(w: &mut [f32], g: &[f32], acc: &mut [f32], lr: f32, epsilon: f32) {
        for ((w, &g), a) in w.iter_mut().zip(g).zip(acc.iter_mut()) {
            *a += g * g;
            *w -= lr * g / (*a + epsilon).sqrt();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every optimizer's update of a variable longer than one piece, on a rayon pool (pieces in parallel), equals
    /// the same steps outside any pool (one piece after another) bit for bit.
    #[test]
    fn updates_in_parallel_pieces_equal_one_pass() {
        let len = 3 * UPDATE_CHUNK + 123;
        let configs = [
            json!({"class_name": "SGD", "config": {"learning_rate": 0.1, "momentum": 0.9, "nesterov": true}}),
            json!({"class_name": "Adam", "config": {"learning_rate": 0.01, "amsgrad": true, "weight_decay": 0.01}}),
            json!({"class_name": "RMSprop", "config": {"momentum": 0.5, "centered": true}}),
            json!({"class_name": "Adagrad", "config": {}}),
            json!({"class_name": "Adadelta", "config": {}}),
            json!({"class_name": "Adamax", "config": {}}),
            json!({"class_name": "Nadam", "config": {}}),
        ];
        let run = |cfg: &Value, pooled: bool| -> Vec<f32> {
            let mut opt = Optimizer::from_value(cfg).unwrap();
            let mut p = crate::layers::Param::new("kernel", vec![len], vec![0.5; len], true);
            let mut steps = || {
                for step in 0..3 {
                    for (i, g) in p.grad.iter_mut().enumerate() {
                        *g = ((i * 7 + step * 13) % 29) as f32 / 29.0 - 0.5;
                    }
                    opt.step(&mut [(0, &mut p)]);
                }
            };
            if pooled {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(3)
                    .build()
                    .unwrap()
                    .install(steps);
            } else {
                steps();
            }
            p.value
        };
        for cfg in &configs {
            assert_eq!(run(cfg, true), run(cfg, false), "{cfg}");
        }
    }

    fn param(v: Vec<f32>, g: Vec<f32>) -> Param {
        let mut p = Param::new("kernel", vec![v.len()], v, true);
        p.grad = g;
        p
    }

    fn run(cfg: Value, steps: &[[f32; 2]]) -> Vec<f32> {
        let mut opt = Optimizer::from_value(&cfg).unwrap();
        let mut p = param(vec![1.0, -2.0], vec![0.0, 0.0]);
        for g in steps {
            p.grad = g.to_vec();
            opt.step(&mut [(0, &mut p)]);
        }
        p.value
    }

    #[test]
    fn sgd_plain_momentum_nesterov_by_hand() {
        let gs = [[0.5, -1.0], [0.25, 2.0]];
        let w = run(
            json!({"class_name": "SGD", "config": {"learning_rate": 0.1}}),
            &gs,
        );
        assert!((w[0] - (1.0 - 0.05 - 0.025)).abs() < 1e-6);
        // momentum 0.9: m1 = -0.05, w = 0.95; m2 = -0.045 - 0.025 = -0.07, w = 0.88
        let w = run(
            json!({"class_name": "SGD", "config": {"learning_rate": 0.1, "momentum": 0.9}}),
            &gs,
        );
        assert!((w[0] - 0.88).abs() < 1e-6);
        // nesterov: w1 = 1 + 0.9*(-0.05) - 0.05 = 0.905; m2 = -0.07, w2 = 0.905 - 0.063 - 0.025 = 0.817
        let w = run(
            json!({"class_name": "SGD", "config": {"learning_rate": 0.1, "momentum": 0.9, "nesterov": true}}),
            &gs,
        );
        assert!((w[0] - 0.817).abs() < 1e-6);
    }

    #[test]
    fn adam_matches_keras_formula() {
        let gs = [[0.5, -1.0], [0.25, 2.0], [-0.1, 0.3]];
        let w = run(json!({"class_name": "Adam", "config": {}}), &gs);
        // hand computation in f64 with Keras's formula
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-7f64, 1e-3f64);
        let (mut m, mut v, mut x) = (0.0f64, 0.0f64, 1.0f64);
        for (t, g) in gs.iter().enumerate() {
            let g = g[0] as f64;
            let t = (t + 1) as f64;
            m += (g - m) * (1.0 - b1);
            v += (g * g - v) * (1.0 - b2);
            let alpha = lr * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t));
            x -= m * alpha / (v.sqrt() + eps);
        }
        assert!((w[0] as f64 - x).abs() < 1e-6, "{} vs {x}", w[0]);
        // epsilon placement matters: with a huge epsilon outside the sqrt the step shrinks
        let w2 = run(
            json!({"class_name": "Adam", "config": {"epsilon": 1.0}}),
            &gs,
        );
        assert!((w2[0] - w[0]).abs() > 1e-4);
    }

    /// Moments of a gradient that has become zero decay to zero, never into subnormal numbers (which would slow
    /// every later step; see `ftz`).
    #[test]
    fn decaying_slots_never_hold_subnormal_values() {
        let (mut w, mut m, mut v, mut mom) = ([1.0f32; 4], [0.0f32; 4], [0.0f32; 4], [0.0f32; 4]);
        adam(
            &mut w, &[1.0; 4], &mut m, &mut v, None, 1e-3, 0.9, 0.999, 1e-7,
        );
        sgd_momentum(&mut w, &[1.0; 4], &mut mom, 0.1, 0.9, false);
        for _ in 0..100_000 {
            adam(
                &mut w, &[0.0; 4], &mut m, &mut v, None, 1e-3, 0.9, 0.999, 1e-7,
            );
            sgd_momentum(&mut w, &[0.0; 4], &mut mom, 0.1, 0.9, false);
            for x in m.iter().chain(&v).chain(&mom) {
                assert!(*x == 0.0 || x.is_normal(), "subnormal slot value {x:e}");
            }
        }
        assert_eq!((m, v, mom), ([0.0; 4], [0.0; 4], [0.0; 4]));
        assert!(w.iter().all(|x| x.is_finite()));
    }

    /// Values printed by Keras 3.15.1 (TensorFlow 2.21) for the same three gradients from w = [1, -2].
    #[test]
    fn nadam_adamax_adadelta_and_schedules_match_keras() {
        let gs = [[0.5, -1.0], [0.25, 2.0], [-0.1, 0.3]];
        let cases = [
            (
                json!({"class_name": "Nadam", "config": {"learning_rate": 0.01}}),
                [0.984_981_8, -2.000_028_6],
            ),
            (
                json!({"class_name": "Adamax", "config": {"learning_rate": 0.01}}),
                [0.978_705, -1.995_277_2],
            ),
            (
                json!({"class_name": "Adadelta", "config": {"learning_rate": 1.0}}),
                [0.998_073_5, -2.000_749_6],
            ),
            (
                json!({"class_name": "SGD", "config": {"learning_rate": {"class_name": "ExponentialDecay",
                    "config": {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}}}}),
                [0.937_322_3, -2.056_421_5],
            ),
        ];
        for (cfg, want) in cases {
            let w = run(cfg.clone(), &gs);
            for (a, b) in w.iter().zip(want) {
                assert!((a - b).abs() < 2e-6, "{cfg}: {w:?} vs Keras {want:?}");
            }
        }
    }

    #[test]
    fn rmsprop_by_hand_and_clipping() {
        let w = run(
            json!({"class_name": "RMSprop", "config": {"learning_rate": 0.01}}),
            &[[0.5, -1.0]],
        );
        let vel = 0.1 * 0.25f64;
        let want = 1.0 - 0.01 * 0.5 / (vel + 1e-7).sqrt();
        assert!((w[0] as f64 - want).abs() < 1e-6);
        let w = run(
            json!({"class_name": "SGD", "config": {"learning_rate": 1.0, "clipnorm": 1.0}}),
            &[[3.0, 4.0]],
        );
        assert!((w[0] - 0.4).abs() < 1e-6 && (w[1] + 2.8).abs() < 1e-6);
        let w = run(
            json!({"class_name": "SGD", "config": {"learning_rate": 1.0, "clipvalue": 0.5}}),
            &[[3.0, -0.2]],
        );
        assert!((w[0] - 0.5).abs() < 1e-6 && (w[1] + 1.8).abs() < 1e-6);
        assert!(Optimizer::from_value(&json!("adamm")).is_err());
    }
}
