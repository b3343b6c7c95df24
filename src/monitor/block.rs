//! The compact encoding of a block of monitored requests: how the writer stores a batch's
//! records in one row of `monitor_request_blocks` (queries in [`crate::db::monitor`]).
//!
//! Pure functions, no I/O. A row per request cost SQLite (or diesel) a B-tree insert, a
//! secondary-index insert and the binding of eight values per request, most of the monitor's
//! cost per request at level 2 (docs/monitor.md, "What a monitored request costs"); a block is
//! one row per writer batch (up to `[monitor] batch_max` records), encoded here in a few tens
//! of nanoseconds a record and about 12 bytes.
//!
//! Format 1, all integers unsigned LEB128 varints unless said otherwise:
//!
//! ```text
//! u8 format (1)
//! strings: count, then each: byte length, UTF-8 bytes
//! records: count
//! base time: zigzag varint, epoch ms (the first record's time)
//! each record:
//!   u8 flags (1 = has a group tag, 2 = has a breakdown; other bits must be 0)
//!   time: zigzag varint, ms since the previous record (the first: since the base)
//!   route, method: string indices; status; duration µs
//!   version, ip, user: string indices (an empty user is the empty string)
//!   [group: string index]                           when flags & 1
//!   [redis µs, sql µs, graphite µs, template µs]    when flags & 2
//! ```
//!
//! Records keep the batch's order. Decoding checks every length, index and flag against the
//! data and fails with [`BlockError`] instead of panicking or allocating beyond it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use super::messages::{Breakdown, ClientIp, Hit, RequestRecord};

/// The format byte this module writes and reads.
pub const FORMAT: u8 = 1;

const HAS_GROUP: u8 = 1;
const HAS_BREAKDOWN: u8 = 2;

/// A stored block that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("monitor block: {what} at byte {at}")]
pub struct BlockError {
    /// What is wrong.
    pub what: &'static str,
    /// Where in the data.
    pub at: usize,
}

/// A batch's records, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The oldest record's time, epoch ms (`i64::MAX` for no record).
    pub first_ms: i64,
    /// The newest record's time, epoch ms (`i64::MIN` for no record).
    pub last_ms: i64,
    /// How many records.
    pub records: usize,
    /// The encoding.
    pub data: Vec<u8>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The strings of a block, each once, in order of first use.
#[derive(Default)]
struct Strings<'a> {
    list: Vec<Cow<'a, str>>,
    index: HashMap<&'a str, u32>,
    addrs: HashMap<IpAddr, u32>,
}

impl<'a> Strings<'a> {
    fn of(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(Cow::Borrowed(s));
        self.index.insert(s, i);
        i
    }

    fn of_addr(&mut self, a: IpAddr) -> u32 {
        if let Some(&i) = self.addrs.get(&a) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(Cow::Owned(a.to_string()));
        self.addrs.insert(a, i);
        i
    }
}

/// One field's last string and its index: the same shared string as the previous record's
/// (nearly always: route, method, version and user are `Arc<str>`s shared by the middleware)
/// skips the hash lookup.
struct Last<'a>(Option<(&'a str, u32)>);

impl<'a> Last<'a> {
    fn index(&mut self, s: &'a str, strings: &mut Strings<'a>) -> u32 {
        if let Some((l, i)) = self.0 {
            if std::ptr::eq(l, s) {
                return i;
            }
        }
        let i = strings.of(s);
        self.0 = Some((s, i));
        i
    }
}

/// Encodes `hits` in their order.
pub fn encode(hits: &[Hit]) -> Block {
    let mut strings = Strings::default();
    let (mut route, mut method, mut version, mut user) =
        (Last(None), Last(None), Last(None), Last(None));
    let mut last_addr: Option<(IpAddr, u32)> = None;
    let mut body = Vec::with_capacity(hits.len() * 12 + 16);
    let base = hits.first().map_or(0, |h| h.time_ms);
    let (mut first_ms, mut last_ms) = (i64::MAX, i64::MIN);
    let mut prev = base;
    for h in hits {
        first_ms = first_ms.min(h.time_ms);
        last_ms = last_ms.max(h.time_ms);
        let mut flags = 0;
        if h.group.is_some() {
            flags |= HAS_GROUP;
        }
        if h.breakdown.is_some() {
            flags |= HAS_BREAKDOWN;
        }
        body.push(flags);
        put_varint(&mut body, zigzag(h.time_ms.wrapping_sub(prev)));
        prev = h.time_ms;
        put_varint(&mut body, u64::from(route.index(&h.route, &mut strings)));
        put_varint(&mut body, u64::from(method.index(&h.method, &mut strings)));
        put_varint(&mut body, u64::from(h.status));
        put_varint(&mut body, h.duration_us);
        put_varint(
            &mut body,
            u64::from(version.index(&h.version, &mut strings)),
        );
        let ip = match &h.ip {
            ClientIp::Unknown => strings.of(""),
            ClientIp::Text(t) => strings.of(t),
            ClientIp::Addr(a) => match last_addr {
                Some((l, i)) if l == *a => i,
                _ => {
                    let i = strings.of_addr(*a);
                    last_addr = Some((*a, i));
                    i
                }
            },
        };
        put_varint(&mut body, u64::from(ip));
        let u = match &h.user {
            Some(u) => user.index(u, &mut strings),
            None => strings.of(""),
        };
        put_varint(&mut body, u64::from(u));
        if let Some(g) = &h.group {
            put_varint(&mut body, u64::from(strings.of(g)));
        }
        if let Some(b) = &h.breakdown {
            for v in [b.redis_us, b.sql_us, b.graphite_us, b.template_us] {
                put_varint(&mut body, v);
            }
        }
    }
    let text: usize = strings.list.iter().map(|s| s.len() + 2).sum();
    let mut data = Vec::with_capacity(body.len() + text + 24);
    data.push(FORMAT);
    put_varint(&mut data, strings.list.len() as u64);
    for s in &strings.list {
        put_varint(&mut data, s.len() as u64);
        data.extend_from_slice(s.as_bytes());
    }
    put_varint(&mut data, hits.len() as u64);
    put_varint(&mut data, zigzag(base));
    data.extend_from_slice(&body);
    Block {
        first_ms,
        last_ms,
        records: hits.len(),
        data,
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, what: &'static str) -> Result<T, BlockError> {
        Err(BlockError { what, at: self.at })
    }

    fn byte(&mut self) -> Result<u8, BlockError> {
        match self.data.get(self.at) {
            Some(&b) => {
                self.at += 1;
                Ok(b)
            }
            None => self.fail("truncated"),
        }
    }

    fn varint(&mut self) -> Result<u64, BlockError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return self.fail("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.fail("varint longer than 10 bytes")
    }

    /// A count of items that each take at least one byte: never more than the bytes left.
    fn count(&mut self) -> Result<usize, BlockError> {
        let n = self.varint()?;
        if n > (self.data.len() - self.at) as u64 {
            return self.fail("count larger than the data");
        }
        Ok(n as usize)
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], BlockError> {
        let left = (self.data.len() - self.at) as u64;
        if n > left {
            return self.fail("string longer than the data");
        }
        let s = &self.data[self.at..self.at + n as usize];
        self.at += n as usize;
        Ok(s)
    }

    fn index<'s>(&mut self, strings: &'s [&'a str]) -> Result<&'s str, BlockError> {
        let i = self.varint()?;
        match usize::try_from(i).ok().and_then(|i| strings.get(i)) {
            Some(s) => Ok(s),
            None => self.fail("string index out of range"),
        }
    }
}

/// Decodes a block written by [`encode`], in the batch's order.
pub fn decode(data: &[u8]) -> Result<Vec<RequestRecord>, BlockError> {
    let mut r = Reader { data, at: 0 };
    if r.byte()? != FORMAT {
        return Err(BlockError {
            what: "unknown format",
            at: 0,
        });
    }
    let n = r.count()?;
    let mut strings: Vec<&str> = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.varint()?;
        let at = r.at;
        let bytes = r.bytes(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => strings.push(s),
            Err(_) => {
                return Err(BlockError {
                    what: "string not UTF-8",
                    at,
                })
            }
        }
    }
    let n = r.count()?;
    let mut time = unzigzag(r.varint()?);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let flags = r.byte()?;
        if flags & !(HAS_GROUP | HAS_BREAKDOWN) != 0 {
            return r.fail("unknown flags");
        }
        time = time.wrapping_add(unzigzag(r.varint()?));
        let route = r.index(&strings)?;
        let method = r.index(&strings)?;
        let status = match u16::try_from(r.varint()?) {
            Ok(s) => s,
            Err(_) => return r.fail("status out of range"),
        };
        let duration_us = r.varint()?;
        let version = r.index(&strings)?;
        let ip = r.index(&strings)?;
        let user = r.index(&strings)?;
        let group = if flags & HAS_GROUP != 0 {
            Some(r.index(&strings)?.to_string())
        } else {
            None
        };
        let breakdown = if flags & HAS_BREAKDOWN != 0 {
            Some(Breakdown {
                redis_us: r.varint()?,
                sql_us: r.varint()?,
                graphite_us: r.varint()?,
                template_us: r.varint()?,
            })
        } else {
            None
        };
        out.push(RequestRecord {
            time_ms: time,
            route: route.to_string(),
            method: method.to_string(),
            status,
            duration_us,
            version: version.to_string(),
            ip: ip.to_string(),
            user: user.to_string(),
            group,
            breakdown,
        });
    }
    if r.at != data.len() {
        return r.fail("trailing bytes");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn hit(i: u64, route: &Arc<str>, version: &Arc<str>) -> Hit {
        Hit {
            time_ms: 1_800_000_000_000 + (i as i64 * 37) % 1000 - 400,
            route: route.clone(),
            method: if i % 5 == 0 {
                "POST".into()
            } else {
                "GET".into()
            },
            status: if i % 7 == 0 { 503 } else { 200 },
            duration_us: i * i * 1_000_003,
            version: version.clone(),
            ip: match i % 3 {
                0 => ClientIp::Addr(IpAddr::from([10, 0, 0, (i % 4) as u8])),
                1 => ClientIp::Text("::1".into()),
                _ => ClientIp::Unknown,
            },
            user: (i % 4 != 0).then(|| Arc::from(format!("user{}", i % 3))),
            group: (i % 6 == 0).then(|| "canary".into()),
            breakdown: (i % 4 == 1).then_some(Breakdown {
                redis_us: i,
                sql_us: u64::MAX - i,
                graphite_us: 0,
                template_us: 7,
            }),
        }
    }

    fn hits(n: u64) -> Vec<Hit> {
        let routes: [Arc<str>; 2] = ["/api".into(), "/flux/metric_data_post".into()];
        let version: Arc<str> = "0.1.0 (abc1234)".into();
        (0..n)
            .map(|i| hit(i, &routes[(i % 2) as usize], &version))
            .collect()
    }

    #[test]
    fn round_trip_keeps_every_field_and_the_order() {
        for n in [0, 1, 2, 1000] {
            let hs = hits(n);
            let b = encode(&hs);
            assert_eq!(b.records, hs.len());
            let back = decode(&b.data).unwrap();
            let want: Vec<RequestRecord> = hs.iter().map(Hit::to_record).collect();
            assert_eq!(back, want, "n = {n}");
            if n > 0 {
                assert_eq!(b.first_ms, want.iter().map(|r| r.time_ms).min().unwrap());
                assert_eq!(b.last_ms, want.iter().map(|r| r.time_ms).max().unwrap());
            }
        }
    }

    #[test]
    fn shared_strings_are_stored_once_and_records_are_small() {
        let hs = hits(1000);
        let b = encode(&hs);
        // Distinct strings: 2 routes, 2 methods, 1 version, 4 + 1 + 1 IPs / users / "" and
        // 1 group, each once: the records themselves stay near a dozen bytes.
        let per_record = b.data.len() as f64 / 1000.0;
        assert!(per_record < 20.0, "{per_record} bytes a record");
        for s in ["/api", "0.1.0 (abc1234)", "canary", "10.0.0.1"] {
            let at = b
                .data
                .windows(s.len())
                .filter(|w| *w == s.as_bytes())
                .count();
            assert_eq!(at, 1, "{s} stored {at} times");
        }
    }

    #[test]
    fn equal_strings_in_different_allocations_share_an_entry() {
        let mut hs = hits(10);
        for (i, h) in hs.iter_mut().enumerate() {
            h.route = Arc::from(format!("/r{}", i % 2));
        }
        let b = encode(&hs);
        let at = b.data.windows(3).filter(|w| *w == b"/r1").count();
        assert_eq!(at, 1);
        assert_eq!(decode(&b.data).unwrap()[3].route, "/r1");
    }

    #[test]
    fn times_far_apart_and_before_the_epoch_round_trip() {
        let mut hs = hits(4);
        hs[0].time_ms = i64::MIN;
        hs[1].time_ms = i64::MAX;
        hs[2].time_ms = -1;
        hs[3].time_ms = 0;
        let back = decode(&encode(&hs).data).unwrap();
        let times: Vec<i64> = back.iter().map(|r| r.time_ms).collect();
        assert_eq!(times, vec![i64::MIN, i64::MAX, -1, 0]);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let data = encode(&hits(50)).data;
        for cut in 0..data.len() {
            assert!(decode(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert_eq!(decode(&longer).unwrap_err().what, "trailing bytes");
        // Every single-byte change either decodes to something or fails cleanly.
        for at in 0..data.len() {
            for v in [0x00, 0x7f, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[at] = v;
                let _ = decode(&bad);
            }
        }
        let mut bad = data.clone();
        bad[0] = 2;
        assert_eq!(decode(&bad).unwrap_err().what, "unknown format");
        // A huge count cannot make the decoder allocate beyond the data.
        let huge = [FORMAT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(
            decode(&huge).unwrap_err().what,
            "count larger than the data"
        );
        let long = [
            FORMAT, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ];
        assert!(decode(&long).is_err());
    }

    #[test]
    fn varints_and_zigzag_cover_the_range() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 2, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader { data: &out, at: 0 };
            assert_eq!(r.varint().unwrap(), v);
            assert_eq!(r.at, out.len());
        }
        for v in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
