//! A pickle decoder that understands only plain data.
//!
//! Skyline unpickles carbon's frames with a "SafeUnpickler" that refuses globals; under Python 3
//! that refuses every GLOBAL/STACK_GLOBAL. This decoder goes further: it is a small stack
//! machine over the plain-data opcodes (lists, tuples, dicts, ints, floats, strings, bytes,
//! None, bools, the memo) and **every opcode that can name, build or call an object is an
//! error**: GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ, NEWOBJ_EX, PERSID,
//! BINPERSID, EXT1/2/4 and the out-of-band buffer opcodes. Nothing is ever executed or imported.
//!
//! Hostile-input limits: nesting deeper than [`MAX_DEPTH`] is an error, and **every copy**
//! (PUT, BINPUT, LONG_BINPUT, MEMOIZE, GET and DUP alike) is charged its weight against one
//! budget linear in the frame's size ([`copy_budget`]); a frame that exceeds it is refused.
//! Weights are kept beside each stack entry, so pricing a copy never walks it. Every other
//! opcode does O(1) work per byte it consumes, so the work and memory of one frame are bounded
//! by a constant times its length (about 100 bytes of memory per frame byte at worst), and a
//! small frame cannot blow the stack, the memory or the CPU. Memo entries are copies (a list
//! mutated after it was memoised is not seen through the memo), which is exact for every
//! payload a Graphite sender produces. Dict keys and values are flattened to scalars (dicts
//! never carry datapoints), so dicts cannot hide nesting.
//!
//! The pure functions here are I/O-free; [`decode_datapoints`] turns a frame into datapoints.
//!
//! Fast path: a frame in the exact shape Graphite senders write (an empty list, then items
//! `(name, (timestamp, value))` built with TUPLE2 or MARK…TUPLE, appended by APPEND or
//! MARK…APPENDS, memo puts allowed, memo gets not) is read straight into datapoints, one allocation per item
//! (its name) instead of a value tree and its memo copies. Anything else, or anything it is
//! unsure of, goes to the machine above, so the result (datapoints, counts, errors) is the
//! same; a test holds the two to that on real and mutated frames. Its work is linear in the
//! frame and it keeps no memo, so it needs no budget.

use std::collections::HashMap;

use thiserror::Error;

use crate::model::{validate_metric_name, Datapoint, Number, Point};

/// Deepest container nesting accepted (a Graphite payload is 3 deep).
pub const MAX_DEPTH: u32 = 16;

/// Why a pickle frame was refused. The whole frame is dropped; the connection survives.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum PickleError {
    /// An opcode that can import, build or call objects.
    #[error("refused opcode {name} (0x{code:02x}) at byte {pos}: pickles that name or build objects are never loaded")]
    Forbidden {
        /// Opcode name.
        name: &'static str,
        /// Opcode byte.
        code: u8,
        /// Offset in the payload.
        pos: usize,
    },
    /// An opcode this decoder does not know.
    #[error("unknown opcode 0x{code:02x} at byte {pos}")]
    Unknown {
        /// Opcode byte.
        code: u8,
        /// Offset in the payload.
        pos: usize,
    },
    /// The payload ended before STOP.
    #[error("truncated pickle (no STOP)")]
    Truncated,
    /// Structurally invalid (stack underflow, bad memo reference, bad literal…).
    #[error("malformed pickle at byte {pos}: {what}")]
    Malformed {
        /// What was wrong.
        what: &'static str,
        /// Offset in the payload.
        pos: usize,
    },
    /// Nesting or memo expansion over the limits.
    #[error("pickle too complex at byte {pos}: {what}")]
    TooComplex {
        /// Which limit.
        what: &'static str,
        /// Offset in the payload.
        pos: usize,
    },
    /// A py2 `str` that is not ASCII (Python 3's default decoding, as Skyline uses).
    #[error("non-ASCII py2 string at byte {pos}")]
    NonAscii {
        /// Offset in the payload.
        pos: usize,
    },
    /// The top-level object is not a list (or tuple) of datapoints.
    #[error("top-level object is not a list")]
    NotAList,
}

/// A decoded plain-data value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An int that fits in i64.
    Int(i64),
    /// An int above i64::MAX that fits in u64.
    UInt(u64),
    /// An int outside the 64-bit range (decodes, but cannot be stored).
    BigInt,
    /// A float.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict (kept as pairs; never used for datapoints).
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// Cost of copying a scalar, in nodes (16 string bytes count as one node). Containers
    /// are never walked: their weight is kept in their [`Slot`] as they are built.
    fn scalar_weight(&self) -> usize {
        match self {
            Value::Str(s) => 1 + s.len() / 16,
            Value::Bytes(b) => 1 + b.len() / 16,
            _ => 1,
        }
    }
}

/// A stack entry: a value, its nesting depth and its weight (nodes, as
/// [`Value::scalar_weight`] counts them, summed over the whole tree). Both are kept so that
/// nothing ever re-walks a container: a copy costs O(1) to price and its weight to make.
struct Slot(Value, u32, usize);

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    /// Stack heights at each MARK, innermost last.
    marks: Vec<usize>,
    /// Memoised copies by id (a map: ids may be sparse, and at most one entry per PUT opcode).
    memo: HashMap<usize, Slot>,
    /// Nodes every copy (PUT, BINPUT, LONG_BINPUT, MEMOIZE, GET, DUP) still may make.
    budget: usize,
}

fn forbidden(code: u8) -> Option<&'static str> {
    Some(match code {
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        b'b' => "BUILD",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

impl<'a> Machine<'a> {
    fn malformed(&self, what: &'static str) -> PickleError {
        PickleError::Malformed {
            what,
            pos: self.pos,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).ok_or(PickleError::Truncated)?;
        if end > self.data.len() {
            return Err(PickleError::Truncated);
        }
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A protocol-0 text argument up to (not including) the newline.
    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        self.pos += nl + 1;
        Ok(&rest[..nl])
    }

    /// Pushes a scalar (depth 0).
    fn push(&mut self, v: Value) {
        let w = v.scalar_weight();
        self.stack.push(Slot(v, 0, w));
    }

    /// Pushes a container whose children's deepest nesting is `child_depth` and whose
    /// children weigh `child_weight` together.
    fn push_container(
        &mut self,
        v: Value,
        child_depth: u32,
        child_weight: usize,
    ) -> Result<(), PickleError> {
        let d = child_depth + 1;
        if d > MAX_DEPTH {
            return Err(PickleError::TooComplex {
                what: "nesting too deep",
                pos: self.pos,
            });
        }
        self.stack.push(Slot(v, d, child_weight.saturating_add(1)));
        Ok(())
    }

    /// Takes `w` nodes from the copy budget, or refuses the frame.
    fn charge(&mut self, w: usize, at: usize) -> Result<(), PickleError> {
        if w > self.budget {
            return Err(PickleError::TooComplex {
                what: "copies over the frame's budget",
                pos: at,
            });
        }
        self.budget -= w;
        Ok(())
    }

    /// A charged copy of the top of the stack.
    fn copy_top(&mut self, what: &'static str, at: usize) -> Result<Slot, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.malformed(what));
        }
        let w = match self.stack.last() {
            Some(s) => s.2,
            None => return Err(self.malformed(what)),
        };
        self.charge(w, at)?;
        match self.stack.last() {
            Some(Slot(v, d, w)) => Ok(Slot(v.clone(), *d, *w)),
            None => Err(self.malformed(what)),
        }
    }

    /// The stack height below which values belong to an enclosing MARK (or 0).
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop_slot(&mut self) -> Result<Slot, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.malformed("stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.malformed("stack underflow"))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        self.pop_slot().map(|s| s.0)
    }

    /// Pops everything above the topmost MARK (and the MARK), with their deepest nesting and
    /// their total weight.
    fn pop_mark(&mut self) -> Result<(Vec<Value>, u32, usize), PickleError> {
        let mark = self.marks.pop().ok_or_else(|| self.malformed("no MARK"))?;
        let mut depth = 0;
        let mut weight = 0usize;
        let items = self
            .stack
            .drain(mark..)
            .map(|Slot(v, d, w)| {
                depth = depth.max(d);
                weight = weight.saturating_add(w);
                v
            })
            .collect();
        Ok((items, depth, weight))
    }

    /// PUT, BINPUT, LONG_BINPUT, MEMOIZE: memoise a copy of the top, charged like any copy.
    fn memo_put(&mut self, id: usize, at: usize) -> Result<(), PickleError> {
        // A memo id cannot exceed the number of objects, which cannot exceed the byte count.
        if id > self.data.len() {
            return Err(self.malformed("memo id out of range"));
        }
        let slot = self.copy_top("PUT on empty stack", at)?;
        self.memo.insert(id, slot);
        Ok(())
    }

    /// GET, BINGET, LONG_BINGET: push a copy of a memo entry, charged like any copy.
    fn memo_get(&mut self, id: usize, at: usize) -> Result<(), PickleError> {
        let w = match self.memo.get(&id) {
            Some(s) => s.2,
            None => return Err(self.malformed("memo id not found")),
        };
        self.charge(w, at)?;
        match self.memo.get(&id) {
            Some(Slot(v, d, w)) => {
                let slot = Slot(v.clone(), *d, *w);
                self.stack.push(slot);
                Ok(())
            }
            None => Err(self.malformed("memo id not found")),
        }
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            let at = self.pos;
            let code = match self.data.get(self.pos) {
                Some(&c) => c,
                None => return Err(PickleError::Truncated),
            };
            self.pos += 1;
            if let Some(name) = forbidden(code) {
                return Err(PickleError::Forbidden {
                    name,
                    code,
                    pos: at,
                });
            }
            match code {
                0x80 => {
                    // PROTO
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.malformed("unsupported protocol"));
                    }
                }
                0x95 => {
                    // FRAME: an optimisation hint, its length is not needed.
                    self.u64()?;
                }
                b'.' => {
                    if !self.marks.is_empty() {
                        return Err(self.malformed("STOP inside MARK"));
                    }
                    return self.pop();
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    // POP removes the top item, or the topmost MARK when nothing is above it.
                    if self.stack.len() > self.floor() {
                        self.stack.pop();
                    } else if self.marks.pop().is_none() {
                        return Err(self.malformed("POP on empty stack"));
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let slot = self.copy_top("DUP on empty stack", at)?;
                    self.stack.push(slot);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    self.push(long_le(b));
                }
                0x8b => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?;
                    self.push(long_le(b));
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l {
                        b"01" => Value::Bool(true),
                        b"00" => Value::Bool(false),
                        _ => parse_int_text(l).ok_or_else(|| self.malformed("bad INT"))?,
                    };
                    self.push(v);
                }
                b'L' => {
                    let l = self.line()?;
                    let l = l.strip_suffix(b"L").unwrap_or(l);
                    let v = parse_int_text(l).ok_or_else(|| self.malformed("bad LONG"))?;
                    self.push(v);
                }
                b'F' => {
                    let l = self.line()?;
                    let v = std::str::from_utf8(l)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .ok_or_else(|| self.malformed("bad FLOAT"))?;
                    self.push(Value::Float(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                0x8d => {
                    let n = usize::try_from(self.u64()?).map_err(|_| PickleError::Truncated)?;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let s = self.ascii(n)?;
                    self.push(Value::Str(s));
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let s = self.ascii(n)?;
                    self.push(Value::Str(s));
                }
                b'S' => {
                    let l = self.line()?;
                    let s = unquote_py2(l).ok_or_else(|| self.malformed("bad STRING"))?;
                    if !s.is_ascii() {
                        return Err(PickleError::NonAscii { pos: at });
                    }
                    self.push(Value::Str(s));
                }
                b'V' => {
                    let l = self.line()?;
                    let s = raw_unicode_escape(l).ok_or_else(|| self.malformed("bad UNICODE"))?;
                    self.push(Value::Str(s));
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                0x8e | 0x96 => {
                    let n = usize::try_from(self.u64()?).map_err(|_| PickleError::Truncated)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b']' => self.push(Value::List(Vec::new())),
                b')' => self.push(Value::Tuple(Vec::new())),
                b'}' => self.push(Value::Dict(Vec::new())),
                0x8f => self.push(Value::List(Vec::new())), // EMPTY_SET: kept as a list
                b'l' | 0x91 => {
                    let (items, d, w) = self.pop_mark()?;
                    self.push_container(Value::List(items), d, w)?;
                }
                b't' => {
                    let (items, d, w) = self.pop_mark()?;
                    self.push_container(Value::Tuple(items), d, w)?;
                }
                0x85..=0x87 => {
                    let n = (code - 0x84) as usize;
                    if self.stack.len() < self.floor() + n {
                        return Err(self.malformed("stack underflow"));
                    }
                    let start = self.stack.len() - n;
                    let mut depth = 0;
                    let mut weight = 0usize;
                    let items: Vec<Value> = self
                        .stack
                        .drain(start..)
                        .map(|Slot(v, d, w)| {
                            depth = depth.max(d);
                            weight = weight.saturating_add(w);
                            v
                        })
                        .collect();
                    self.push_container(Value::Tuple(items), depth, weight)?;
                }
                b'a' => {
                    let Slot(v, d, w) = self.pop_slot()?;
                    self.extend_top(vec![v], d, w)?;
                }
                b'e' | 0x90 => {
                    let (items, d, w) = self.pop_mark()?;
                    self.extend_top(items, d, w)?;
                }
                b'd' => {
                    let (items, _, _) = self.pop_mark()?;
                    let pairs = flat_pairs(items).ok_or_else(|| self.malformed("odd DICT"))?;
                    let w = pairs_weight(&pairs);
                    self.push_container(Value::Dict(pairs), 0, w)?;
                }
                b's' => {
                    let v = flat(self.pop()?);
                    let k = flat(self.pop()?);
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let (items, _, _) = self.pop_mark()?;
                    let p = flat_pairs(items).ok_or_else(|| self.malformed("odd SETITEMS"))?;
                    self.set_items(p)?;
                }
                b'p' => {
                    let l = self.line()?;
                    let id = parse_usize(l).ok_or_else(|| self.malformed("bad PUT"))?;
                    self.memo_put(id, at)?;
                }
                b'q' => {
                    let id = self.u8()? as usize;
                    self.memo_put(id, at)?;
                }
                b'r' => {
                    let id = self.u32()? as usize;
                    self.memo_put(id, at)?;
                }
                0x94 => {
                    let id = self.memo.len();
                    self.memo_put(id, at)?;
                }
                b'g' => {
                    let l = self.line()?;
                    let id = parse_usize(l).ok_or_else(|| self.malformed("bad GET"))?;
                    self.memo_get(id, at)?;
                }
                b'h' => {
                    let id = self.u8()? as usize;
                    self.memo_get(id, at)?;
                }
                b'j' => {
                    let id = self.u32()? as usize;
                    self.memo_get(id, at)?;
                }
                _ => return Err(PickleError::Unknown { code, pos: at }),
            }
        }
    }

    fn extend_top(
        &mut self,
        items: Vec<Value>,
        child_depth: u32,
        child_weight: usize,
    ) -> Result<(), PickleError> {
        let pos = self.pos;
        let added = child_depth + 1;
        if self.stack.len() <= self.floor() {
            return Err(PickleError::Malformed {
                what: "APPEND without a list",
                pos,
            });
        }
        let (target, depth, weight) = match self.stack.last_mut() {
            Some(Slot(v, d, w)) => (v, d, w),
            None => {
                return Err(PickleError::Malformed {
                    what: "APPEND without a list",
                    pos,
                })
            }
        };
        match target {
            Value::List(l) => l.extend(items),
            _ => {
                return Err(PickleError::Malformed {
                    what: "APPEND to a non-list",
                    pos,
                })
            }
        }
        *depth = (*depth).max(added);
        *weight = weight.saturating_add(child_weight);
        if *depth > MAX_DEPTH {
            return Err(PickleError::TooComplex {
                what: "nesting too deep",
                pos,
            });
        }
        Ok(())
    }

    /// SETITEM(S) with pairs already flattened by [`flat`].
    fn set_items(&mut self, items: Vec<(Value, Value)>) -> Result<(), PickleError> {
        let pos = self.pos;
        let added = pairs_weight(&items);
        if self.stack.len() <= self.floor() {
            return Err(PickleError::Malformed {
                what: "stack underflow",
                pos,
            });
        }
        match self.stack.last_mut() {
            Some(Slot(Value::Dict(d), _, w)) => {
                d.extend(items);
                *w = w.saturating_add(added);
                Ok(())
            }
            _ => Err(PickleError::Malformed {
                what: "SETITEM on a non-dict",
                pos,
            }),
        }
    }

    fn utf8(&mut self, n: usize) -> Result<String, PickleError> {
        let pos = self.pos;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| PickleError::Malformed {
                what: "invalid UTF-8",
                pos,
            })
    }

    fn ascii(&mut self, n: usize) -> Result<String, PickleError> {
        let pos = self.pos;
        let b = self.take(n)?;
        if !b.is_ascii() {
            return Err(PickleError::NonAscii { pos });
        }
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}

/// Dicts never carry datapoints; their keys and values are kept shallow (containers become
/// `None`) so depth and weight stay bounded.
fn flat(x: Value) -> Value {
    match x {
        Value::List(_) | Value::Tuple(_) | Value::Dict(_) => Value::None,
        other => other,
    }
}

/// Pairs up a MARK's items for DICT / SETITEMS, flattened.
fn flat_pairs(items: Vec<Value>) -> Option<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((flat(k), flat(v)));
    }
    Some(out)
}

/// Weight of flattened dict pairs (all scalars).
fn pairs_weight(p: &[(Value, Value)]) -> usize {
    p.iter()
        .map(|(k, v)| k.scalar_weight() + v.scalar_weight())
        .fold(0usize, usize::saturating_add)
}

/// Little-endian two's-complement int of LONG1/LONG4.
fn long_le(b: &[u8]) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    let negative = b[b.len() - 1] & 0x80 != 0;
    // Strip redundant sign-extension bytes.
    let mut len = b.len();
    let pad = if negative { 0xff } else { 0x00 };
    while len > 1 && b[len - 1] == pad && (b[len - 2] & 0x80 != 0) == negative {
        len -= 1;
    }
    if len > 8 {
        // A positive value of exactly 9 bytes with a zero top byte may still fit u64.
        if !negative && len == 9 && b[8] == 0 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            return Value::UInt(u64::from_le_bytes(a));
        }
        return Value::BigInt;
    }
    let mut a = [pad; 8];
    a[..len].copy_from_slice(&b[..len]);
    let v = i64::from_le_bytes(a);
    if !negative && v < 0 {
        Value::UInt(v as u64)
    } else {
        Value::Int(v)
    }
}

fn parse_int_text(l: &[u8]) -> Option<Value> {
    let s = std::str::from_utf8(l).ok()?.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::Int(i));
    }
    if let Ok(u) = s.parse::<u64>() {
        return Some(Value::UInt(u));
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())).then_some(Value::BigInt)
}

fn parse_usize(l: &[u8]) -> Option<usize> {
    std::str::from_utf8(l).ok()?.trim().parse().ok()
}

/// Protocol-0 STRING argument: a Python 2 `repr` of a str, quoted with ' or ".
fn unquote_py2(l: &[u8]) -> Option<String> {
    if l.len() < 2 {
        return None;
    }
    let q = l[0];
    if (q != b'\'' && q != b'"') || l[l.len() - 1] != q {
        return None;
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *body.get(i + 1)?;
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Protocol-0 UNICODE argument: raw-unicode-escape (latin-1 bytes, `\uXXXX`, `\UXXXXXXXX`).
fn raw_unicode_escape(l: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        let c = l[i];
        if c == b'\\' && i + 1 < l.len() && (l[i + 1] == b'u' || l[i + 1] == b'U') {
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            let h = std::str::from_utf8(l.get(i + 2..i + 2 + n)?).ok()?;
            out.push(char::from_u32(u32::from_str_radix(h, 16).ok()?)?);
            i += 2 + n;
        } else {
            out.push(c as char); // latin-1
            i += 1;
        }
    }
    Some(out)
}

/// Nodes a frame of `len` bytes may copy through the memo and DUP: linear in its size.
/// Python's pickler memoises every string and tuple once, which costs a Graphite frame about
/// 0.2–0.75 nodes per byte; twice the size leaves room and bounds a hostile frame's work and
/// memory to a small multiple of its length.
pub fn copy_budget(len: usize) -> usize {
    len.saturating_mul(2).saturating_add(1024)
}

/// Decodes one pickle payload (without its length header) into a plain value.
pub fn decode_value(payload: &[u8]) -> Result<Value, PickleError> {
    Machine {
        data: payload,
        pos: 0,
        stack: Vec::with_capacity(16),
        marks: Vec::with_capacity(4),
        memo: HashMap::new(),
        budget: copy_budget(payload.len()),
    }
    .run()
}

/// What one frame yielded: the good datapoints and the count of each kind of bad item.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    /// Datapoints to store, in frame order.
    pub points: Vec<Datapoint>,
    /// Items that are not `(name, (timestamp, value))` or hold ints outside 64 bits.
    pub bad_shape: u64,
    /// Items with an empty name or control characters in it.
    pub bad_name: u64,
    /// Items with a NaN or infinite timestamp or value.
    pub non_finite: u64,
}

/// A number from a pickled value: ints and floats as they are; numeric strings (statsd's
/// protocol-0 frames carry values as strings) become floats, as carbon's own `float()` does;
/// bools become 0/1.
fn number(v: &Value) -> Option<Number> {
    match v {
        Value::Int(i) => Some(Number::Int(*i)),
        Value::UInt(u) => Some(Number::UInt(*u)),
        Value::Float(f) => Some(Number::Float(*f)),
        Value::Bool(b) => Some(Number::Int(*b as i64)),
        Value::Str(s) => s.trim().parse::<f64>().ok().map(Number::Float),
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .map(Number::Float),
        _ => None,
    }
}

/// Sorts one decoded item into `out`.
pub fn push_item(item: Value, out: &mut Decoded) {
    let (name, pair) = match item {
        Value::Tuple(mut v) | Value::List(mut v) if v.len() == 2 => {
            let pair = v.pop();
            let name = v.pop();
            (name, pair)
        }
        _ => {
            out.bad_shape += 1;
            return;
        }
    };
    let name = match name {
        Some(Value::Str(s)) => s,
        Some(Value::Bytes(b)) => match String::from_utf8(b) {
            Ok(s) => s,
            Err(_) => {
                out.bad_name += 1;
                return;
            }
        },
        _ => {
            out.bad_shape += 1;
            return;
        }
    };
    let (ts, val) = match pair {
        Some(Value::Tuple(v)) | Some(Value::List(v)) if v.len() == 2 => {
            match (number(&v[0]), number(&v[1])) {
                (Some(t), Some(x)) => (t, x),
                _ => {
                    out.bad_shape += 1;
                    return;
                }
            }
        }
        _ => {
            out.bad_shape += 1;
            return;
        }
    };
    accept(name, ts, val, out);
}

/// Keeps a well-formed item, or counts why not.
fn accept(name: String, ts: Number, val: Number, out: &mut Decoded) {
    if validate_metric_name(&name).is_err() {
        out.bad_name += 1;
        return;
    }
    if !ts.is_finite() || !val.is_finite() {
        out.non_finite += 1;
        return;
    }
    out.points.push(Datapoint {
        metric: name,
        point: Point {
            timestamp: ts,
            value: val,
        },
    });
}

/// The fast path's reader (see the module doc). Every method returns `None` on anything
/// outside the shape, and the caller falls back to the machine.
struct Fast<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Fast<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn len4(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// An optional BINPUT / LONG_BINPUT / MEMOIZE after an object (nothing reads the memo;
    /// an id the machine would refuse declines the fast path).
    fn memo_put(&mut self) -> Option<()> {
        let id = match self.peek() {
            Some(b'q') => self.take(2)?[1] as usize,
            Some(b'r') => {
                self.pos += 1;
                self.len4()?
            }
            Some(0x94) => {
                self.pos += 1;
                0
            }
            _ => 0,
        };
        (id <= self.data.len()).then_some(())
    }

    fn name(&mut self) -> Option<String> {
        let (bytes, ascii_only) = match self.u8()? {
            b'X' => {
                let n = self.len4()?;
                (self.take(n)?, false)
            }
            0x8c => {
                let n = self.u8()? as usize;
                (self.take(n)?, false)
            }
            b'U' => {
                let n = self.u8()? as usize;
                (self.take(n)?, true)
            }
            b'T' => {
                let n = self.len4()?;
                (self.take(n)?, true)
            }
            _ => return None,
        };
        if ascii_only && !bytes.is_ascii() {
            return None;
        }
        std::str::from_utf8(bytes).ok().map(str::to_string)
    }

    fn number(&mut self) -> Option<Number> {
        Some(match self.u8()? {
            b'G' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Number::Float(f64::from_be_bytes(a))
            }
            b'J' => Number::Int(self.len4()? as u32 as i32 as i64),
            b'K' => Number::Int(self.u8()? as i64),
            b'M' => {
                let b = self.take(2)?;
                Number::Int(u16::from_le_bytes([b[0], b[1]]) as i64)
            }
            _ => return None,
        })
    }

    /// A MARK, if one is next.
    fn mark(&mut self) -> bool {
        let m = self.peek() == Some(b'(');
        if m {
            self.pos += 1;
        }
        m
    }

    /// Closes a 2-tuple: TUPLE after a MARK, else TUPLE2; then an optional put.
    fn tuple(&mut self, marked: bool) -> Option<()> {
        if self.u8()? != if marked { b't' } else { 0x86 } {
            return None;
        }
        self.memo_put()
    }

    /// `name [put] ts value TUPLE2 [put] TUPLE2 [put]` (Python), or the same with each tuple
    /// as MARK…TUPLE (serde-pickle).
    fn item(&mut self, out: &mut Decoded) -> Option<()> {
        let outer = self.mark();
        let name = self.name()?;
        self.memo_put()?;
        let inner = self.mark();
        let ts = self.number()?;
        let val = self.number()?;
        self.tuple(inner)?;
        self.tuple(outer)?;
        accept(name, ts, val, out);
        Some(())
    }
}

/// The fast path (see the module doc): `Some` only for a frame in the senders' shape.
fn decode_fast(payload: &[u8]) -> Option<Decoded> {
    let mut r = Fast {
        data: payload,
        pos: 0,
    };
    if r.peek()? == 0x80 {
        r.pos += 1;
        if r.u8()? > 5 {
            return None;
        }
    }
    if r.peek()? == 0x95 {
        r.take(9)?;
    }
    if r.u8()? != b']' {
        return None;
    }
    r.memo_put()?;
    let mut out = Decoded {
        points: Vec::with_capacity(payload.len() / 40 + 1),
        ..Decoded::default()
    };
    loop {
        match r.peek()? {
            b'.' => return Some(out),
            b'(' => {
                r.pos += 1;
                while r.peek()? != b'e' {
                    r.item(&mut out)?;
                }
                r.pos += 1;
            }
            _ => {
                r.item(&mut out)?;
                if r.u8()? != b'a' {
                    return None;
                }
            }
        }
    }
}

/// Decodes a pickle payload holding a list of `(name, (timestamp, value))`.
pub fn decode_datapoints(payload: &[u8]) -> Result<Decoded, PickleError> {
    match decode_fast(payload) {
        Some(d) => Ok(d),
        None => decode_general(payload),
    }
}

/// [`decode_datapoints`] through the machine only.
fn decode_general(payload: &[u8]) -> Result<Decoded, PickleError> {
    let items = match decode_value(payload)? {
        Value::List(v) | Value::Tuple(v) => v,
        _ => return Err(PickleError::NotAList),
    };
    let mut out = Decoded {
        points: Vec::with_capacity(items.len()),
        ..Decoded::default()
    };
    for item in items {
        push_item(item, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphite_list_protocol_2() {
        // [('a.b', (1700000000, 1.5))] as python3 pickle.dumps(protocol=2) writes it
        let p = b"\x80\x02]q\x00X\x03\x00\x00\x00a.bq\x01J\x00\xf1SeG?\xf8\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03a.";
        let d = decode_datapoints(p).unwrap();
        assert_eq!(d.points.len(), 1);
        assert_eq!(d.points[0].metric, "a.b");
        assert_eq!(d.points[0].point.timestamp, Number::Int(1_700_000_000));
        assert_eq!(d.points[0].point.value, Number::Float(1.5));
    }

    #[test]
    fn nesting_bomb_is_refused_without_recursion() {
        // 100,000 nested 1-tuples: must be refused, not overflow the stack.
        let mut p = vec![0x80, 2, b'N'];
        p.extend(std::iter::repeat_n(0x85u8, 100_000));
        p.push(b'.');
        assert!(matches!(
            decode_value(&p),
            Err(PickleError::TooComplex { .. })
        ));
    }

    #[test]
    fn memo_bomb_is_refused() {
        // a 10,000-item list memoised, then fetched 1,000 times
        let mut p = vec![0x80, 2, b']', b'('];
        p.extend(std::iter::repeat_n(b'N', 10_000));
        p.extend_from_slice(b"eq\x00");
        p.push(b'(');
        for _ in 0..1000 {
            p.extend_from_slice(b"h\x00");
        }
        p.extend_from_slice(b"l.");
        assert!(matches!(
            decode_value(&p),
            Err(PickleError::TooComplex { .. })
        ));
    }

    /// The frames: `]( N×4000 e` then MEMOIZE 4,000 times (each copying the
    /// 4,000-item list; ~480 MB before every copy was charged), and a list copied by
    /// `q\x00` repeats. Both must be refused after a linear amount of work.
    #[test]
    fn memoize_and_binput_bombs_are_refused() {
        let mut p = vec![0x80, 4, b']', b'('];
        p.extend(std::iter::repeat_n(b'N', 4000));
        p.push(b'e');
        p.extend(std::iter::repeat_n(0x94u8, 4000));
        p.push(b'.');
        assert!(matches!(
            decode_value(&p),
            Err(PickleError::TooComplex { .. })
        ));

        let mut p = vec![0x80, 2, b']', b'('];
        p.extend(std::iter::repeat_n(b'N', 20_000));
        p.push(b'e');
        for _ in 0..130_000 {
            p.extend_from_slice(b"q\x00");
        }
        p.push(b'.');
        assert!(matches!(
            decode_value(&p),
            Err(PickleError::TooComplex { .. })
        ));

        // LONG_BINPUT to sparse ids and protocol-0 PUT pay as well.
        let mut p = vec![b']', b'('];
        p.extend(std::iter::repeat_n(b'N', 1000));
        p.push(b'e');
        for i in 0..200u32 {
            p.push(b'r');
            p.extend_from_slice(&(i * 7).to_le_bytes());
            p.extend_from_slice(format!("p{i}\n").as_bytes());
        }
        p.push(b'.');
        assert!(matches!(
            decode_value(&p),
            Err(PickleError::TooComplex { .. })
        ));
    }

    /// What Python's pickler writes for a Graphite list (protocol 2: every string and tuple
    /// memoised, appends in batches of 1,000) with the shortest names and values, the
    /// costliest legitimate frame per byte, decodes within the budget.
    #[test]
    fn pythons_memo_heavy_frames_fit_the_budget() {
        let n = 5000u32;
        let mut p = vec![0x80, 2, b']', b'q', 0];
        let mut memo = 1u32;
        let mut put = |p: &mut Vec<u8>| {
            if memo < 256 {
                p.extend_from_slice(&[b'q', memo as u8]);
            } else {
                p.push(b'r');
                p.extend_from_slice(&memo.to_le_bytes());
            }
            memo += 1;
        };
        for i in 0..n {
            if i % 1000 == 0 {
                p.push(b'(');
            }
            p.extend_from_slice(b"X\x01\x00\x00\x00a");
            put(&mut p);
            p.extend_from_slice(b"K\x01K\x02\x86");
            put(&mut p);
            p.push(0x86);
            put(&mut p);
            if i % 1000 == 999 {
                p.push(b'e');
            }
        }
        p.push(b'.');
        let d = decode_datapoints(&p).unwrap();
        assert_eq!(d.points.len(), n as usize);
    }

    /// The fast path takes the senders' frames and gives exactly what the machine gives;
    /// on any mutation it either declines or still agrees with the machine.
    #[test]
    fn fast_path_agrees_with_the_machine() {
        let items: Vec<(String, (f64, f64))> = (0..700)
            .map(|i| {
                (
                    format!("a.b-{i}"),
                    (1_700_000_000.0 + i as f64, i as f64 * 0.5),
                )
            })
            .collect();
        let serde =
            serde_pickle::to_vec(&items, serde_pickle::SerOptions::new().proto_v2()).unwrap();
        // Python's pickle.dumps(protocol=2) of [('a.b', (1700000000, 1.5))], with memo puts.
        let python = b"\x80\x02]q\x00X\x03\x00\x00\x00a.bq\x01J\x00\xf1SeG?\xf8\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03a.".to_vec();
        // py2 strings, ints of each width, a bad name and a NaN, MARK…APPENDS twice.
        let mut mixed = b"\x80\x02](U\x03a.bK\x01M\x02\x01\x86\x86T\x01\x00\x00\x00cJ\xff\xff\xff\xffG\x7f\xf8\x00\x00\x00\x00\x00\x00\x86\x86e(".to_vec();
        mixed.extend_from_slice(
            b"X\x00\x00\x00\x00K\x01K\x02\x86\x86\x8c\x01dK\x01K\x02\x86\x94\x86\x94e.",
        );
        for frame in [&serde, &python, &mixed] {
            let fast = decode_fast(frame).expect("the senders' shape takes the fast path");
            assert_eq!(Ok(fast), decode_general(frame));
        }
        let m = decode_fast(&mixed).unwrap();
        assert_eq!((m.points.len(), m.bad_name, m.non_finite), (2, 1, 1));
        assert_eq!(m.points[0].point.value, Number::Int(258));
        assert_eq!(m.points[1].metric, "d");
        // Every single-byte change and every truncation of the small frames.
        let mut agreed = 0;
        let small_serde = serde_pickle::to_vec(
            &items[..2].to_vec(),
            serde_pickle::SerOptions::new().proto_v2(),
        )
        .unwrap();
        for frame in [&python, &mixed, &small_serde] {
            for i in 0..frame.len() {
                for b in [
                    0u8, 1, 0x7f, 0x80, 0xff, b'(', b'e', b'a', b'.', 0x86, b'q', b'h', b't',
                ] {
                    let mut f = frame.clone();
                    f[i] = b;
                    if let Some(fast) = decode_fast(&f) {
                        assert_eq!(Ok(fast), decode_general(&f), "mutated at {i} to {b:#x}");
                        agreed += 1;
                    }
                }
                if let Some(fast) = decode_fast(&frame[..i]) {
                    assert_eq!(Ok(fast), decode_general(&frame[..i]));
                }
            }
        }
        assert!(
            agreed > 50,
            "mutations that stay in the shape were compared ({agreed})"
        );
        // Shapes outside the fast path still decode through the machine.
        let memo_get =
            b"\x80\x02](X\x01\x00\x00\x00aq\x01K\x01K\x02\x86\x86h\x01K\x03K\x04\x86\x86e.";
        assert!(decode_fast(memo_get).is_none());
        assert_eq!(decode_datapoints(memo_get).unwrap().points.len(), 2);
    }

    /// Dicts cannot hide nesting: their keys and values are kept as scalars.
    #[test]
    fn dict_values_are_flattened() {
        assert_eq!(
            decode_value(b"(K\x01]K\x02]d.").unwrap(),
            Value::Dict(vec![
                (Value::Int(1), Value::None),
                (Value::Int(2), Value::None)
            ])
        );
        // 10,000 levels of list-in-dict-in-list: refused or flat, never deep.
        let mut p = Vec::new();
        for _ in 0..10_000 {
            p.extend_from_slice(b"(K\x00(");
        }
        p.push(b'N');
        for _ in 0..10_000 {
            p.extend_from_slice(b"ld");
        }
        p.push(b'.');
        assert_eq!(
            decode_value(&p).unwrap(),
            Value::Dict(vec![(Value::Int(0), Value::None)])
        );
    }

    #[test]
    fn structural_errors_are_errors() {
        assert_eq!(decode_value(b""), Err(PickleError::Truncated));
        assert_eq!(decode_value(b"\x80\x02]"), Err(PickleError::Truncated));
        assert!(decode_value(b"(.").is_err(), "STOP inside MARK");
        assert!(decode_value(b"a.").is_err(), "APPEND on empty stack");
        assert!(decode_value(b"(N\x86.").is_err(), "TUPLE2 across a MARK");
        assert!(decode_value(b"h\x05.").is_err(), "GET of a missing memo");
        assert!(decode_value(b"\xff.").is_err(), "unknown opcode");
        assert_eq!(decode_datapoints(b"N."), Err(PickleError::NotAList));
        // POP_MARK and POP are fine
        assert_eq!(decode_value(b"](N1.").unwrap(), Value::List(vec![]));
        assert_eq!(decode_value(b"]N0.").unwrap(), Value::List(vec![]));
    }

    #[test]
    fn longs_and_strings() {
        assert_eq!(long_le(&[]), Value::Int(0));
        assert_eq!(long_le(&[0xff]), Value::Int(-1));
        assert_eq!(
            long_le(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]),
            Value::UInt(1 << 63)
        );
        assert_eq!(long_le(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), Value::BigInt);
        assert_eq!(unquote_py2(b"'a\\nb\\x41'").as_deref(), Some("a\nbA"));
        assert_eq!(
            raw_unicode_escape(b"caf\xe9\\u00e9").as_deref(),
            Some("caféé")
        );
    }

    #[test]
    fn bad_items_are_counted_not_fatal() {
        // [('ok', (1, 2)), None, ('', (1, 2)), ('nan', (1, float('nan'))), ('s', ('1', '2.5'))]
        let p = b"\x80\x02](X\x02\x00\x00\x00okK\x01K\x02\x86\x86NX\x00\x00\x00\x00K\x01K\x02\x86\x86X\x03\x00\x00\x00nanK\x01G\x7f\xf8\x00\x00\x00\x00\x00\x00\x86\x86X\x01\x00\x00\x00sX\x01\x00\x00\x001X\x03\x00\x00\x002.5\x86\x86e.";
        let d = decode_datapoints(p).unwrap();
        assert_eq!(d.points.len(), 2, "{d:?}");
        assert_eq!(
            d.points[1].point.value,
            Number::Float(2.5),
            "numeric strings, as statsd sends"
        );
        assert_eq!((d.bad_shape, d.bad_name, d.non_finite), (1, 1, 1));
    }
}
