//! Skyline's Redis value format: a concatenation of msgpack 2-element arrays `[ts, value]`,
//! no outer array. Encoding is byte-identical to Python msgpack's `packb((ts, value))`:
//! ints in the smallest width (non-negative ints unsigned), floats as float64. Decoding
//! accepts every msgpack number form, as Python's `Unpacker` does.
//!
//! Pure functions, no I/O. Shared by the store (Redis values), the UDP listener (datagrams)
//! and every reader of Redis series (analyzer, webapp).

use thiserror::Error;

use super::{Datapoint, Number, Point};

/// A Redis value that is not a stream of `[number, number]` pairs.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EncodingError {
    /// The bytes ended inside an object.
    #[error("truncated msgpack at byte {0}")]
    Truncated(usize),
    /// Something other than a 2-element array of numbers.
    #[error("unexpected msgpack marker 0x{marker:02x} at byte {pos}")]
    Unexpected {
        /// The marker byte.
        marker: u8,
        /// Its offset.
        pos: usize,
    },
}

/// Appends the msgpack encoding of one number (Python msgpack's choice of width).
#[inline]
pub fn encode_number(buf: &mut Vec<u8>, n: Number) {
    match n {
        Number::Float(f) => {
            buf.push(0xcb);
            buf.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Number::UInt(u) => encode_uint(buf, u),
        Number::Int(i) if i >= 0 => encode_uint(buf, i as u64),
        Number::Int(i) => {
            if i >= -32 {
                buf.push(i as i8 as u8);
            } else if i >= i8::MIN as i64 {
                buf.push(0xd0);
                buf.push(i as i8 as u8);
            } else if i >= i16::MIN as i64 {
                buf.push(0xd1);
                buf.extend_from_slice(&(i as i16).to_be_bytes());
            } else if i >= i32::MIN as i64 {
                buf.push(0xd2);
                buf.extend_from_slice(&(i as i32).to_be_bytes());
            } else {
                buf.push(0xd3);
                buf.extend_from_slice(&i.to_be_bytes());
            }
        }
    }
}

fn encode_uint(buf: &mut Vec<u8>, u: u64) {
    if u < 128 {
        buf.push(u as u8);
    } else if u <= u8::MAX as u64 {
        buf.push(0xcc);
        buf.push(u as u8);
    } else if u <= u16::MAX as u64 {
        buf.push(0xcd);
        buf.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u <= u32::MAX as u64 {
        buf.push(0xce);
        buf.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        buf.push(0xcf);
        buf.extend_from_slice(&u.to_be_bytes());
    }
}

/// Appends `msgpack([ts, value])`, what Horizon APPENDs per datapoint.
#[inline]
pub fn encode_point(buf: &mut Vec<u8>, p: &Point) {
    buf.push(0x92);
    encode_number(buf, p.timestamp);
    encode_number(buf, p.value);
}

/// Encodes a whole series in the concatenated format (Roomba's `packb(list)` minus the
/// array header).
pub fn encode_series(points: &[Point]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(points.len() * 19);
    for p in points {
        encode_point(&mut buf, p);
    }
    buf
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], EncodingError> {
        let end = self.pos + n;
        if end > self.b.len() {
            return Err(EncodingError::Truncated(self.pos));
        }
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn be<const N: usize>(&mut self) -> Result<[u8; N], EncodingError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    #[inline]
    fn number(&mut self) -> Result<Number, EncodingError> {
        let pos = self.pos;
        let m = self.take(1)?[0];
        Ok(match m {
            0x00..=0x7f => Number::Int(m as i64),
            0xe0..=0xff => Number::Int(m as i8 as i64),
            0xcc => Number::Int(self.take(1)?[0] as i64),
            0xcd => Number::Int(u16::from_be_bytes(self.be()?) as i64),
            0xce => Number::Int(u32::from_be_bytes(self.be()?) as i64),
            0xcf => {
                let u = u64::from_be_bytes(self.be()?);
                i64::try_from(u).map_or(Number::UInt(u), Number::Int)
            }
            0xd0 => Number::Int(self.take(1)?[0] as i8 as i64),
            0xd1 => Number::Int(i16::from_be_bytes(self.be()?) as i64),
            0xd2 => Number::Int(i32::from_be_bytes(self.be()?) as i64),
            0xd3 => Number::Int(i64::from_be_bytes(self.be()?)),
            0xca => Number::Float(f32::from_be_bytes(self.be()?) as f64),
            0xcb => Number::Float(f64::from_be_bytes(self.be()?)),
            0xc2 => Number::Int(0),
            0xc3 => Number::Int(1),
            marker => return Err(EncodingError::Unexpected { marker, pos }),
        })
    }

    #[inline]
    fn pair(&mut self) -> Result<Point, EncodingError> {
        let pos = self.pos;
        let m = self.take(1)?[0];
        let len = match m {
            0x90..=0x9f => (m & 0x0f) as usize,
            0xdc => u16::from_be_bytes(self.be()?) as usize,
            0xdd => u32::from_be_bytes(self.be()?) as usize,
            marker => return Err(EncodingError::Unexpected { marker, pos }),
        };
        if len != 2 {
            return Err(EncodingError::Unexpected { marker: m, pos });
        }
        Ok(Point {
            timestamp: self.number()?,
            value: self.number()?,
        })
    }
}

/// Decodes a Redis value into points, keeping each number's wire type (for Roomba's rewrite).
pub fn decode_series(bytes: &[u8]) -> Result<Vec<Point>, EncodingError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut out = Vec::with_capacity(bytes.len() / 19 + 1);
    while r.pos < bytes.len() {
        out.push(r.pair()?);
    }
    Ok(out)
}

#[inline]
fn f64_at(b: &[u8], at: usize) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    f64::from_be_bytes(a)
}

/// Decodes a Redis value into `(timestamp, value)` floats (what the algorithms read).
///
/// The two layouts Horizon writes almost always — carbon's float pair (`92 cb… cb…`, 19 bytes)
/// and an int timestamp with a float value (`92 ce… cb…`, 15 bytes) — are read with one bounds
/// check per pair; anything else goes through the general reader.
pub fn decode_series_f64(bytes: &[u8], out: &mut Vec<(f64, f64)>) -> Result<(), EncodingError> {
    out.clear();
    out.reserve(bytes.len() / 15);
    let mut r = Reader { b: bytes, pos: 0 };
    while r.pos < bytes.len() {
        let rest = &bytes[r.pos..];
        if rest.len() >= 19 && rest[0] == 0x92 && rest[1] == 0xcb && rest[10] == 0xcb {
            out.push((f64_at(rest, 2), f64_at(rest, 11)));
            r.pos += 19;
            continue;
        }
        if rest.len() >= 15 && rest[0] == 0x92 && rest[1] == 0xce && rest[6] == 0xcb {
            let ts = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
            out.push((ts as f64, f64_at(rest, 7)));
            r.pos += 15;
            continue;
        }
        let p = r.pair()?;
        out.push((p.timestamp.as_f64(), p.value.as_f64()));
    }
    Ok(())
}

impl Reader<'_> {
    fn string(&mut self) -> Result<String, EncodingError> {
        let pos = self.pos;
        let m = self.take(1)?[0];
        let len = match m {
            0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 | 0xc4 => self.take(1)?[0] as usize,
            0xda | 0xc5 => u16::from_be_bytes(self.be()?) as usize,
            0xdb | 0xc6 => u32::from_be_bytes(self.be()?) as usize,
            marker => return Err(EncodingError::Unexpected { marker, pos }),
        };
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| EncodingError::Unexpected { marker: m, pos })
    }
}

/// Decodes one Skyline UDP datagram: exactly one msgpack `[name, [timestamp, value]]`
/// (name as str or bin). Trailing bytes are an error.
pub fn decode_datagram(bytes: &[u8]) -> Result<Datapoint, EncodingError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let m = r.take(1)?[0];
    if m != 0x92 {
        return Err(EncodingError::Unexpected { marker: m, pos: 0 });
    }
    let metric = r.string()?;
    let point = r.pair()?;
    if r.pos != bytes.len() {
        return Err(EncodingError::Unexpected {
            marker: bytes[r.pos],
            pos: r.pos,
        });
    }
    Ok(Datapoint { metric, point })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn spec_examples() {
        let mut b = Vec::new();
        encode_point(
            &mut b,
            &Point {
                timestamp: Number::Int(1_700_000_000),
                value: Number::Float(1.5),
            },
        );
        assert_eq!(b, hex("92ce6553f100cb3ff8000000000000"));
        b.clear();
        encode_point(
            &mut b,
            &Point {
                timestamp: Number::Float(1_700_000_000.0),
                value: Number::Float(1.5),
            },
        );
        assert_eq!(b, hex("92cb41d954fc40000000cb3ff8000000000000"));
    }

    #[test]
    fn round_trip_keeps_types() {
        let pts = vec![
            Point {
                timestamp: Number::Int(5),
                value: Number::Int(-33),
            },
            Point {
                timestamp: Number::UInt(u64::MAX),
                value: Number::Float(-0.0),
            },
            Point {
                timestamp: Number::Int(i64::MIN),
                value: Number::Int(65536),
            },
        ];
        let enc = encode_series(&pts);
        let dec = decode_series(&enc).unwrap();
        assert_eq!(dec.len(), 3);
        assert_eq!(encode_series(&dec), enc);
    }

    #[test]
    fn datagram() {
        let d = decode_datagram(&hex("92a3612e6292ce6553f100cb3ff8000000000000")).unwrap();
        assert_eq!(d.metric, "a.b");
        assert_eq!(d.point.timestamp, Number::Int(1_700_000_000));
        assert_eq!(d.point.value, Number::Float(1.5));
        assert!(decode_datagram(&hex("92a3612e6292ce6553f100cb3ff800000000000000")).is_err());
        assert!(decode_datagram(b"garbage").is_err());
        assert!(decode_datagram(&[]).is_err());
    }

    #[test]
    fn fast_paths_agree_with_the_general_reader() {
        let pts = vec![
            Point {
                timestamp: Number::Float(1.7e9),
                value: Number::Float(1.5),
            },
            Point {
                timestamp: Number::Int(1_700_000_000),
                value: Number::Float(-2.0),
            },
            Point {
                timestamp: Number::Int(5),
                value: Number::Int(-33),
            },
            Point {
                timestamp: Number::Float(1.7e9 + 0.25),
                value: Number::UInt(u64::MAX),
            },
        ];
        let enc = encode_series(&pts);
        let mut fast = Vec::new();
        decode_series_f64(&enc, &mut fast).unwrap();
        let general: Vec<(f64, f64)> = decode_series(&enc)
            .unwrap()
            .iter()
            .map(|p| (p.timestamp.as_f64(), p.value.as_f64()))
            .collect();
        assert_eq!(fast, general);
        assert!(decode_series_f64(&enc[..enc.len() - 1], &mut fast).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode_series(&[0x92, 0x01]).is_err());
        assert!(decode_series(&[0x93, 1, 2, 3]).is_err());
        assert!(decode_series(&[0xa1, b'x']).is_err());
        assert_eq!(decode_series(&[]).unwrap(), vec![]);
    }
}
