//! A datapoint keeps the numeric *type* it arrived with (int or float), because Skyline's
//! Horizon stores whatever it received: `msgpack((1700000000, 1.5))` and
//! `msgpack((1700000000.0, 1.5))` are different bytes in Redis, and Python readers see the
//! difference. Converting everything to `f64` would change the stored bytes.

use std::fmt;

/// A number as it arrived on the wire: a Python `int` (signed or unsigned 64-bit) or `float`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A signed integer (Python `int` that fits in i64).
    Int(i64),
    /// An unsigned integer above `i64::MAX` (Python `int` up to 2^64-1).
    UInt(u64),
    /// A double-precision float.
    Float(f64),
}

impl Number {
    /// The value as `f64` (what the algorithms work on).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::UInt(u) => u as f64,
            Number::Float(f) => f,
        }
    }

    /// True unless the number is a NaN or an infinity.
    pub fn is_finite(self) -> bool {
        match self {
            Number::Float(f) => f.is_finite(),
            _ => true,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::UInt(u) => write!(f, "{u}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// One `(timestamp, value)` pair of a metric, with its wire types.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since the epoch (carbon sends floats, seed_data.py ints).
    pub timestamp: Number,
    /// The metric's value.
    pub value: Number,
}

/// A named datapoint, as decoded from a pickle frame, a msgpack datagram, a plaintext line or
/// a flux request. `metric` is the Graphite name (the *base_name*, without `metrics.`).
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// Graphite metric name, e.g. `stats.server-1.cpu`.
    pub metric: String,
    /// The timestamp and value.
    pub point: Point,
}

impl Datapoint {
    /// Convenience constructor for float pairs (what carbon-relay sends).
    pub fn new(metric: impl Into<String>, timestamp: f64, value: f64) -> Self {
        Datapoint {
            metric: metric.into(),
            point: Point {
                timestamp: Number::Float(timestamp),
                value: Number::Float(value),
            },
        }
    }
}
