//! rebrow, the Redis browser, limited to the daemon's own Redis (no host/port parameters: no
//! SSRF, unlike Skyline's). Read-only unless `[webapp] rebrow_writable = true`.
//!
//! - `GET /rebrow?pattern=*&type=&count=50&cursor=0`: server `INFO` and `DBSIZE`, then one
//!   page of keys found with `SCAN … MATCH pattern COUNT n [TYPE t]` (never `KEYS`), each with
//!   its type, TTL and size (pipelined). Paging follows the SCAN cursor ("next page"); a page
//!   holds about `count` keys (SCAN may return a few more).
//!   On a Redis Cluster (`[redis] cluster_urls`) `SCAN` is keyless, so it is sent to every
//!   master in turn: the masters come from `CLUSTER NODES` (ordered by their lowest slot, see
//!   `store::redis_conn::parse_cluster_nodes`), each `SCAN` is routed to one master by a slot
//!   it serves, and the page cursor is `<master index>-<that master's cursor>`: "next page"
//!   walks master 0 to its end, then master 1, …, and ends after the last one. `INFO` and
//!   `DBSIZE` are read from each master (a table of the masters, the keys summed, each
//!   master's `INFO` under its address). Per-key commands (`TYPE`, `PTTL`, sizes, the key
//!   page, `DEL`) are routed by their key as on one Redis. A slot migration between two
//!   pages can skip or repeat keys (a failover does not: the promoted replica serves the same
//!   slots); on one Redis nothing changes.
//! - `GET /rebrow/key?k=<base64url key>`: one key by type. Strings in the metric namespace, or
//!   that are not UTF-8, are decoded as Skyline's msgpack series into a table and a graph;
//!   JSON strings are pretty-printed. Lists, sets, sorted sets, hashes and streams show their
//!   first 500 items (`SSCAN`/`HSCAN` for sets and hashes). Keys travel base64url-encoded, so
//!   any binary key round-trips.
//! - `POST /rebrow/key/delete` (form `k`, `csrf`): `DEL`, only when writable, with the
//!   per-process CSRF token from the key page (constant-time check) and, when the browser
//!   sends them, a same-origin `Origin` and `Sec-Fetch-Site`. Then 303 back to the list.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use log::warn;
use serde::{Deserialize, Serialize};

use super::api::{param, params};
use super::auth::ct_eq;
use super::error::{PageError, WebError};
use super::panorama::html_response;
use super::templates::{fmt_duration, fmt_utc, fmt_value, json_for_html};
use super::{WebState, Worker};
use crate::model::msgpack::decode_series_f64;
use crate::model::FULL_NAMESPACE;
use crate::store::redis_conn::ClusterMaster;
use crate::telemetry::metrics as m;

/// Items of a list, set, sorted set, hash or stream shown.
pub const MAX_ITEMS: usize = 500;
/// Series rows shown in the table (newest first); the graph has them all.
pub const MAX_SERIES_ROWS: usize = 5000;
/// Text shown of a string value.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// SCAN calls per page at most (a sparse pattern over a big keyspace stops here).
pub const MAX_SCANS: usize = 200;
const TYPES: &[&str] = &["string", "list", "set", "zset", "hash", "stream"];

fn decode_k(k: &str) -> Result<Vec<u8>, WebError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(k.trim_end_matches('='))
        .map_err(|_| WebError::BadRequest("k: not a base64url key".into()))
}

fn k_of(key: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn fmt_ttl(pttl: i64) -> String {
    match pttl {
        -1 => "none".into(),
        -2 => "gone".into(),
        ms => fmt_duration((ms + 999) / 1000),
    }
}

#[derive(Serialize)]
struct KeyRow {
    name: String,
    k: String,
    kind: String,
    ttl: String,
    size: String,
}

#[derive(Serialize)]
struct InfoEntry {
    k: String,
    v: String,
}

#[derive(Serialize)]
struct InfoSection {
    name: String,
    entries: Vec<InfoEntry>,
}

#[derive(Serialize)]
struct Summary {
    label: &'static str,
    value: String,
}

/// One master of a Redis Cluster in rebrow's masters table.
#[derive(Serialize)]
struct MasterRow {
    /// Its index in the page cursor (`<index>-<cursor>`).
    index: usize,
    addr: String,
    slots: String,
    slot_count: usize,
    keys: String,
    memory: String,
    ops: String,
    clients: String,
    version: String,
    /// This page's keys came (partly) from it.
    here: bool,
}

#[derive(Serialize)]
struct IndexView {
    title: &'static str,
    nav_rebrow: bool,
    scripts: &'static [&'static str],
    page_config: String,
    redis_label: String,
    summary: Vec<Summary>,
    masters: Vec<MasterRow>,
    info_title: &'static str,
    sections: Vec<InfoSection>,
    pattern: String,
    types: Vec<(String, bool)>,
    count: usize,
    keys: Vec<KeyRow>,
    shown: usize,
    next_link: Option<String>,
    first_link: Option<String>,
    deleted: Option<String>,
    writable: bool,
}

fn parse_info(info: &str) -> Vec<InfoSection> {
    let mut sections: Vec<InfoSection> = Vec::new();
    for line in info.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("# ") {
            sections.push(InfoSection {
                name: name.to_string(),
                entries: Vec::new(),
            });
        } else if let Some((k, v)) = line.split_once(':') {
            if sections.is_empty() {
                sections.push(InfoSection {
                    name: "Info".into(),
                    entries: Vec::new(),
                });
            }
            if let Some(s) = sections.last_mut() {
                s.entries.push(InfoEntry {
                    k: k.to_string(),
                    v: v.to_string(),
                });
            }
        }
    }
    sections
}

fn info_value<'a>(sections: &'a [InfoSection], k: &str) -> Option<&'a str> {
    sections
        .iter()
        .flat_map(|s| &s.entries)
        .find(|e| e.k == k)
        .map(|e| e.v.as_str())
}

fn size_cmd(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "string" => "STRLEN",
        "list" => "LLEN",
        "set" => "SCARD",
        "zset" => "ZCARD",
        "hash" => "HLEN",
        "stream" => "XLEN",
        _ => return None,
    })
}

fn size_label(kind: &str, n: i64) -> String {
    match kind {
        "string" => format!("{n} bytes"),
        "hash" => format!("{n} fields"),
        "stream" => format!("{n} entries"),
        _ => format!("{n} items"),
    }
}

/// A link to the page starting at `cursor` (`None`: the first page).
fn link(pattern: &str, kind: &str, count: usize, cursor: Option<&str>) -> String {
    use super::templates::query_value as q;
    let mut s = format!("/rebrow?pattern={}&count={count}", q(pattern));
    if !kind.is_empty() {
        s.push_str(&format!("&type={}", q(kind)));
    }
    if let Some(cursor) = cursor {
        s.push_str(&format!("&cursor={}", q(cursor)));
    }
    s
}

/// Where a page starts: (master index, that master's SCAN cursor). One Redis: `<cursor>`
/// (master 0). A cluster: `<master>-<cursor>`, or `0` / nothing for the first page.
fn parse_cursor(text: &str, cluster: bool) -> Option<(usize, u64)> {
    if text.is_empty() {
        return Some((0, 0));
    }
    if !cluster {
        return text.parse().ok().map(|c| (0, c));
    }
    match text.split_once('-') {
        Some((m, c)) => Some((m.parse().ok()?, c.parse().ok()?)),
        None => (text == "0").then_some((0, 0)),
    }
}

/// The cursor text of a page start; `None` for the first page.
fn cursor_text((master, cursor): (usize, u64), cluster: bool) -> Option<String> {
    match (master, cursor) {
        (0, 0) => None,
        _ if cluster => Some(format!("{master}-{cursor}")),
        _ => Some(cursor.to_string()),
    }
}

fn scan_cmd(cursor: u64, pattern: &str, count: usize, kind: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count.max(100));
    if !kind.is_empty() {
        cmd.arg("TYPE").arg(kind);
    }
    cmd
}

/// The figures of one Redis shown above the key list, from its `INFO`.
fn info_summary(sections: &[InfoSection], summary: &mut Vec<Summary>) {
    for (label, k) in [
        ("version", "redis_version"),
        ("uptime", "uptime_in_seconds"),
        ("memory", "used_memory_human"),
        ("peak memory", "used_memory_peak_human"),
        ("clients", "connected_clients"),
        ("ops/s", "instantaneous_ops_per_sec"),
        ("role", "role"),
    ] {
        if let Some(v) = info_value(sections, k) {
            let value = if k == "uptime_in_seconds" {
                fmt_duration(v.parse().unwrap_or(0))
            } else {
                v.to_string()
            };
            summary.push(Summary { label, value });
        }
    }
}

/// A page of keys: (keys, where the next page starts or `None` at the end, the masters the
/// page read from).
type Scanned = (
    Vec<Vec<u8>>,
    Option<(usize, u64)>,
    std::ops::RangeInclusive<usize>,
);

/// One page on a Redis Cluster: `SCAN` on master `start.0` from `start.1`, on to the next
/// master when one ends, until `count` keys, [`MAX_SCANS`] calls or the last master's end.
async fn scan_cluster(
    conn: &mut super::timed_redis::TimedRedis,
    masters: &[ClusterMaster],
    start: (usize, u64),
    pattern: &str,
    count: usize,
    kind: &str,
) -> Result<Scanned, WebError> {
    let (mut master, mut cursor) = start;
    if master >= masters.len() {
        return Err(WebError::BadRequest(format!(
            "cursor: master {master} of {}: the cluster changed since the last page; start again from the first page",
            masters.len()
        )));
    }
    let first = master;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for _ in 0..MAX_SCANS {
        let m = &masters[master];
        let what = || format!("SCAN MATCH {pattern:?} on master {}", m.addr);
        let answer = conn
            .on_master(m.first_slot(), &scan_cmd(cursor, pattern, count, kind))
            .await
            .map_err(|err| WebError::redis_failed(&what(), &err))?;
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::from_redis_value(answer)
            .map_err(|err| WebError::redis_failed(&what(), &err.into()))?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            if master + 1 == masters.len() {
                return Ok((keys, None, first..=master));
            }
            master += 1;
        }
        if keys.len() >= count {
            break;
        }
    }
    let last = if cursor == 0 { master - 1 } else { master };
    Ok((keys, Some((master, cursor)), first..=last.max(first)))
}

/// `INFO` and `DBSIZE` of every master: the masters table, the summary figures and every
/// master's `INFO` sections under its address.
async fn cluster_info(
    conn: &super::timed_redis::TimedRedis,
    masters: &[ClusterMaster],
    here: &std::ops::RangeInclusive<usize>,
) -> Result<(Vec<MasterRow>, Vec<Summary>, Vec<InfoSection>), WebError> {
    let answers = futures_util::future::join_all(masters.iter().map(|m| {
        let mut conn = conn.clone();
        async move {
            let info = conn.on_master(m.first_slot(), &redis::cmd("INFO")).await;
            let dbsize = conn.on_master(m.first_slot(), &redis::cmd("DBSIZE")).await;
            (info, dbsize)
        }
    }))
    .await;
    let mut rows = Vec::new();
    let mut all_sections = Vec::new();
    let mut total_keys: i64 = 0;
    let mut versions: Vec<String> = Vec::new();
    for (i, (m, (info, dbsize))) in masters.iter().zip(answers).enumerate() {
        let what = format!("INFO of master {}", m.addr);
        let info: String = info
            .and_then(|v| Ok(redis::from_redis_value(v)?))
            .map_err(|err| WebError::redis_failed(&what, &err))?;
        let dbsize: i64 = dbsize
            .and_then(|v| Ok(redis::from_redis_value(v)?))
            .map_err(|err| WebError::redis_failed(&format!("DBSIZE of master {}", m.addr), &err))?;
        total_keys += dbsize;
        let sections = parse_info(&info);
        let get = |k: &str| info_value(&sections, k).unwrap_or("").to_string();
        let version = get("redis_version");
        if !versions.contains(&version) {
            versions.push(version.clone());
        }
        rows.push(MasterRow {
            index: i,
            addr: m.addr.clone(),
            slots: m.slots_label(),
            slot_count: m.slot_count(),
            keys: dbsize.to_string(),
            memory: get("used_memory_human"),
            ops: get("instantaneous_ops_per_sec"),
            clients: get("connected_clients"),
            version,
            here: here.contains(&i),
        });
        all_sections.extend(sections.into_iter().map(|s| InfoSection {
            name: format!("master {i} ({}) · {}", m.addr, s.name),
            entries: s.entries,
        }));
    }
    let summary = vec![
        Summary {
            label: "keys",
            value: total_keys.to_string(),
        },
        Summary {
            label: "masters",
            value: masters.len().to_string(),
        },
        Summary {
            label: "version",
            value: versions.join(", "),
        },
    ];
    Ok((rows, summary, all_sections))
}

/// `GET /rebrow`.
pub async fn index(
    req: HttpRequest,
    state: web::Data<WebState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, PageError> {
    let params = params(&req)?;
    let pattern = param(&params, "pattern")
        .filter(|p| !p.is_empty())
        .unwrap_or("*")
        .to_string();
    if pattern.len() > 1024 {
        return Err(WebError::BadRequest("pattern: at most 1024 bytes".into()).into());
    }
    let kind = param(&params, "type").unwrap_or("").to_string();
    if !kind.is_empty() && !TYPES.contains(&kind.as_str()) {
        return Err(WebError::BadRequest(format!("type: one of {}", TYPES.join(", "))).into());
    }
    let count: usize = match param(&params, "count") {
        None | Some("") => 50,
        Some(c) => c
            .parse()
            .ok()
            .filter(|c| (1..=1000).contains(c))
            .ok_or_else(|| WebError::BadRequest("count: 1 to 1000".into()))?,
    };
    let mut conn = worker.redis.clone();
    let cluster = conn.0.is_cluster();
    let start = parse_cursor(param(&params, "cursor").unwrap_or(""), cluster).ok_or_else(|| {
        WebError::BadRequest(if cluster {
            "cursor: <master index>-<SCAN cursor> (two numbers), from a \"next page\" link".into()
        } else {
            "cursor: a SCAN cursor (a number)".into()
        })
    })?;
    let deleted = param(&params, "deleted")
        .and_then(|k| decode_k(k).ok())
        .map(|k| show(&k));

    let (mut keys, next, masters, summary, sections) = if cluster {
        let masters = conn
            .cluster_masters()
            .await
            .map_err(|err| WebError::redis_failed("CLUSTER NODES", &err))?;
        if masters.is_empty() {
            let err = redis::RedisError::from((
                redis::ErrorKind::Client,
                "CLUSTER NODES",
                "no master serves any slot".to_string(),
            ));
            return Err(WebError::redis_failed("CLUSTER NODES", &err).into());
        }
        let (keys, next, here) =
            scan_cluster(&mut conn, &masters, start, &pattern, count, &kind).await?;
        let (rows, summary, sections) = cluster_info(&conn, &masters, &here).await?;
        (keys, next, rows, summary, sections)
    } else {
        let (info, dbsize): (String, i64) = redis::pipe()
            .cmd("INFO")
            .cmd("DBSIZE")
            .query_async(&mut conn)
            .await
            .map_err(|err| WebError::redis_failed("INFO", &err))?;
        let sections = parse_info(&info);

        let mut cursor = start.1;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for _ in 0..MAX_SCANS {
            let (next, batch): (u64, Vec<Vec<u8>>) = scan_cmd(cursor, &pattern, count, &kind)
                .query_async(&mut conn)
                .await
                .map_err(|err| WebError::redis_failed(&format!("SCAN MATCH {pattern:?}"), &err))?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= count {
                break;
            }
        }
        let mut summary = vec![Summary {
            label: "keys",
            value: dbsize.to_string(),
        }];
        info_summary(&sections, &mut summary);
        let next = (cursor != 0).then_some((0, cursor));
        (keys, next, Vec::new(), summary, sections)
    };
    keys.sort();
    keys.dedup();

    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("TYPE").arg(k).cmd("PTTL").arg(k);
    }
    let meta: Vec<redis::Value> = if keys.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut conn)
            .await
            .map_err(|err| WebError::redis_failed("TYPE/PTTL", &err))?
    };
    let kinds: Vec<String> = meta
        .iter()
        .step_by(2)
        .map(|v| redis::from_redis_value::<String>(v.clone()).unwrap_or_else(|_| "?".into()))
        .collect();
    let ttls: Vec<i64> = meta
        .iter()
        .skip(1)
        .step_by(2)
        .map(|v| redis::from_redis_value::<i64>(v.clone()).unwrap_or(-2))
        .collect();
    let mut pipe = redis::pipe();
    let mut sized = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(c) = kinds.get(i).and_then(|t| size_cmd(t)) {
            pipe.cmd(c).arg(k);
            sized.push(i);
        }
    }
    let sizes: Vec<i64> = if sized.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut conn)
            .await
            .map_err(|err| WebError::redis_failed("key sizes", &err))?
    };
    let mut size_of = vec![String::new(); keys.len()];
    for (i, n) in sized.into_iter().zip(sizes) {
        size_of[i] = size_label(&kinds[i], n);
    }
    let rows: Vec<KeyRow> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| KeyRow {
            name: show(k),
            k: k_of(k),
            kind: kinds.get(i).cloned().unwrap_or_default(),
            ttl: fmt_ttl(ttls.get(i).copied().unwrap_or(-2)),
            size: std::mem::take(&mut size_of[i]),
        })
        .collect();

    let view = IndexView {
        title: "rebrow",
        nav_rebrow: true,
        scripts: &["common.js", "rebrow.js"],
        page_config: json_for_html(&serde_json::json!({
            "page": "rebrow",
            "timezone": state.settings.timezone,
        }))?,
        redis_label: state.redis_label.clone(),
        summary,
        masters,
        info_title: if cluster {
            "INFO of each master"
        } else {
            "Server INFO"
        },
        sections,
        types: TYPES
            .iter()
            .map(|t| (t.to_string(), *t == kind.as_str()))
            .collect(),
        count,
        shown: rows.len(),
        keys: rows,
        next_link: next.map(|n| link(&pattern, &kind, count, cursor_text(n, cluster).as_deref())),
        first_link: (start != (0, 0)).then(|| link(&pattern, &kind, count, None)),
        pattern,
        deleted,
        writable: state.settings.rebrow_writable,
    };
    Ok(html_response(
        StatusCode::OK,
        state.templates.render("rebrow", &view)?,
    ))
}

#[derive(Serialize)]
struct SeriesRow {
    ts: i64,
    time: String,
    value: String,
}

#[derive(Serialize, Default)]
struct Pair {
    a: String,
    b: String,
}

#[derive(Serialize)]
struct KeyView {
    title: &'static str,
    nav_rebrow: bool,
    scripts: &'static [&'static str],
    page_config: String,
    name: String,
    k: String,
    kind: String,
    ttl: String,
    size: String,
    encoding: String,
    is_series: bool,
    series_json: String,
    series_rows: Vec<SeriesRow>,
    series_total: usize,
    series_truncated: bool,
    series_first: String,
    series_last: String,
    text: Option<String>,
    text_note: Option<String>,
    items: Vec<String>,
    pairs: Vec<Pair>,
    pair_labels: (String, String),
    items_total: i64,
    items_truncated: bool,
    writable: bool,
    csrf: String,
}

fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}  ", i * 16));
        for b in chunk {
            out.push_str(&format!("{b:02x} "));
        }
        out.push_str(&"   ".repeat(16 - chunk.len()));
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

/// `GET /rebrow/key?k=`.
pub async fn key(
    req: HttpRequest,
    state: web::Data<WebState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, PageError> {
    let params = params(&req)?;
    let k = param(&params, "k").ok_or_else(|| WebError::BadRequest("k: required".into()))?;
    let key = decode_k(k)?;
    let name = show(&key);
    let mut conn = worker.redis.clone();
    let (kind, pttl, encoding): (String, i64, Option<String>) = redis::pipe()
        .cmd("TYPE")
        .arg(&key)
        .cmd("PTTL")
        .arg(&key)
        .cmd("OBJECT")
        .arg("ENCODING")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|err| WebError::redis_failed(&format!("TYPE {name:?}"), &err))?;
    if kind == "none" {
        return Err(WebError::NotFound(format!("no key {name:?}")).into());
    }
    let mut view = KeyView {
        title: "rebrow key",
        nav_rebrow: true,
        scripts: &["common.js", "chart.js", "rebrow.js"],
        page_config: String::new(),
        name: name.clone(),
        k: k_of(&key),
        kind: kind.clone(),
        ttl: fmt_ttl(pttl),
        size: String::new(),
        encoding: encoding.unwrap_or_default(),
        is_series: false,
        series_json: "[]".into(),
        series_rows: Vec::new(),
        series_total: 0,
        series_truncated: false,
        series_first: String::new(),
        series_last: String::new(),
        text: None,
        text_note: None,
        items: Vec::new(),
        pairs: Vec::new(),
        pair_labels: (String::new(), String::new()),
        items_total: 0,
        items_truncated: false,
        writable: state.settings.rebrow_writable,
        csrf: state.csrf_token.clone(),
    };
    let fail = |what: &str| {
        let what = format!("{what} {name:?}");
        move |err: redis::RedisError| WebError::redis_failed(&what, &err)
    };
    let mut series: Vec<(f64, f64)> = Vec::new();
    match kind.as_str() {
        "string" => {
            let len: i64 = redis::cmd("STRLEN")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(fail("STRLEN"))?;
            view.size = size_label("string", len);
            let bytes: Vec<u8> = if len <= 64 << 20 {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(fail("GET"))?
            } else {
                view.text_note = Some("over 64 MiB: only the first 64 KiB are shown".into());
                redis::cmd("GETRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(MAX_TEXT_BYTES - 1)
                    .query_async(&mut conn)
                    .await
                    .map_err(fail("GETRANGE"))?
            };
            let utf8 = std::str::from_utf8(&bytes).ok();
            let try_series = key.starts_with(FULL_NAMESPACE.as_bytes()) || utf8.is_none();
            if try_series && decode_series_f64(&bytes, &mut series).is_ok() && !series.is_empty() {
                view.is_series = true;
            } else if let Some(text) = utf8 {
                let pretty = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .filter(|v| v.is_object() || v.is_array())
                    .and_then(|v| serde_json::to_string_pretty(&v).ok());
                let mut t = pretty.unwrap_or_else(|| text.to_string());
                if t.len() > MAX_TEXT_BYTES {
                    let mut cut = MAX_TEXT_BYTES;
                    while !t.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    t.truncate(cut);
                    view.text_note = Some(format!("first {MAX_TEXT_BYTES} bytes shown"));
                }
                view.text = Some(t);
            } else {
                let n = bytes.len().min(4096);
                view.text = Some(hex_dump(&bytes[..n]));
                view.text_note = Some(format!(
                    "binary, not a Skyline series: hex dump of the first {n} bytes"
                ));
            }
        }
        "list" => {
            let (total, items): (i64, Vec<Vec<u8>>) = redis::pipe()
                .cmd("LLEN")
                .arg(&key)
                .cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(MAX_ITEMS as i64 - 1)
                .query_async(&mut conn)
                .await
                .map_err(fail("LRANGE"))?;
            view.items_total = total;
            view.items = items.iter().map(|i| show(i)).collect();
        }
        "set" => {
            let total: i64 = redis::cmd("SCARD")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(fail("SCARD"))?;
            let mut members = scan_members(&mut conn, "SSCAN", &key)
                .await
                .map_err(fail("SSCAN"))?;
            members.sort();
            view.items_total = total;
            view.items = members.iter().map(|i| show(i)).collect();
        }
        "zset" => {
            let (total, items): (i64, Vec<(Vec<u8>, f64)>) = redis::pipe()
                .cmd("ZCARD")
                .arg(&key)
                .cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(MAX_ITEMS as i64 - 1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .map_err(fail("ZRANGE"))?;
            view.items_total = total;
            view.pair_labels = ("member".into(), "score".into());
            view.pairs = items
                .into_iter()
                .map(|(mbr, s)| Pair {
                    a: show(&mbr),
                    b: fmt_value(s),
                })
                .collect();
        }
        "hash" => {
            let total: i64 = redis::cmd("HLEN")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(fail("HLEN"))?;
            let flat = scan_members(&mut conn, "HSCAN", &key)
                .await
                .map_err(fail("HSCAN"))?;
            let mut pairs: Vec<Pair> = flat
                .chunks(2)
                .map(|c| Pair {
                    a: show(&c[0]),
                    b: c.get(1).map(|v| show(v)).unwrap_or_default(),
                })
                .collect();
            pairs.sort_by(|x, y| x.a.cmp(&y.a));
            view.items_total = total;
            view.pair_labels = ("field".into(), "value".into());
            view.pairs = pairs;
        }
        "stream" => {
            let (total, entries): (i64, redis::Value) = redis::pipe()
                .cmd("XLEN")
                .arg(&key)
                .cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(MAX_ITEMS)
                .query_async(&mut conn)
                .await
                .map_err(fail("XREVRANGE"))?;
            view.items_total = total;
            view.pair_labels = ("id".into(), "fields".into());
            view.pairs = stream_pairs(entries);
        }
        other => {
            view.text_note = Some(format!("values of type {other} are not displayed"));
        }
    }
    if view.items_total > 0 {
        view.size = size_label(&kind, view.items_total);
        view.items_truncated = (view.items.len().max(view.pairs.len()) as i64) < view.items_total;
    }
    if view.is_series {
        view.series_total = series.len();
        view.series_truncated = series.len() > MAX_SERIES_ROWS;
        if let (Some(f), Some(l)) = (series.first(), series.last()) {
            view.series_first = fmt_utc(f.0 as i64);
            view.series_last = fmt_utc(l.0 as i64);
        }
        view.series_rows = series
            .iter()
            .rev()
            .take(MAX_SERIES_ROWS)
            .map(|&(ts, v)| SeriesRow {
                ts: ts as i64,
                time: fmt_utc(ts as i64),
                value: fmt_value(v),
            })
            .collect();
        let finite: Vec<(f64, Option<f64>)> = series
            .iter()
            .map(|&(t, v)| (t, v.is_finite().then_some(v)))
            .collect();
        view.series_json = json_for_html(&finite)?;
    }
    view.page_config = json_for_html(&serde_json::json!({
        "page": "rebrow_key",
        "timezone": state.settings.timezone,
        "key": name,
    }))?;
    Ok(html_response(
        StatusCode::OK,
        state.templates.render("rebrow_key", &view)?,
    ))
}

/// Up to [`MAX_ITEMS`] members (SSCAN) or field/value pairs flattened (HSCAN).
async fn scan_members(
    conn: &mut super::timed_redis::TimedRedis,
    cmd: &str,
    key: &[u8],
) -> Result<Vec<Vec<u8>>, redis::RedisError> {
    let per = if cmd == "HSCAN" { 2 } else { 1 };
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    for _ in 0..MAX_SCANS {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd(cmd)
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(MAX_ITEMS)
            .query_async(conn)
            .await?;
        out.extend(batch);
        cursor = next;
        if cursor == 0 || out.len() >= MAX_ITEMS * per {
            break;
        }
    }
    out.truncate(MAX_ITEMS * per);
    Ok(out)
}

fn value_text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => show(b),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

fn stream_pairs(entries: redis::Value) -> Vec<Pair> {
    let redis::Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| match e {
            redis::Value::Array(parts) if parts.len() == 2 => Some(Pair {
                a: value_text(&parts[0]),
                b: value_text(&parts[1]),
            }),
            _ => None,
        })
        .collect()
}

/// The delete form.
#[derive(Deserialize)]
pub struct DeleteForm {
    k: String,
    csrf: String,
}

/// True when the request's `Origin` (if any) is this server.
fn same_origin(req: &HttpRequest) -> bool {
    let host = req.connection_info().host().to_string();
    let origin_ok = match req.headers().get(header::ORIGIN) {
        None => true,
        Some(o) => {
            let o = o.to_str().unwrap_or("");
            o == format!("http://{host}") || o == format!("https://{host}")
        }
    };
    let site_ok = match req.headers().get("sec-fetch-site") {
        None => true,
        Some(s) => matches!(s.to_str().unwrap_or(""), "same-origin" | "none"),
    };
    origin_ok && site_ok
}

/// `POST /rebrow/key/delete`.
pub async fn delete(
    req: HttpRequest,
    form: web::Form<DeleteForm>,
    state: web::Data<WebState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, PageError> {
    if !state.settings.rebrow_writable {
        return Err(WebError::Forbidden(
            "rebrow is read-only ([webapp] rebrow_writable = false)".into(),
        )
        .into());
    }
    if !ct_eq(form.csrf.as_bytes(), state.csrf_token.as_bytes()) || !same_origin(&req) {
        warn!(
            "webapp: rebrow delete refused (bad CSRF token or cross-site) from {}",
            req.peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "?".into())
        );
        return Err(WebError::Forbidden(
            "missing or wrong CSRF token: reload the key page and try again".into(),
        )
        .into());
    }
    let key = decode_k(&form.k)?;
    let mut conn = worker.redis.clone();
    let n: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|err| WebError::redis_failed(&format!("DEL {:?}", show(&key)), &err))?;
    if n > 0 {
        m::WEBAPP_REBROW_DELETES.inc();
    }
    warn!(
        "webapp: rebrow deleted key {:?} ({n} removed) for {}",
        show(&key),
        req.peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".into())
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/rebrow?deleted={}", k_of(&key))))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_base64url() {
        let key = b"metrics.a/b+c\xff<script>";
        assert_eq!(decode_k(&k_of(key)).unwrap(), key);
        assert!(decode_k("!!").is_err());
    }

    #[test]
    fn info_parsing() {
        let s = parse_info("# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0\r\n");
        assert_eq!(s.len(), 2);
        assert_eq!(info_value(&s, "redis_version"), Some("7.0.15"));
        assert_eq!(info_value(&s, "db0"), Some("keys=3,expires=0"));
    }

    #[test]
    fn page_cursors() {
        // One Redis: a plain SCAN cursor, as always.
        assert_eq!(parse_cursor("", false), Some((0, 0)));
        assert_eq!(parse_cursor("1792", false), Some((0, 1792)));
        assert_eq!(parse_cursor("1-1792", false), None);
        assert_eq!(cursor_text((0, 1792), false).as_deref(), Some("1792"));
        assert_eq!(cursor_text((0, 0), false), None);
        // A cluster: master index and that master's cursor.
        assert_eq!(parse_cursor("", true), Some((0, 0)));
        assert_eq!(parse_cursor("0", true), Some((0, 0)));
        assert_eq!(parse_cursor("2-1792", true), Some((2, 1792)));
        assert_eq!(parse_cursor("1792", true), None);
        assert_eq!(parse_cursor("x-1", true), None);
        for start in [(0, 5), (1, 0), (2, 1792)] {
            let text = cursor_text(start, true).unwrap();
            assert_eq!(parse_cursor(&text, true), Some(start), "{text}");
        }
        assert_eq!(cursor_text((0, 0), true), None);
        assert_eq!(
            link("metrics.*", "", 50, Some("1-64")),
            "/rebrow?pattern=metrics.%2A&count=50&cursor=1-64"
        );
        assert_eq!(
            link("a b", "hash", 10, Some("1792")),
            "/rebrow?pattern=a%20b&count=10&type=hash&cursor=1792"
        );
    }

    #[test]
    fn hex() {
        let d = hex_dump(b"\x00AB");
        assert!(d.starts_with("00000000  00 41 42"));
        assert!(d.trim_end().ends_with(".AB"));
    }
}
