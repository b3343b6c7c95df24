//! Graphite's plaintext protocol (carbon's port 2003): `name value timestamp\n`.
//!
//! Parsed as carbon's LineReceiver does: split on white space into exactly three fields,
//! value and timestamp parsed as floats (carbon coerces both; a `-1` timestamp means now, as
//! carbon accepts). Pure.

use crate::model::{validate_metric_name, Datapoint, Number, Point};

/// Why a line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// Not three fields, or a field that is not a number.
    Shape,
    /// An empty name or one with control characters.
    Name,
    /// NaN or infinity.
    NonFinite,
}

impl LineError {
    /// A short sentence for logs.
    pub fn describe(self) -> &'static str {
        match self {
            LineError::Shape => "not `name value timestamp` with numeric value and timestamp",
            LineError::Name => "empty name, control characters or invalid UTF-8",
            LineError::NonFinite => "NaN or infinite value or timestamp",
        }
    }
}

/// Parses one line (without its newline). `now` replaces a `-1` timestamp.
pub fn parse_line(line: &[u8], now: f64) -> Result<Datapoint, LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::Name)?;
    let mut fields = text.split_ascii_whitespace();
    let (Some(name), Some(value), Some(ts), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(LineError::Shape);
    };
    validate_metric_name(name).map_err(|_| LineError::Name)?;
    let value: f64 = value.parse().map_err(|_| LineError::Shape)?;
    let mut ts: f64 = ts.parse().map_err(|_| LineError::Shape)?;
    if ts == -1.0 {
        ts = now;
    }
    if !value.is_finite() || !ts.is_finite() {
        return Err(LineError::NonFinite);
    }
    Ok(Datapoint {
        metric: name.to_string(),
        point: Point {
            timestamp: Number::Float(ts),
            value: Number::Float(value),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let d = parse_line(b"stats.cpu 42.5 1700000000", 0.0).unwrap();
        assert_eq!(d, Datapoint::new("stats.cpu", 1_700_000_000.0, 42.5));
        assert_eq!(parse_line(b"  a.b\t1 2  ", 0.0).unwrap().metric, "a.b");
        assert_eq!(
            parse_line(b"a.b 1 -1", 99.0).unwrap().point.timestamp,
            Number::Float(99.0)
        );
        assert_eq!(parse_line(b"a.b 1", 0.0), Err(LineError::Shape));
        assert_eq!(parse_line(b"a.b x 1", 0.0), Err(LineError::Shape));
        assert_eq!(parse_line(b"a.b 1 2 3", 0.0), Err(LineError::Shape));
        assert_eq!(parse_line(b"a.b nan 2", 0.0), Err(LineError::NonFinite));
        assert_eq!(parse_line(b"a\x01b 1 2", 0.0), Err(LineError::Name));
        assert_eq!(parse_line(b"\xff 1 2", 0.0), Err(LineError::Name));
    }
}
