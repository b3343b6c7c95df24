//! Pure validation of flux submissions: request shapes, metric names, values, timestamps, API
//! keys and their namespace prefixes. No I/O and no clock (callers pass `now`), so every rule
//! is unit-tested here.
//!
//! Rules (Skyline's flux, with its bugs fixed — see the spec's §6):
//! - names: ASCII letters, digits and `+ - % . _ / = :`; no empty dot-element; each element at
//!   most [`MAX_ELEMENT_BYTES`] (a whisper file name is the element plus `.wsp`, ≤ 255 bytes);
//!   the whole name at most [`MAX_NAME_BYTES`]. Names are validated on every endpoint (Skyline
//!   never validated GET names) and never silently rewritten.
//! - values: a JSON number or a numeric string; NaN and infinities are refused.
//! - timestamps: seconds since the epoch (number or numeric string; a fraction is truncated, as
//!   carbon does); missing means now; not older than `max_age_secs` (unless backfilling) and not
//!   more than `max_future_skew_secs` ahead.
//! - a batch is validated whole: any problem rejects all of it, and every problem is reported.
//!
//! Backpressure: none here (pure functions).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::config::ApiKey;

/// Longest dot-separated element: whisper's file name is `<element>.wsp`, at most 255 bytes.
pub const MAX_ELEMENT_BYTES: usize = 251;

/// Longest whole name: whisper's path (`<root>/a/b/c.wsp`) must stay under PATH_MAX (4096).
pub const MAX_NAME_BYTES: usize = 3800;

/// Above this a timestamp is taken for milliseconds (year 5138 in seconds).
const MILLIS_HINT: i64 = 100_000_000_000;

/// Problems listed in one 400 response at most (the count is always exact).
pub const MAX_LISTED_PROBLEMS: usize = 1000;

/// An accepted datapoint, after prefixing and validation.
#[derive(Debug, Clone, PartialEq)]
pub struct FluxPoint {
    /// Full Graphite name (prefix applied).
    pub metric: String,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// Finite value.
    pub value: f64,
}

/// One thing wrong with a request, as reported in the 400 body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// Position in `metrics` (or in `datapoints` for populate_metric); absent for the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The metric name as submitted, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `metric`, `timestamp`, `value`, `key`, `metrics`, `datapoints`, `body` or a field name.
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl Problem {
    /// A problem with the request as a whole.
    pub fn request(field: &str, message: impl Into<String>) -> Self {
        Problem {
            index: None,
            metric: None,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// The clock and bounds timestamps are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Now, seconds since the epoch.
    pub now: i64,
    /// `[flux] max_age_secs`.
    pub max_age_secs: i64,
    /// `[flux] max_future_skew_secs`.
    pub max_future_skew_secs: i64,
    /// Backfill (populate_metric): no age limit.
    pub backfill: bool,
    /// When nothing forwards to carbon: how far back the metric actors store a point
    /// (`[horizon] full_duration_secs`; 0 when flux feeds nothing). Older points are refused,
    /// so a 2xx always means "stored or forwarded". `None`: carbon takes everything.
    pub stored_back_secs: Option<i64>,
}

/// Checks a Graphite metric name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("metric name is empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("metric name is longer than {MAX_NAME_BYTES} bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+-%._/=:".contains(*c)))
    {
        return Err(format!(
            "invalid character {c:?} in metric name (allowed: ASCII letters, digits and + - % . _ / = :)"
        ));
    }
    for element in name.split('.') {
        if element.is_empty() {
            return Err(
                "metric name has an empty element (leading, trailing or double dot)".into(),
            );
        }
        if element.len() > MAX_ELEMENT_BYTES {
            return Err(format!(
                "metric name element longer than {MAX_ELEMENT_BYTES} characters"
            ));
        }
    }
    Ok(())
}

/// `<prefix>.<metric>`, unless the metric is already inside the prefix's namespace
/// (`<prefix>.…`), as Skyline does — but on whole elements, so prefix `warehouse-1` does not
/// claim `warehouse-10.x`. Every accepted name of a prefixed key starts with `<prefix>.`.
pub fn apply_prefix(prefix: &str, metric: &str) -> String {
    if prefix.is_empty()
        || (metric.len() > prefix.len()
            && metric.starts_with(prefix)
            && metric.as_bytes()[prefix.len()] == b'.')
    {
        return metric.to_string();
    }
    let mut s = String::with_capacity(prefix.len() + 1 + metric.len());
    s.push_str(prefix);
    s.push('.');
    s.push_str(metric);
    s
}

fn ts_from_f64(f: f64) -> Result<i64, String> {
    if !(0.0..9.0e15).contains(&f) {
        return Err("timestamp is not a valid unix timestamp (seconds since the epoch)".into());
    }
    Ok(f.trunc() as i64)
}

/// Parses a timestamp from text (GET parameter or JSON string).
pub fn parse_timestamp_str(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Ok(i);
    }
    match t.parse::<f64>() {
        Ok(f) => ts_from_f64(f),
        Err(_) => Err(format!(
            "timestamp {s:?} is not a number (send seconds since the epoch)"
        )),
    }
}

/// Parses a JSON timestamp; `None`/`null` mean "now".
pub fn parse_timestamp_json(v: Option<&Scalar<'_>>, now: i64) -> Result<i64, String> {
    match v {
        None | Some(Scalar::Null) => Ok(now),
        Some(Scalar::Int(i)) => Ok(*i),
        Some(Scalar::UInt(_)) => ts_from_f64(f64::INFINITY),
        Some(Scalar::Float(f)) => ts_from_f64(*f),
        Some(Scalar::Str(s)) => parse_timestamp_str(s),
        Some(other) => Err(format!(
            "timestamp must be a number of seconds since the epoch, not {}",
            other.kind()
        )),
    }
}

/// Checks a timestamp against the age and future bounds.
pub fn check_timestamp(ts: i64, limits: &Limits) -> Result<(), String> {
    if ts < 0 {
        return Err("timestamp is negative".into());
    }
    if ts > limits.now.saturating_add(limits.max_future_skew_secs) {
        if ts > MILLIS_HINT {
            return Err(format!(
                "timestamp {ts} is in the future; it looks like milliseconds, send seconds since the epoch"
            ));
        }
        return Err(format!(
            "timestamp {ts} is more than {} seconds in the future",
            limits.max_future_skew_secs
        ));
    }
    if !limits.backfill && ts < limits.now.saturating_sub(limits.max_age_secs) {
        return Err(format!(
            "timestamp {ts} is too old: older than {} seconds (max_age_secs)",
            limits.max_age_secs
        ));
    }
    if let Some(keep) = limits.stored_back_secs {
        if ts < limits.now.saturating_sub(keep) {
            return Err(format!(
                "timestamp {ts} is older than {keep} seconds ([horizon] full_duration_secs) and no carbon is configured ([flux] carbon_pickle_addr), so it would not be stored"
            ));
        }
    }
    Ok(())
}

/// Parses a value from text (GET parameter or JSON string); must be finite.
pub fn parse_value_str(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        Ok(_) => Err(format!(
            "value {s:?} is not finite (NaN and infinities are refused)"
        )),
        Err(_) => Err(format!("value {s:?} is not a number")),
    }
}

/// Parses a JSON value; must be a finite number or a numeric string.
pub fn parse_value_json(v: Option<&Scalar<'_>>) -> Result<f64, String> {
    match v {
        None | Some(Scalar::Null) => Err("value is missing".into()),
        Some(Scalar::Int(i)) => Ok(*i as f64),
        Some(Scalar::UInt(u)) => Ok(*u as f64),
        Some(Scalar::Float(f)) if f.is_finite() => Ok(*f),
        Some(Scalar::Float(_)) => Err("value is not a finite number".into()),
        Some(Scalar::Str(s)) => parse_value_str(s),
        Some(other) => Err(format!("value must be a number, not {}", other.kind())),
    }
}

/// One JSON value of a request, as submitted: scalars kept (strings borrowed from the body
/// when they hold no escapes), containers only named. Parsing into these instead of
/// `serde_json::Value` maps saves about ten allocations per datapoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer that fits i64.
    Int(i64),
    /// An integer above i64::MAX.
    UInt(u64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An array (contents skipped).
    Array,
    /// An object (contents skipped).
    Object,
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_) => "a number",
            Scalar::Str(_) => "a string",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(i))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(u).map_or(Scalar::UInt(u), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(f))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// One item of `"metrics"` (or the single-metric body's fields).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Item<'a> {
    /// `"metric"`
    pub metric: Option<Scalar<'a>>,
    /// `"timestamp"`
    pub timestamp: Option<Scalar<'a>>,
    /// `"value"`
    pub value: Option<Scalar<'a>>,
    /// Names of other fields (refused).
    pub unknown: Vec<String>,
    /// Set when the item is not an object: what it is.
    pub not_object: Option<&'static str>,
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a metric object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut item = Item::default();
                while let Some(key) = a.next_key::<Scalar<'de>>()? {
                    match key.as_str() {
                        Some("metric") => item.metric = Some(a.next_value()?),
                        Some("timestamp") => item.timestamp = Some(a.next_value()?),
                        Some("value") => item.value = Some(a.next_value()?),
                        other => {
                            item.unknown.push(other.unwrap_or("?").to_string());
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(item)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Item::other("null"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Item::other("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Item::other("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Item::other("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Item::other("a number"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Item::other("a string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::other("an array"))
            }
        }
        d.deserialize_any(V)
    }
}

impl Item<'_> {
    fn other(kind: &'static str) -> Self {
        Item {
            not_object: Some(kind),
            ..Item::default()
        }
    }
}

/// `"metrics"`: an array of items, or something else (named).
#[derive(Debug)]
enum Items<'a> {
    List(Vec<Item<'a>>),
    Other(Scalar<'a>),
}

impl<'de> Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of metric objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = a.next_element::<Item<'de>>()? {
                    v.push(item);
                }
                Ok(Items::List(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                ScalarVisitor.visit_map(a).map(Items::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Items::Other(Scalar::Null))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Items::Other(Scalar::Bool(b)))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
                Ok(Items::Other(Scalar::Int(i)))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
                Ok(Items::Other(Scalar::UInt(u)))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
                Ok(Items::Other(Scalar::Float(f)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Items::Other(Scalar::Str(Cow::Borrowed(""))))
            }
        }
        d.deserialize_any(V)
    }
}

/// The top level of a request body: the known fields, and the names of the others.
#[derive(Debug, Default)]
struct Top<'a> {
    key: Option<Scalar<'a>>,
    metrics: Option<Items<'a>>,
    single: Item<'a>,
    datapoints: Option<Pairs<'a>>,
}

/// `"datapoints"` of populate_metric.
#[derive(Debug)]
enum Pairs<'a> {
    List(Vec<Vec<Scalar<'a>>>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pair<'a>(Option<Vec<Scalar<'a>>>);
        impl<'de> Deserialize<'de> for Pair<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct PV;
                impl<'de> Visitor<'de> for PV {
                    type Value = Pair<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("[timestamp, value]")
                    }
                    fn visit_seq<A: SeqAccess<'de>>(
                        self,
                        mut a: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut v = Vec::with_capacity(2);
                        while let Some(x) = a.next_element::<Scalar<'de>>()? {
                            v.push(x);
                        }
                        Ok(Pair(Some(v)))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                        ScalarVisitor.visit_map(a).map(|_| Pair(None))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                        Ok(Pair(None))
                    }
                    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                        Ok(Pair(None))
                    }
                    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                        Ok(Pair(None))
                    }
                    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                        Ok(Pair(None))
                    }
                    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                        Ok(Pair(None))
                    }
                    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                        Ok(Pair(None))
                    }
                }
                d.deserialize_any(PV)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of [timestamp, value] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(4096));
                while let Some(Pair(p)) = a.next_element::<Pair<'de>>()? {
                    v.push(p.unwrap_or_default());
                }
                Ok(Pairs::List(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                ScalarVisitor
                    .visit_map(a)
                    .map(|_| Pairs::Other("an object"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Pairs::Other("null"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Pairs::Other("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Pairs::Other("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Pairs::Other("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Pairs::Other("a number"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Pairs::Other("a string"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a body into its top-level fields. `allowed` lists the field names of the endpoint;
/// others are reported (a misspelt field must not be silently ignored).
fn parse_top<'a>(
    body: &'a [u8],
    allowed: &[&str],
    problems: &mut Vec<Problem>,
) -> Result<Top<'a>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::request("body", "no POST data received"));
    }
    struct V<'p>(&'p [&'p str]);
    impl<'de> Visitor<'de> for V<'_> {
        type Value = (Top<'de>, Vec<String>);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut top = Top::default();
            let mut unknown = Vec::new();
            while let Some(key) = a.next_key::<Scalar<'de>>()? {
                let name = key.as_str().unwrap_or("?");
                if !self.0.contains(&name) {
                    unknown.push(name.to_string());
                    a.next_value::<IgnoredAny>()?;
                    continue;
                }
                match name {
                    "key" => top.key = Some(a.next_value()?),
                    "metrics" => top.metrics = Some(a.next_value()?),
                    "datapoints" => top.datapoints = Some(a.next_value()?),
                    "metric" => top.single.metric = Some(a.next_value()?),
                    "timestamp" => top.single.timestamp = Some(a.next_value()?),
                    "value" => top.single.value = Some(a.next_value()?),
                    _ => {
                        a.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok((top, unknown))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de
        .deserialize_any(V(allowed))
        .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok((top, unknown)) => {
            for name in unknown {
                problems.push(Problem::request(
                    &name,
                    format!("unknown field {name:?} (expected {})", allowed.join(", ")),
                ));
            }
            Ok(top)
        }
        Err(err) if err.is_data() => {
            Err(Problem::request("body", "the body must be a JSON object"))
        }
        Err(err) => Err(Problem::request("body", format!("invalid JSON: {err}"))),
    }
}

fn body_key(key: Option<Scalar<'_>>, problems: &mut Vec<Problem>) -> Option<String> {
    match key {
        None | Some(Scalar::Null) => None,
        Some(Scalar::Str(s)) => Some(s.into_owned()),
        Some(_) => {
            problems.push(Problem::request("key", "key must be a string"));
            None
        }
    }
}

/// A parsed `metric_data_post` body, before the key is checked.
#[derive(Debug)]
pub struct PostRequest<'a> {
    /// The body's `key` field.
    pub key: Option<String>,
    /// The metric objects (one for the single-metric form).
    pub items: Vec<Item<'a>>,
    /// True for the `{"metrics": [...]}` form.
    pub batch: bool,
    /// Problems with the request's shape (reported after the key check, with the items').
    pub problems: Vec<Problem>,
}

/// Parses a `metric_data_post` body: `{"metric","timestamp","value","key"}` or
/// `{"key", "metrics": [{"metric","timestamp","value"}, …]}`. Fails only when the body is not
/// a JSON object; shape problems (unknown fields, an empty batch…) are returned in
/// [`PostRequest::problems`].
pub fn parse_post(body: &[u8]) -> Result<PostRequest<'_>, Problem> {
    let mut problems = Vec::new();
    let top = parse_top(
        body,
        &["key", "metrics", "metric", "timestamp", "value"],
        &mut problems,
    )?;
    let key = body_key(top.key, &mut problems);
    let single = top.single;
    let has_single =
        single.metric.is_some() || single.timestamp.is_some() || single.value.is_some();
    let (items, batch) = match top.metrics {
        Some(Items::List(items)) => {
            for (f, present) in [
                ("metric", single.metric.is_some()),
                ("timestamp", single.timestamp.is_some()),
                ("value", single.value.is_some()),
            ] {
                if present {
                    problems.push(Problem::request(
                        f,
                        format!("{f:?} must be inside each item of \"metrics\", not beside it"),
                    ));
                }
            }
            if items.is_empty() {
                problems.push(Problem::request("metrics", "\"metrics\" is empty"));
            }
            (items, true)
        }
        Some(Items::Other(other)) => {
            problems.push(Problem::request(
                "metrics",
                format!(
                    "\"metrics\" must be an array of {{\"metric\", \"timestamp\", \"value\"}} objects, not {}",
                    other.kind()
                ),
            ));
            (Vec::new(), true)
        }
        None if has_single => (vec![single], false),
        None => {
            problems.push(Problem::request(
                "body",
                "no metric data: send {\"metric\", \"timestamp\", \"value\"} or {\"metrics\": [...]}",
            ));
            (Vec::new(), false)
        }
    };
    Ok(PostRequest {
        key,
        items,
        batch,
        problems,
    })
}

/// Validates every metric object of a batch; any problem rejects the whole batch.
pub fn validate_items(
    items: &[Item<'_>],
    prefix: &str,
    limits: &Limits,
    batch: bool,
) -> Result<Vec<FluxPoint>, Vec<Problem>> {
    let mut points = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let index = batch.then_some(i);
        if let Some(kind) = item.not_object {
            problems.push(Problem {
                index,
                metric: None,
                field: "metrics".into(),
                message: format!(
                    "each item must be a {{\"metric\", \"timestamp\", \"value\"}} object, not {kind}"
                ),
            });
            continue;
        }
        let metric = item.metric.as_ref().and_then(Scalar::as_str);
        let mut push = |field: &str, message: String| {
            problems.push(Problem {
                index,
                metric: metric.map(str::to_string),
                field: field.to_string(),
                message,
            })
        };
        for name in &item.unknown {
            push(
                name,
                format!("unknown field {name:?} (expected metric, timestamp, value)"),
            );
        }
        let full = match (&item.metric, metric) {
            (_, Some(m)) => {
                let full = apply_prefix(prefix, m);
                match check_name(&full) {
                    Ok(()) => Some(full),
                    Err(why) => {
                        push("metric", why);
                        None
                    }
                }
            }
            (None | Some(Scalar::Null), None) => {
                push("metric", "metric is missing".into());
                None
            }
            (Some(other), None) => {
                push(
                    "metric",
                    format!("metric must be a string, not {}", other.kind()),
                );
                None
            }
        };
        let ts = parse_timestamp_json(item.timestamp.as_ref(), limits.now)
            .and_then(|ts| check_timestamp(ts, limits).map(|()| ts));
        let ts = match ts {
            Ok(ts) => Some(ts),
            Err(why) => {
                push("timestamp", why);
                None
            }
        };
        let value = match parse_value_json(item.value.as_ref()) {
            Ok(v) => Some(v),
            Err(why) => {
                push("value", why);
                None
            }
        };
        if let (Some(metric), Some(timestamp), Some(value)) = (full, ts, value) {
            points.push(FluxPoint {
                metric,
                timestamp,
                value,
            });
        }
    }
    if problems.is_empty() {
        Ok(points)
    } else {
        Err(problems)
    }
}

/// A parsed `populate_metric` body, before the key is checked.
#[derive(Debug)]
pub struct PopulateRequest<'a> {
    /// The body's `key` field.
    pub key: Option<String>,
    /// The metric name as submitted.
    pub metric: Option<String>,
    /// `[[timestamp, value], …]`; an item that is not an array is empty here.
    pub datapoints: Vec<Vec<Scalar<'a>>>,
    /// Problems with the request's shape.
    pub problems: Vec<Problem>,
}

/// Parses a `populate_metric` body: `{"key", "metric", "datapoints": [[ts, value], …]}`.
/// Fails only when the body is not a JSON object.
pub fn parse_populate(body: &[u8]) -> Result<PopulateRequest<'_>, Problem> {
    let mut problems = Vec::new();
    let top = parse_top(body, &["key", "metric", "datapoints"], &mut problems)?;
    let key = body_key(top.key, &mut problems);
    let metric = match top.single.metric {
        Some(Scalar::Str(s)) => Some(s.into_owned()),
        None | Some(Scalar::Null) => {
            problems.push(Problem::request("metric", "metric is missing"));
            None
        }
        Some(_) => {
            problems.push(Problem::request("metric", "metric must be a string"));
            None
        }
    };
    let datapoints = match top.datapoints {
        Some(Pairs::List(v)) if !v.is_empty() => v,
        Some(Pairs::List(_)) => {
            problems.push(Problem::request("datapoints", "\"datapoints\" is empty"));
            Vec::new()
        }
        Some(Pairs::Other(kind)) => {
            problems.push(Problem::request(
                "datapoints",
                format!("\"datapoints\" must be an array of [timestamp, value] pairs, not {kind}"),
            ));
            Vec::new()
        }
        None => {
            problems.push(Problem::request(
                "datapoints",
                "\"datapoints\" is missing: send an array of [timestamp, value] pairs",
            ));
            Vec::new()
        }
    };
    Ok(PopulateRequest {
        key,
        metric,
        datapoints,
        problems,
    })
}

/// Validates a backfill series for one metric; any problem rejects all of it.
pub fn validate_populate(
    metric: &str,
    datapoints: &[Vec<Scalar<'_>>],
    prefix: &str,
    limits: &Limits,
) -> Result<Vec<FluxPoint>, Vec<Problem>> {
    let full = apply_prefix(prefix, metric);
    if let Err(why) = check_name(&full) {
        return Err(vec![Problem {
            index: None,
            metric: Some(metric.to_string()),
            field: "metric".into(),
            message: why,
        }]);
    }
    let mut points = Vec::with_capacity(datapoints.len());
    let mut problems = Vec::new();
    for (i, pair) in datapoints.iter().enumerate() {
        let mut push = |field: &str, message: String| {
            problems.push(Problem {
                index: Some(i),
                metric: Some(metric.to_string()),
                field: field.to_string(),
                message,
            })
        };
        if pair.len() != 2 {
            push(
                "datapoints",
                "each datapoint must be [timestamp, value]".into(),
            );
            continue;
        }
        let ts = match &pair[0] {
            Scalar::Null => Err("timestamp is missing".to_string()),
            v => parse_timestamp_json(Some(v), limits.now),
        }
        .and_then(|ts| check_timestamp(ts, limits).map(|()| ts));
        let value = parse_value_json(Some(&pair[1]));
        match (ts, value) {
            (Ok(timestamp), Ok(value)) => points.push(FluxPoint {
                metric: full.clone(),
                timestamp,
                value,
            }),
            (ts, value) => {
                if let Err(why) = ts {
                    push("timestamp", why);
                }
                if let Err(why) = value {
                    push("value", why);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(points)
    } else {
        Err(problems)
    }
}

/// The configured API keys. Lookups compare against every key in constant time (per key
/// length), so response timing reveals neither which key nor how much of one matched.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<(Vec<u8>, String)>,
}

impl KeyRing {
    /// From `[flux] api_keys`.
    pub fn new(keys: &[ApiKey]) -> Self {
        KeyRing {
            keys: keys
                .iter()
                .map(|k| (k.key().as_bytes().to_vec(), k.prefix().to_string()))
                .collect(),
        }
    }

    /// True when no key is configured (every request is then refused with 401).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The namespace prefix of `submitted` (empty for none), or `None` when it is no key.
    pub fn lookup(&self, submitted: &str) -> Option<&str> {
        let submitted = submitted.as_bytes();
        let mut found: Option<&str> = None;
        for (key, prefix) in &self.keys {
            // Always walk the whole configured key and every key: no early exit.
            let mut diff = (key.len() ^ submitted.len()) as u64;
            for (i, b) in key.iter().enumerate() {
                let s = submitted.get(i).copied().unwrap_or(0);
                diff |= u64::from(b ^ s);
            }
            let hit = std::hint::black_box(diff) == 0;
            if hit && found.is_none() {
                found = Some(prefix.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(json: &str) -> Scalar<'_> {
        serde_json::from_str(json).unwrap()
    }

    const NOW: i64 = 1_700_000_000;

    fn limits() -> Limits {
        Limits {
            now: NOW,
            max_age_secs: 3600,
            max_future_skew_secs: 60,
            backfill: false,
            stored_back_secs: None,
        }
    }

    #[test]
    fn names() {
        assert!(check_name("stats.server-1.cpu_user").is_ok());
        assert!(check_name("a+b%c=d:e/f").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").unwrap_err().contains("' '"));
        assert!(check_name("a..b").is_err());
        assert!(check_name(".a").is_err());
        assert!(check_name("a.").is_err());
        assert!(check_name("ünï.code").is_err());
        assert!(check_name("a*b").is_err());
        assert!(check_name(&format!("a.{}", "x".repeat(252))).is_err());
        assert!(check_name(&format!("a.{}", "x".repeat(251))).is_ok());
        let long = vec!["abcdefghij"; 400].join(".");
        assert!(check_name(&long).unwrap_err().contains("longer"));
    }

    #[test]
    fn prefixes() {
        assert_eq!(apply_prefix("", "x.y"), "x.y");
        assert_eq!(apply_prefix("warehouse-1", "x"), "warehouse-1.x");
        assert_eq!(
            apply_prefix("warehouse-1", "warehouse-1.x"),
            "warehouse-1.x"
        );
        assert_eq!(
            apply_prefix("warehouse-1", "warehouse-10.x"),
            "warehouse-1.warehouse-10.x"
        );
        assert_eq!(apply_prefix("w", "w"), "w.w");
    }

    #[test]
    fn timestamps() {
        let l = limits();
        assert_eq!(parse_timestamp_json(None, NOW), Ok(NOW));
        assert_eq!(parse_timestamp_json(Some(&sc("null")), NOW), Ok(NOW));
        assert_eq!(parse_timestamp_json(Some(&sc("1700000000")), NOW), Ok(NOW));
        assert_eq!(
            parse_timestamp_json(Some(&sc("1700000000.9")), NOW),
            Ok(NOW)
        );
        assert_eq!(
            parse_timestamp_json(Some(&sc("\"1700000000\"")), NOW),
            Ok(NOW)
        );
        assert!(parse_timestamp_json(Some(&sc("\"soon\"")), NOW).is_err());
        assert!(parse_timestamp_json(Some(&sc("true")), NOW).is_err());
        assert!(parse_timestamp_json(Some(&sc("[1]")), NOW).is_err());
        assert!(parse_timestamp_json(Some(&sc("18446744073709551615")), NOW).is_err());
        assert!(check_timestamp(NOW - 3600, &l).is_ok());
        assert!(check_timestamp(NOW - 3601, &l)
            .unwrap_err()
            .contains("too old"));
        assert!(check_timestamp(NOW + 60, &l).is_ok());
        assert!(check_timestamp(NOW + 61, &l)
            .unwrap_err()
            .contains("future"));
        assert!(check_timestamp(NOW * 1000, &l)
            .unwrap_err()
            .contains("milliseconds"));
        let fill = Limits {
            backfill: true,
            ..l
        };
        assert!(check_timestamp(NOW - 10 * 86_400, &fill).is_ok());
        assert!(check_timestamp(NOW + 61, &fill).is_err());
        // Without carbon, what the metric actors would not keep is refused, backfill or not.
        let local = Limits {
            stored_back_secs: Some(86_400),
            ..fill
        };
        assert!(check_timestamp(NOW - 86_400, &local).is_ok());
        assert!(check_timestamp(NOW - 86_401, &local)
            .unwrap_err()
            .contains("would not be stored"));
    }

    #[test]
    fn values() {
        assert_eq!(parse_value_json(Some(&sc("1"))), Ok(1.0));
        assert_eq!(parse_value_json(Some(&sc("-2.5e3"))), Ok(-2500.0));
        assert_eq!(parse_value_json(Some(&sc("\" 4.5 \""))), Ok(4.5));
        assert_eq!(parse_value_json(Some(&sc("\"4\\u002e5\""))), Ok(4.5));
        assert!(parse_value_json(Some(&sc("\"nan\""))).is_err());
        assert!(parse_value_json(Some(&sc("\"inf\""))).is_err());
        assert!(parse_value_json(Some(&Scalar::Float(f64::INFINITY))).is_err());
        assert!(parse_value_json(Some(&sc("null"))).is_err());
        assert!(parse_value_json(None).is_err());
        assert!(parse_value_json(Some(&sc("[1]"))).is_err());
        assert!(parse_value_json(Some(&sc("{\"a\":1}"))).is_err());
        assert!(parse_value_str("NaN").unwrap_err().contains("finite"));
        assert!(parse_value_str("abc").unwrap_err().contains("not a number"));
    }

    #[test]
    fn single_and_batch_forms() {
        let single =
            parse_post(br#"{"metric":"a.b","timestamp":1700000000,"value":1,"key":"k"}"#).unwrap();
        assert_eq!(single.key.as_deref(), Some("k"));
        assert!(!single.batch);
        let pts = validate_items(&single.items, "p", &limits(), single.batch).unwrap();
        assert_eq!(
            pts,
            vec![FluxPoint {
                metric: "p.a.b".into(),
                timestamp: NOW,
                value: 1.0
            }]
        );
        let batch = parse_post(
            br#"{"key":"k","metrics":[{"metric":"a","timestamp":1700000000,"value":1},{"metric":"b","value":"2"}]}"#,
        )
        .unwrap();
        assert!(batch.batch);
        let pts = validate_items(&batch.items, "", &limits(), true).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[1].timestamp, NOW, "missing timestamp = now");
    }

    #[test]
    fn every_problem_of_a_batch_is_named() {
        let batch = parse_post(
            br#"{"metrics":[
                {"metric":"ok.one","timestamp":1700000000,"value":1},
                {"metric":"bad name","timestamp":1700000000,"value":1},
                {"metric":"ok.two","timestamp":1600000000,"value":"NaN"},
                {"metric":"ok.three","value":1,"fill":true},
                7
            ]}"#,
        )
        .unwrap();
        assert!(batch.problems.is_empty());
        let problems = validate_items(&batch.items, "", &limits(), true).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = problems
            .iter()
            .map(|p| (p.index, p.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(1), "metric"),
                (Some(2), "timestamp"),
                (Some(2), "value"),
                (Some(3), "fill"),
                (Some(4), "metrics"),
            ]
        );
        assert_eq!(problems[0].metric.as_deref(), Some("bad name"));
    }

    #[test]
    fn escaped_names_and_keys_are_read() {
        let req = parse_post(br#"{"k\u0065y":"k","metric":"a\u002eb","value":1}"#).unwrap();
        assert_eq!(req.key.as_deref(), Some("k"));
        let pts = validate_items(&req.items, "", &limits(), false).unwrap();
        assert_eq!(pts[0].metric, "a.b");
    }

    #[test]
    fn malformed_bodies() {
        assert!(parse_post(b"{} trailing")
            .unwrap_err()
            .message
            .contains("invalid JSON"));
        assert!(parse_post(br#"{"metrics": 5}"#).unwrap().problems[0].field == "metrics");
        assert!(parse_post(b"")
            .unwrap_err()
            .message
            .contains("no POST data"));
        assert!(parse_post(b"{nope")
            .unwrap_err()
            .message
            .contains("invalid JSON"));
        assert!(parse_post(b"[1]").unwrap_err().message.contains("object"));
        let shape = |b: &[u8]| parse_post(b).unwrap().problems;
        let p = shape(br#"{"key":"k"}"#);
        assert_eq!(
            parse_post(br#"{"key":"k"}"#).unwrap().key.as_deref(),
            Some("k")
        );
        assert!(p[0].message.contains("no metric data"));
        assert!(shape(br#"{"metrics":[]}"#)[0].message.contains("empty"));
        assert!(shape(br#"{"metrics":[],"typo":1}"#)
            .iter()
            .any(|p| p.field == "typo"));
        assert!(!shape(br#"{"metrics":[{"metric":"a","value":1}],"metric":"b"}"#).is_empty());
    }

    #[test]
    fn populate() {
        let req = parse_populate(
            br#"{"key":"k","metric":"a.b","datapoints":[[1600000000,1],[1600000060,"2.5"]]}"#,
        )
        .unwrap();
        let fill = Limits {
            backfill: true,
            ..limits()
        };
        let pts =
            validate_populate(req.metric.as_deref().unwrap(), &req.datapoints, "", &fill).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[1].value, 2.5);
        let bad =
            parse_populate(br#"{"metric":"a.b","datapoints":[[1],[null,1],[1,null],7]}"#).unwrap();
        let bad = validate_populate("a.b", &bad.datapoints, "", &fill).unwrap_err();
        assert_eq!(bad.len(), 4);
        assert!(req.problems.is_empty());
        assert!(!parse_populate(br#"{"metric":"a"}"#)
            .unwrap()
            .problems
            .is_empty());
        assert!(!parse_populate(
            br#"{"metric":"a","datapoints":[[1,1]],"fetch_resolution_urls":"x"}"#
        )
        .unwrap()
        .problems
        .is_empty());
    }

    #[test]
    fn keyring() {
        let ring = KeyRing::new(&[
            ApiKey::Plain("abcdefgh".into()),
            ApiKey::WithPrefix {
                key: "ijklmnop".into(),
                prefix: "w1".into(),
            },
        ]);
        assert_eq!(ring.lookup("abcdefgh"), Some(""));
        assert_eq!(ring.lookup("ijklmnop"), Some("w1"));
        assert_eq!(ring.lookup("abcdefg"), None);
        assert_eq!(ring.lookup("abcdefghi"), None);
        assert_eq!(ring.lookup(""), None);
        assert_eq!(ring.lookup("abcdefgH"), None);
        assert!(KeyRing::new(&[]).lookup("").is_none());
    }
}
