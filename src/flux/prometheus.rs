//! Prometheus remote_write, pure part: the protobuf messages, snappy decoding with a bound,
//! canonical series names and whole-request validation. No I/O and no clock (the handler
//! passes [`Limits`]), so every rule is unit-tested here.
//!
//! Wire format (remote_write 1.0): the body is a snappy *block* (not framed) of a protobuf
//! `prometheus.WriteRequest { repeated TimeSeries timeseries = 1; }`, each `TimeSeries` with
//! `repeated Label labels = 1` (`name = 1`, `value = 2`) and `repeated Sample samples = 2`
//! (`double value = 1`, `int64 timestamp = 2`, milliseconds). The few messages are declared
//! here with `prost`'s derive (no protoc), for encoding (tests, the benchmark) and [`decode`];
//! the handler reads the bytes with [`validate_raw`] instead, one pass that borrows label names
//! and values (no allocation per label) and gives the same answers. Fields we do not use
//! (metadata, exemplars, native histograms) are skipped by both.
//!
//! Naming: one labelled series is one metric, named canonically `name{a="1",b="2"}`: the
//! `__name__` label first, then the other labels sorted by name, values escaped as in
//! Prometheus' text format (`\\`, `\"`, `\n`); labels with an empty value are dropped (they do
//! not exist in Prometheus). A series without labels besides `__name__` is `name{}`, so a
//! labelled metric is always recognisable by its `{` (they are not sent to carbon). The
//! request's `x-tenant-id` / `x-server-id` headers become the labels `_tenant_id` /
//! `_server_id`, as Skyline's flux does. The metric is stored under `metrics.<canonical>`.
//!
//! Validation is whole-request: any bad series (name, label, length, label count, timestamp)
//! rejects the request with 400 naming each, and nothing of it is queued. Samples that
//! Prometheus itself marks stale (its staleness NaN) and other non-finite values are skipped
//! and counted, not refused: a scrape target may legitimately expose NaN, and refusing it
//! would make Prometheus drop the whole batch.
//!
//! Backpressure: none here (pure functions); bounds are [`Limits`].

use std::collections::HashMap;

use super::validate::{check_timestamp, FluxPoint, Limits as TimeLimits, Problem};

/// `prometheus.WriteRequest` (only the field we read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Its labels, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Its samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Prometheus' staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The bounds of one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest canonical name, in bytes.
    pub max_name_bytes: usize,
    /// Most labels per series (`__name__` included).
    pub max_labels: usize,
    /// Most series in one request.
    pub max_series_per_request: usize,
    /// Timestamp bounds (age, future skew).
    pub time: TimeLimits,
    /// How far back the metric actors store a point (`[horizon] full_duration_secs`):
    /// labelled series are stored only in Redis, so older samples are refused.
    pub keep_secs: i64,
}

/// Decompresses a snappy block, refusing (before allocating) one whose declared length is over
/// `max_decompressed` bytes.
pub fn decompress(body: &[u8], max_decompressed: usize) -> Result<Vec<u8>, Problem> {
    let len = snap::raw::decompress_len(body).map_err(|err| {
        Problem::request(
            "body",
            format!("the body is not a snappy block (Content-Encoding: snappy): {err}"),
        )
    })?;
    if len > max_decompressed {
        return Err(Problem::request(
            "body",
            format!(
                "the body decompresses to {len} bytes, over {max_decompressed} ([flux] prometheus_max_decompressed_bytes); lower queue_config.max_samples_per_send"
            ),
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|err| Problem::request("body", format!("the snappy body is corrupt: {err}")))
}

/// Decodes a (decompressed) `WriteRequest`.
pub fn decode(raw: &[u8]) -> Result<WriteRequest, Problem> {
    <WriteRequest as prost::Message>::decode(raw).map_err(|err| {
        Problem::request(
            "body",
            format!("the body is not a protobuf prometheus.WriteRequest: {err}"),
        )
    })
}

/// Encodes and compresses a request (what Prometheus sends): for tests and the benchmark.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Escapes a label value as Prometheus' text format does.
pub fn escape_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A short, printable form of a series for error messages.
fn describe(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&name.chars().take(64).collect::<String>());
        s.push_str("=\"");
        escape_value(&value.chars().take(64).collect::<String>(), &mut s);
        s.push('"');
        if s.len() > 300 {
            s.push('…');
            break;
        }
    }
    format!("{{{s}}}")
}

fn pairs(labels: &[Label]) -> Vec<(&str, &str)> {
    labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

/// The canonical name of a series: `name{a="1",b="2"}` (labels sorted by name, empty values
/// dropped, values escaped), with `extra` labels (the tenant and server headers) added.
pub fn canonical_name(
    labels: &[Label],
    extra: &[(&str, &str)],
    limits: &Limits,
) -> Result<String, String> {
    canonical_of(&pairs(labels), extra, limits)
}

/// [`canonical_name`] of borrowed `(name, value)` labels.
pub fn canonical_of(
    labels: &[(&str, &str)],
    extra: &[(&str, &str)],
    limits: &Limits,
) -> Result<String, String> {
    let mut name: Option<&str> = None;
    let mut rest: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + extra.len());
    for &(lname, lvalue) in labels {
        if lname == "__name__" {
            if name.replace(lvalue).is_some() {
                return Err("the series has two __name__ labels".into());
            }
            continue;
        }
        if !valid_label_name(lname) {
            return Err(format!(
                "invalid label name {:?} (letters, digits and _, not starting with a digit)",
                lname.chars().take(64).collect::<String>()
            ));
        }
        if lvalue.chars().any(|c| c.is_control() && c != '\n') {
            return Err(format!(
                "the value of label {lname:?} contains a control character"
            ));
        }
        if !lvalue.is_empty() {
            rest.push((lname, lvalue));
        }
    }
    for &(k, v) in extra {
        if !v.is_empty() && !rest.iter().any(|(n, _)| *n == k) {
            rest.push((k, v));
        }
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Err("the series has no __name__ label".into());
    };
    if !valid_metric_name(name) {
        return Err(format!(
            "invalid metric name {:?} (letters, digits, _ and :, not starting with a digit)",
            name.chars().take(64).collect::<String>()
        ));
    }
    if rest.len() + 1 > limits.max_labels {
        return Err(format!(
            "{} labels, over {} ([flux] prometheus_max_labels)",
            rest.len() + 1,
            limits.max_labels
        ));
    }
    rest.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if rest.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("the series has a label twice".into());
    }
    let mut out = String::with_capacity(name.len() + 2 + rest.len() * 24);
    out.push_str(name);
    out.push('{');
    for (i, (k, v)) in rest.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_value(v, &mut out);
        out.push('"');
    }
    out.push('}');
    if out.len() > limits.max_name_bytes {
        return Err(format!(
            "the canonical name is {} bytes, over {} ([flux] prometheus_max_name_bytes)",
            out.len(),
            limits.max_name_bytes
        ));
    }
    Ok(out)
}

/// True for a canonical labelled name (`name{…}`): such metrics are not sent to carbon.
pub fn is_labelled(metric: &str) -> bool {
    metric.ends_with('}') && metric.contains('{')
}

/// A validated request.
#[derive(Debug, Default)]
pub struct Accepted {
    /// The datapoints, in request order.
    pub points: Vec<FluxPoint>,
    /// Distinct series (canonical names) in the request.
    pub series: Vec<String>,
    /// Samples skipped because Prometheus marked them stale.
    pub stale: usize,
    /// Samples skipped for another NaN or an infinity.
    pub non_finite: usize,
}

/// Validates a whole request: every series named canonically, every sample's timestamp within
/// the bounds. Any problem rejects all of it (every problem reported, by series index).
pub fn validate(
    req: WriteRequest,
    extra: &[(&str, &str)],
    limits: &Limits,
) -> Result<Accepted, Vec<Problem>> {
    if req.timeseries.len() > limits.max_series_per_request {
        return Err(vec![too_many_series(req.timeseries.len(), limits)]);
    }
    let mut v = Validation::new(req.timeseries.len());
    let mut samples = Vec::new();
    for (i, ts) in req.timeseries.iter().enumerate() {
        samples.clear();
        samples.extend(ts.samples.iter().map(|s| (s.value, s.timestamp)));
        v.series(i, &pairs(&ts.labels), &samples, extra, limits);
    }
    v.finish()
}

fn too_many_series(n: usize, limits: &Limits) -> Problem {
    Problem::request(
        "timeseries",
        format!(
            "{n} series in one request, over {} ([flux] prometheus_max_series_per_request); lower queue_config.max_samples_per_send",
            limits.max_series_per_request
        ),
    )
}

/// A request being validated, one series at a time.
struct Validation {
    out: Accepted,
    problems: Vec<Problem>,
    seen: std::collections::HashSet<String>,
}

impl Validation {
    fn new(series: usize) -> Self {
        Validation {
            out: Accepted {
                points: Vec::with_capacity(series),
                series: Vec::with_capacity(series),
                ..Accepted::default()
            },
            problems: Vec::new(),
            seen: std::collections::HashSet::with_capacity(series),
        }
    }

    /// Series `i`: its labels and `(value, timestamp ms)` samples.
    fn series(
        &mut self,
        i: usize,
        labels: &[(&str, &str)],
        samples: &[(f64, i64)],
        extra: &[(&str, &str)],
        limits: &Limits,
    ) {
        let out = &mut self.out;
        let metric = match canonical_of(labels, extra, limits) {
            Ok(m) => m,
            Err(why) => {
                self.problems.push(Problem {
                    index: Some(i),
                    metric: Some(describe(labels)),
                    field: "labels".into(),
                    message: why,
                });
                return;
            }
        };
        let before = out.points.len();
        for &(value, timestamp) in samples {
            if !value.is_finite() {
                if value.to_bits() == STALE_NAN_BITS {
                    out.stale += 1;
                } else {
                    out.non_finite += 1;
                }
                continue;
            }
            let secs = timestamp.div_euclid(1000);
            let bad = match check_timestamp(secs, &limits.time) {
                Err(why) => Some(why),
                Ok(_) if secs < limits.time.now.saturating_sub(limits.keep_secs) => Some(format!(
                    "timestamp {secs} is older than {} seconds ([horizon] full_duration_secs); labelled series are stored only in Redis, so it would not be stored",
                    limits.keep_secs
                )),
                Ok(_) => None,
            };
            if let Some(why) = bad {
                out.points.truncate(before);
                self.problems.push(Problem {
                    index: Some(i),
                    metric: Some(metric),
                    field: "samples".into(),
                    message: why,
                });
                return;
            }
            out.points.push(FluxPoint {
                metric: metric.clone(),
                timestamp: secs,
                value,
            });
        }
        // A series with only skipped (stale) samples stores nothing and is not counted.
        if out.points.len() > before && !self.seen.contains(&metric) {
            self.seen.insert(metric.clone());
            out.series.push(metric);
        }
    }

    fn finish(self) -> Result<Accepted, Vec<Problem>> {
        if self.problems.is_empty() {
            Ok(self.out)
        } else {
            Err(self.problems)
        }
    }
}

/// Why [`validate_raw`] refused a request.
#[derive(Debug)]
pub enum RawRefusal {
    /// The bytes are not a WriteRequest.
    Decode(Problem),
    /// Bad series (all of them named), out of this many.
    Invalid(Vec<Problem>, usize),
}

/// Reads a protobuf varint at `*pos`.
fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// One field of a message at `*pos`: its number, wire type and, for length-delimited fields,
/// the bytes (else the fixed or varint value in `u64`).
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

fn field<'a>(buf: &'a [u8], pos: &mut usize) -> Option<(u64, Field<'a>)> {
    let key = varint(buf, pos)?;
    let value = match key & 7 {
        0 => Field::Varint(varint(buf, pos)?),
        1 => {
            let b: [u8; 8] = buf.get(*pos..*pos + 8)?.try_into().ok()?;
            *pos += 8;
            Field::Fixed64(u64::from_le_bytes(b))
        }
        2 => {
            let len = usize::try_from(varint(buf, pos)?).ok()?;
            let end = pos.checked_add(len)?;
            let b = buf.get(*pos..end)?;
            *pos = end;
            Field::Bytes(b)
        }
        5 => {
            buf.get(*pos..*pos + 4)?;
            *pos += 4;
            Field::Fixed32
        }
        _ => return None,
    };
    Some((key >> 3, value))
}

fn label(buf: &[u8]) -> Result<(&str, &str), &'static str> {
    let (mut name, mut value) = ("", "");
    let mut pos = 0;
    while pos < buf.len() {
        match field(buf, &mut pos).ok_or("a Label is truncated")? {
            (1, Field::Bytes(b)) => {
                name = std::str::from_utf8(b).map_err(|_| "a label name is not UTF-8")?
            }
            (2, Field::Bytes(b)) => {
                value = std::str::from_utf8(b).map_err(|_| "a label value is not UTF-8")?
            }
            (1 | 2, _) => return Err("a Label field has the wrong wire type"),
            _ => {}
        }
    }
    Ok((name, value))
}

fn sample(buf: &[u8]) -> Result<(f64, i64), &'static str> {
    let (mut value, mut ts) = (0.0, 0i64);
    let mut pos = 0;
    while pos < buf.len() {
        match field(buf, &mut pos).ok_or("a Sample is truncated")? {
            (1, Field::Fixed64(v)) => value = f64::from_bits(v),
            (2, Field::Varint(v)) => ts = v as i64,
            (1 | 2, _) => return Err("a Sample field has the wrong wire type"),
            _ => {}
        }
    }
    Ok((value, ts))
}

/// [`decode`] and [`validate`] in one pass over the decompressed bytes, borrowing label names
/// and values from them (no allocation per label; one canonical name per series): what the
/// handler runs. Same answers as `validate(decode(raw)?)`; fields it does not use (metadata,
/// exemplars, histograms) are skipped.
pub fn validate_raw(
    raw: &[u8],
    extra: &[(&str, &str)],
    limits: &Limits,
) -> Result<Accepted, RawRefusal> {
    let corrupt = |why: &str| {
        RawRefusal::Decode(Problem::request(
            "body",
            format!("the body is not a protobuf prometheus.WriteRequest: {why}"),
        ))
    };
    // The series, found without decoding them (for the bound and the capacity).
    let mut series: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        match field(raw, &mut pos).ok_or_else(|| corrupt("truncated or invalid field"))? {
            (1, Field::Bytes(b)) => series.push(b),
            (1, _) => return Err(corrupt("timeseries has the wrong wire type")),
            _ => {}
        }
    }
    if series.len() > limits.max_series_per_request {
        return Err(RawRefusal::Invalid(
            vec![too_many_series(series.len(), limits)],
            series.len(),
        ));
    }
    let mut v = Validation::new(series.len());
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(16);
    let mut samples: Vec<(f64, i64)> = Vec::with_capacity(4);
    for (i, ts) in series.iter().enumerate() {
        labels.clear();
        samples.clear();
        let mut pos = 0;
        while pos < ts.len() {
            match field(ts, &mut pos).ok_or_else(|| corrupt("a TimeSeries is truncated"))? {
                (1, Field::Bytes(b)) => labels.push(label(b).map_err(corrupt)?),
                (2, Field::Bytes(b)) => samples.push(sample(b).map_err(corrupt)?),
                (1 | 2, _) => return Err(corrupt("a TimeSeries field has the wrong wire type")),
                _ => {}
            }
        }
        v.series(i, &labels, &samples, extra, limits);
    }
    v.finish().map_err(|p| RawRefusal::Invalid(p, series.len()))
}

/// The distinct series written recently, bounded: total cardinality is capped at `max`
/// series seen within `idle_secs`. Shared by the HTTP workers (one mutex, taken once per
/// request).
#[derive(Debug)]
pub struct SeriesTracker {
    seen: std::sync::Mutex<HashMap<String, i64>>,
    max: usize,
    idle_secs: i64,
}

/// A request refused for cardinality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverCardinality {
    /// Series of the request not yet known.
    pub new_series: usize,
    /// Known series now.
    pub known: usize,
    /// The first new series.
    pub first: String,
}

impl SeriesTracker {
    /// At most `max` series, each forgotten `idle_secs` after its last write.
    pub fn new(max: usize, idle_secs: u64) -> Self {
        SeriesTracker {
            seen: std::sync::Mutex::new(HashMap::new()),
            max,
            idle_secs: i64::try_from(idle_secs).unwrap_or(i64::MAX),
        }
    }

    /// Series known now.
    pub fn len(&self) -> usize {
        self.seen.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when none is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a request's `series` at `now`, all or none: refused when the new ones would take
    /// the total over the bound (after forgetting idle series).
    pub fn admit(&self, series: &[String], now: i64) -> Result<(), OverCardinality> {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut new: Vec<&String> = series.iter().filter(|s| !seen.contains_key(*s)).collect();
        if seen.len() + new.len() > self.max {
            let cutoff = now.saturating_sub(self.idle_secs);
            seen.retain(|_, last| *last >= cutoff);
            new = series.iter().filter(|s| !seen.contains_key(*s)).collect();
            if seen.len() + new.len() > self.max {
                return Err(OverCardinality {
                    new_series: new.len(),
                    known: seen.len(),
                    first: new.first().map(|s| s.to_string()).unwrap_or_default(),
                });
            }
        }
        for s in series {
            match seen.get_mut(s) {
                Some(last) => *last = now,
                None => {
                    seen.insert(s.clone(), now);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(now: i64) -> Limits {
        Limits {
            max_name_bytes: 200,
            max_labels: 5,
            max_series_per_request: 10,
            time: TimeLimits {
                now,
                max_age_secs: 3600,
                max_future_skew_secs: 60,
                backfill: false,
                stored_back_secs: None,
            },
            keep_secs: 86_400,
        }
    }

    fn l(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    fn series(labels: Vec<Label>, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels,
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
        }
    }

    #[test]
    fn canonical_names_sort_escape_and_drop_empty_labels() {
        let lim = limits(0);
        let name = canonical_name(
            &[
                l("job", "node"),
                l("__name__", "http_requests_total"),
                l("code", "200"),
                l("empty", ""),
                l("path", "a\"b\\c\nd"),
            ],
            &[],
            &lim,
        )
        .unwrap();
        assert_eq!(
            name,
            r#"http_requests_total{code="200",job="node",path="a\"b\\c\nd"}"#
        );
        assert_eq!(
            canonical_name(&[l("__name__", "up")], &[], &lim).unwrap(),
            "up{}"
        );
        assert!(is_labelled("up{}"));
        assert!(!is_labelled("stats.up"));
        let tenant = canonical_name(
            &[l("__name__", "up"), l("job", "x")],
            &[("_tenant_id", "acme"), ("_server_id", "")],
            &lim,
        )
        .unwrap();
        assert_eq!(tenant, r#"up{_tenant_id="acme",job="x"}"#);
    }

    #[test]
    fn bad_series_are_named() {
        let lim = limits(0);
        for (labels, why) in [
            (vec![l("job", "x")], "no __name__"),
            (vec![l("__name__", "1up")], "invalid metric name"),
            (
                vec![l("__name__", "up"), l("a-b", "1")],
                "invalid label name",
            ),
            (
                vec![l("__name__", "up"), l("a", "x\ty")],
                "control character",
            ),
            (
                vec![l("__name__", "up"), l("a", "1"), l("a", "2")],
                "label twice",
            ),
            (
                (0..6)
                    .map(|i| l(&format!("l{i}"), "v"))
                    .chain([l("__name__", "u")])
                    .collect(),
                "prometheus_max_labels",
            ),
            (
                vec![l("__name__", "up"), l("a", &"x".repeat(300))],
                "prometheus_max_name_bytes",
            ),
        ] {
            let err = canonical_name(&labels, &[], &lim).unwrap_err();
            assert!(err.contains(why), "{labels:?}: {err}");
        }
    }

    #[test]
    fn whole_request_validation() {
        let now = 1_700_000_000;
        let ok = series(
            vec![l("__name__", "up"), l("job", "a")],
            &[(now * 1000, 1.0), (now * 1000 + 15_000, 0.0)],
        );
        let stale = series(
            vec![l("__name__", "up"), l("job", "b")],
            &[
                (now * 1000, f64::from_bits(STALE_NAN_BITS)),
                (now * 1000, f64::NAN),
            ],
        );
        let req = WriteRequest {
            timeseries: vec![ok.clone(), stale.clone()],
        };
        let acc = validate(req, &[], &limits(now)).unwrap();
        assert_eq!(acc.points.len(), 2);
        assert_eq!(acc.points[1].timestamp, now + 15);
        assert_eq!(acc.points[0].metric, r#"up{job="a"}"#);
        assert_eq!((acc.stale, acc.non_finite), (1, 1));
        assert_eq!(acc.series, vec![r#"up{job="a"}"#.to_string()]);

        let too_old = series(vec![l("__name__", "old")], &[((now - 7200) * 1000, 1.0)]);
        let nameless = series(vec![l("job", "x")], &[(now * 1000, 1.0)]);
        let err = validate(
            WriteRequest {
                timeseries: vec![ok.clone(), too_old, nameless],
            },
            &[],
            &limits(now),
        )
        .unwrap_err();
        assert_eq!(err.len(), 2);
        assert_eq!(err[0].index, Some(1));
        assert_eq!(err[0].metric.as_deref(), Some("old{}"));
        assert!(err[0].message.contains("too old"), "{}", err[0].message);
        assert_eq!(err[1].index, Some(2));
        assert_eq!(err[1].metric.as_deref(), Some(r#"{job="x"}"#));

        let many = WriteRequest {
            timeseries: vec![ok; 11],
        };
        let err = validate(many, &[], &limits(now)).unwrap_err();
        assert!(err[0].message.contains("prometheus_max_series_per_request"));
    }

    #[test]
    fn the_borrowing_decoder_answers_as_prost_and_validate_do() {
        let now = 1_700_000_000;
        let lim = limits(now);
        let cases = vec![
            vec![
                series(
                    vec![
                        l("job", "node"),
                        l("__name__", "up"),
                        l("path", "a\"b\\c\nd"),
                    ],
                    &[(now * 1000, 1.0), (now * 1000 + 15_000, f64::NAN)],
                ),
                series(
                    vec![l("__name__", "up"), l("job", "b")],
                    &[(now * 1000, f64::from_bits(STALE_NAN_BITS))],
                ),
                series(
                    vec![
                        l("__name__", "up"),
                        l("job", "node"),
                        l("path", "a\"b\\c\nd"),
                    ],
                    &[(now * 1000 + 30_000, -2.5)],
                ),
            ],
            vec![
                series(vec![l("__name__", "old")], &[((now - 7200) * 1000, 1.0)]),
                series(vec![l("job", "x")], &[(now * 1000, 1.0)]),
                series(
                    vec![l("__name__", "up"), l("a", "1"), l("a", "2")],
                    &[(now * 1000, 1.0)],
                ),
            ],
            vec![series(vec![l("__name__", "u")], &[(now * 1000, 1.0)]); 11],
            vec![],
        ];
        for ts in cases {
            let req = WriteRequest { timeseries: ts };
            let raw = prost::Message::encode_to_vec(&req);
            let slow = validate(decode(&raw).unwrap(), &[("_tenant_id", "t")], &lim);
            let fast = validate_raw(&raw, &[("_tenant_id", "t")], &lim);
            match (slow, fast) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.points, b.points);
                    assert_eq!(a.series, b.series);
                    assert_eq!((a.stale, a.non_finite), (b.stale, b.non_finite));
                }
                (Err(a), Err(RawRefusal::Invalid(b, n))) => {
                    assert_eq!(a, b);
                    assert_eq!(n, req.timeseries.len());
                }
                (a, b) => panic!("{a:?} vs {b:?}"),
            }
        }
        // Bytes that are not a WriteRequest are refused like prost refuses them.
        for bad in [
            &b"\x0a\x05garbage"[..],
            b"\x0a",
            b"\x0b\x01",
            b"\x0a\x03\x0a\x01\xff",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
            assert!(
                matches!(validate_raw(bad, &[], &lim), Err(RawRefusal::Decode(_))),
                "{bad:?}"
            );
        }
        // Fields it does not use are skipped (metadata = 3 in WriteRequest).
        let mut raw = prost::Message::encode_to_vec(&WriteRequest {
            timeseries: vec![series(vec![l("__name__", "up")], &[(now * 1000, 1.0)])],
        });
        raw.extend_from_slice(b"\x1a\x02\x08\x01");
        let acc = validate_raw(&raw, &[], &lim).unwrap();
        assert_eq!(acc.series, vec!["up{}".to_string()]);
    }

    #[test]
    fn snappy_round_trip_and_bounds() {
        let req = WriteRequest {
            timeseries: vec![series(vec![l("__name__", "up")], &[(1000, 1.0)])],
        };
        let body = encode(&req);
        let raw = decompress(&body, 1 << 20).unwrap();
        assert_eq!(decode(&raw).unwrap(), req);
        let err = decompress(&body, 4).unwrap_err();
        assert!(
            err.message.contains("prometheus_max_decompressed_bytes"),
            "{}",
            err.message
        );
        assert!(decompress(b"\xff\xff\xff\xff\xff\xff", 1 << 20).is_err());
        assert!(decode(b"\x0a\x05garbage").is_err());
    }

    #[test]
    fn cardinality_is_bounded_and_idle_series_are_forgotten() {
        let t = SeriesTracker::new(3, 100);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        t.admit(&names(&["a", "b"]), 1000).unwrap();
        t.admit(&names(&["a", "b", "c"]), 1010).unwrap();
        let err = t.admit(&names(&["a", "d"]), 1020).unwrap_err();
        assert_eq!(err.new_series, 1);
        assert_eq!(err.first, "d");
        assert_eq!(t.len(), 3);
        // a, b, c idle since 1010: at 1111 they are forgotten, d fits.
        t.admit(&names(&["d", "e"]), 1111).unwrap();
        assert_eq!(t.len(), 2);
    }
}
