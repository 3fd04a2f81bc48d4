//! The one error type of the engine. The bindings map each variant to a Python exception.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// Bad value or shape: becomes `ValueError`.
    #[error("{0}")]
    Value(String),
    /// Wrong kind of argument: becomes `TypeError`.
    #[error("{0}")]
    Type(String),
    /// Calling things in the wrong order: becomes `RuntimeError`.
    #[error("{0}")]
    Runtime(String),
    /// A progress hook asked to stop (Ctrl-C or a Python exception, kept by the bindings).
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a `ValueError` built with `format!`.
#[macro_export]
macro_rules! value_err {
    ($($arg:tt)*) => { $crate::error::Error::Value(format!($($arg)*)) };
}
