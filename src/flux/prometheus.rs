//! Prometheus remote_write, pure part: the protobuf messages, snappy decoding with a bound,
//! canonical series names and whole-request validation. No I/O and no clock (the handler
//! passes [`Limits`]), so every rule is unit-tested here.
//!
//! Wire format (remote_write 1.0): the body is a snappy *block* (not framed) of a protobuf
//! `prometheus.WriteRequest { repeated TimeSeries timeseries = 1; }`, each `TimeSeries` with
//! `repeated Label labels = 1` (`name = 1`, `value = 2`) and `repeated Sample samples = 2`
//! (`double value = 1`, `int64 timestamp = 2`, milliseconds). The few messages are declared
//! here with `prost`'s derive (no protoc); fields we do not use (metadata, exemplars, native
//! histograms) are skipped by the decoder.
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
fn describe(labels: &[Label]) -> String {
    let mut s = String::new();
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&l.name.chars().take(64).collect::<String>());
        s.push_str("=\"");
        escape_value(&l.value.chars().take(64).collect::<String>(), &mut s);
        s.push('"');
        if s.len() > 300 {
            s.push('…');
            break;
        }
    }
    format!("{{{s}}}")
}

/// The canonical name of a series: `name{a="1",b="2"}` (labels sorted by name, empty values
/// dropped, values escaped), with `extra` labels (the tenant and server headers) added.
pub fn canonical_name(
    labels: &[Label],
    extra: &[(&str, &str)],
    limits: &Limits,
) -> Result<String, String> {
    let mut name: Option<&str> = None;
    let mut rest: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + extra.len());
    for l in labels {
        if l.name == "__name__" {
            if name.replace(l.value.as_str()).is_some() {
                return Err("the series has two __name__ labels".into());
            }
            continue;
        }
        if !valid_label_name(&l.name) {
            return Err(format!(
                "invalid label name {:?} (letters, digits and _, not starting with a digit)",
                l.name.chars().take(64).collect::<String>()
            ));
        }
        if l.value.chars().any(|c| c.is_control() && c != '\n') {
            return Err(format!(
                "the value of label {:?} contains a control character",
                l.name
            ));
        }
        if !l.value.is_empty() {
            rest.push((l.name.as_str(), l.value.as_str()));
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
    let mut problems = Vec::new();
    if req.timeseries.len() > limits.max_series_per_request {
        return Err(vec![Problem::request(
            "timeseries",
            format!(
                "{} series in one request, over {} ([flux] prometheus_max_series_per_request); lower queue_config.max_samples_per_send",
                req.timeseries.len(),
                limits.max_series_per_request
            ),
        )]);
    }
    let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    let mut out = Accepted {
        points: Vec::with_capacity(samples),
        series: Vec::with_capacity(req.timeseries.len()),
        ..Accepted::default()
    };
    let mut seen: HashMap<String, ()> = HashMap::with_capacity(req.timeseries.len());
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        let metric = match canonical_name(&ts.labels, extra, limits) {
            Ok(m) => m,
            Err(why) => {
                problems.push(Problem {
                    index: Some(i),
                    metric: Some(describe(&ts.labels)),
                    field: "labels".into(),
                    message: why,
                });
                continue;
            }
        };
        let mut bad_ts = None;
        let before = out.points.len();
        for s in &ts.samples {
            if !s.value.is_finite() {
                if s.value.to_bits() == STALE_NAN_BITS {
                    out.stale += 1;
                } else {
                    out.non_finite += 1;
                }
                continue;
            }
            let secs = s.timestamp.div_euclid(1000);
            if let Err(why) = check_timestamp(secs, &limits.time) {
                bad_ts = Some(why);
                break;
            }
            if secs < limits.time.now.saturating_sub(limits.keep_secs) {
                bad_ts = Some(format!(
                    "timestamp {secs} is older than {} seconds ([horizon] full_duration_secs); labelled series are stored only in Redis, so it would not be stored",
                    limits.keep_secs
                ));
                break;
            }
            out.points.push(FluxPoint {
                metric: metric.clone(),
                timestamp: secs,
                value: s.value,
            });
        }
        if let Some(why) = bad_ts {
            problems.push(Problem {
                index: Some(i),
                metric: Some(metric),
                field: "samples".into(),
                message: why,
            });
            continue;
        }
        // A series with only skipped (stale) samples stores nothing and is not counted.
        if out.points.len() > before && seen.insert(metric.clone(), ()).is_none() {
            out.series.push(metric);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
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
