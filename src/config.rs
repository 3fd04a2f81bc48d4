//! Reading Keras-shaped layer configs (`get_config()` dicts, as JSON). Every accessor names the layer and key
//! in its error, so bad arguments surface as "Dense 'dense_1': `units` expected a positive integer, received -3".

use crate::error::{Error, Result};
use serde_json::Value;

pub struct Cfg<'a> {
    pub class_name: &'a str,
    pub name: String,
    v: &'a Value,
}

impl<'a> Cfg<'a> {
    pub fn new(class_name: &'a str, v: &'a Value) -> Result<Self> {
        if !v.is_object() {
            return Err(Error::Value(format!(
                "{class_name}: config must be a dict, received {v}"
            )));
        }
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(class_name)
            .to_string();
        Ok(Cfg {
            class_name,
            name,
            v,
        })
    }

    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        match self.v.get(key) {
            Some(Value::Null) | None => None,
            Some(x) => Some(x),
        }
    }

    pub fn err(&self, key: &str, expected: &str, got: &Value) -> Error {
        Error::Value(format!(
            "{} '{}': `{}` expected {}, received {}",
            self.class_name, self.name, key, expected, got
        ))
    }

    pub fn positive_usize(&self, key: &str) -> Result<usize> {
        match self.raw(key) {
            Some(x) => match x.as_u64() {
                Some(n) if n > 0 && n < (1 << 31) => Ok(n as usize),
                _ => Err(self.err(key, "a positive integer", x)),
            },
            None => Err(Error::Value(format!(
                "{} '{}': missing required argument `{}`",
                self.class_name, self.name, key
            ))),
        }
    }

    /// An int or a pair of ints (Keras's `kernel_size=3` or `(3, 3)`), all positive.
    pub fn pair(&self, key: &str, default: Option<(usize, usize)>) -> Result<(usize, usize)> {
        let x = match self.raw(key) {
            Some(x) => x,
            None => {
                return default.ok_or_else(|| {
                    Error::Value(format!(
                        "{} '{}': missing required argument `{}`",
                        self.class_name, self.name, key
                    ))
                })
            }
        };
        let one = |v: &Value| v.as_u64().filter(|&n| n > 0 && n < (1 << 31));
        let bad = || {
            self.err(
                key,
                "a positive integer or a tuple of 2 positive integers",
                x,
            )
        };
        match x {
            Value::Array(a) if a.len() == 2 => match (one(&a[0]), one(&a[1])) {
                (Some(p), Some(q)) => Ok((p as usize, q as usize)),
                _ => Err(bad()),
            },
            _ => one(x).map(|n| (n as usize, n as usize)).ok_or_else(bad),
        }
    }

    pub fn f32_or(&self, key: &str, default: f32) -> Result<f32> {
        match self.raw(key) {
            None => Ok(default),
            Some(x) => x
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f as f32)
                .ok_or_else(|| self.err(key, "a finite number", x)),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.raw(key) {
            None => Ok(default),
            Some(x) => x.as_bool().ok_or_else(|| self.err(key, "a bool", x)),
        }
    }

    pub fn str_or(&self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.raw(key) {
            None => Ok(default),
            Some(x) => x.as_str().ok_or_else(|| self.err(key, "a string", x)),
        }
    }

    /// `padding`: "valid" or "same" (case-insensitive, as Keras). Returns true for "same".
    pub fn padding_same(&self) -> Result<bool> {
        match self
            .str_or("padding", "valid")?
            .to_ascii_lowercase()
            .as_str()
        {
            "valid" => Ok(false),
            "same" => Ok(true),
            _ => Err(self.err(
                "padding",
                "one of \"valid\", \"same\"",
                self.raw("padding").unwrap_or(&Value::Null),
            )),
        }
    }

    /// A dropout `rate` in [0, 1).
    pub fn rate(&self) -> Result<f32> {
        let rate = self.f32_or("rate", f32::NAN)?;
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::Value(format!(
                "{} '{}': `rate` must be a number in the range [0, 1), received {}",
                self.class_name,
                self.name,
                self.raw("rate")
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "nothing".into())
            )));
        }
        Ok(rate)
    }

    /// Channels-last only: `data_format` must be absent or "channels_last".
    pub fn channels_last(&self) -> Result<()> {
        match self.str_or("data_format", "channels_last")? {
            "channels_last" => Ok(()),
            other => Err(Error::Value(format!(
                "{} '{}': only data_format=\"channels_last\" is supported, received \"{}\"",
                self.class_name, self.name, other
            ))),
        }
    }
}

/// A Keras object identifier as its class name and config: `"name"` (no config) or `{"class_name": .., "config":
/// {..}}`; None for null. `what` names the kind of object in the error ("regularizer", "constraint").
pub fn class_and_config<'v>(v: &'v Value, what: &str) -> Result<Option<(&'v str, &'v Value)>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some((s.as_str(), &Value::Null))),
        Value::Object(o) => Ok(Some((
            o.get("class_name").and_then(Value::as_str).unwrap_or(""),
            o.get("config").unwrap_or(&Value::Null),
        ))),
        _ => Err(Error::Value(format!(
            "{what} must be a name or a dict, received {v}"
        ))),
    }
}
