//! Pure aggregations of stored request records for the monitor views: overview per route,
//! hour-of-day × day heatmap, daily utilisation, per-version box plots, per-client
//! performance, status codes, the level-3 time profile, and the two-sample report. Latencies
//! are returned in milliseconds.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::messages::RequestRecord;
use super::stats::{box_summary, mann_whitney, quantile, BoxSummary};

const DAY_MS: i64 = 86_400_000;

/// `GET /api`: how routes are named in every view.
pub fn route_key(r: &RequestRecord) -> String {
    format!("{} {}", r.method, r.route)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn sorted_ms<'a>(rows: impl Iterator<Item = &'a RequestRecord>) -> Vec<f64> {
    let mut v: Vec<f64> = rows.map(|r| ms(r.duration_us)).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn group<K: Ord>(
    rows: &[RequestRecord],
    key: impl Fn(&RequestRecord) -> K,
) -> BTreeMap<K, Vec<&RequestRecord>> {
    let mut out: BTreeMap<K, Vec<&RequestRecord>> = BTreeMap::new();
    for r in rows {
        out.entry(key(r)).or_default().push(r);
    }
    out
}

/// One route of the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteOverview {
    /// `GET /api`.
    pub route: String,
    /// Requests.
    pub hits: usize,
    /// Epoch ms of the last request.
    pub last_ms: i64,
    /// Median latency, ms.
    pub median_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Share of 5xx answers.
    pub error_rate: f64,
}

/// Per route, busiest first.
pub fn overview(rows: &[RequestRecord]) -> Vec<RouteOverview> {
    let mut out: Vec<RouteOverview> = group(rows, route_key)
        .into_iter()
        .map(|(route, rs)| {
            let v = sorted_ms(rs.iter().copied());
            RouteOverview {
                route,
                hits: rs.len(),
                last_ms: rs.iter().map(|r| r.time_ms).max().unwrap_or(0),
                median_ms: quantile(&v, 0.5),
                p90_ms: quantile(&v, 0.9),
                p99_ms: quantile(&v, 0.99),
                error_rate: error_rate(&rs),
            }
        })
        .collect();
    out.sort_by(|a, b| b.hits.cmp(&a.hits).then(a.route.cmp(&b.route)));
    out
}

fn error_rate(rs: &[&RequestRecord]) -> f64 {
    if rs.is_empty() {
        0.0
    } else {
        rs.iter().filter(|r| r.status >= 500).count() as f64 / rs.len() as f64
    }
}

/// Requests per hour of day (UTC) for each day, and per day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traffic {
    /// Start of each day (epoch seconds, UTC midnight), oldest first.
    pub days: Vec<i64>,
    /// `hours[d][h]`: requests on day `d` during hour `h` (UTC).
    pub hours: Vec<[u64; 24]>,
    /// Requests per day.
    pub per_day: Vec<u64>,
    /// 5xx answers per day.
    pub errors_per_day: Vec<u64>,
    /// Median latency per day, ms.
    pub median_per_day_ms: Vec<f64>,
}

/// The traffic of `rows` over the days from `from_ms` to `until_ms` (at most 366 days,
/// the latest kept).
pub fn traffic(rows: &[RequestRecord], from_ms: i64, until_ms: i64) -> Traffic {
    let last = (until_ms - 1).max(from_ms).div_euclid(DAY_MS);
    let first = from_ms.div_euclid(DAY_MS).max(last - 365);
    let n = (last - first + 1) as usize;
    let mut hours = vec![[0u64; 24]; n];
    let mut errors = vec![0u64; n];
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n];
    for r in rows {
        let d = r.time_ms.div_euclid(DAY_MS);
        if d < first || d > last {
            continue;
        }
        let i = (d - first) as usize;
        let h = (r.time_ms.rem_euclid(DAY_MS) / 3_600_000) as usize;
        hours[i][h.min(23)] += 1;
        if r.status >= 500 {
            errors[i] += 1;
        }
        lat[i].push(ms(r.duration_us));
    }
    Traffic {
        days: (first..=last).map(|d| d * 86_400).collect(),
        per_day: hours.iter().map(|h| h.iter().sum()).collect(),
        hours,
        errors_per_day: errors,
        median_per_day_ms: lat
            .into_iter()
            .map(|mut v| {
                v.sort_by(f64::total_cmp);
                quantile(&v, 0.5)
            })
            .collect(),
    }
}

/// One version's box of one route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionBox {
    /// Version label.
    pub version: String,
    /// Epoch ms of its first request in the window.
    pub first_ms: i64,
    /// Latency box, ms.
    pub summary: BoxSummary,
    /// Share of 5xx answers.
    pub error_rate: f64,
}

/// A route's boxes, one per version, oldest version first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteVersions {
    /// `GET /api`.
    pub route: String,
    /// Boxes.
    pub boxes: Vec<VersionBox>,
}

/// Versions in order of first appearance.
pub fn version_order(rows: &[RequestRecord]) -> Vec<String> {
    let mut first: HashMap<&str, i64> = HashMap::new();
    for r in rows {
        let e = first.entry(r.version.as_str()).or_insert(r.time_ms);
        *e = (*e).min(r.time_ms);
    }
    let mut v: Vec<(&str, i64)> = first.into_iter().collect();
    v.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    v.into_iter().map(|(s, _)| s.to_string()).collect()
}

/// Per route (busiest first), a box per version.
pub fn versions(rows: &[RequestRecord]) -> Vec<RouteVersions> {
    let order = version_order(rows);
    let rank = |v: &str| order.iter().position(|o| o == v).unwrap_or(usize::MAX);
    let mut out: Vec<(usize, RouteVersions)> = group(rows, route_key)
        .into_iter()
        .map(|(route, rs)| {
            let mut by_v: BTreeMap<&str, Vec<&RequestRecord>> = BTreeMap::new();
            for r in &rs {
                by_v.entry(r.version.as_str()).or_default().push(r);
            }
            let mut boxes: Vec<VersionBox> = by_v
                .into_iter()
                .filter_map(|(v, vs)| {
                    let lat: Vec<f64> = vs.iter().map(|r| ms(r.duration_us)).collect();
                    Some(VersionBox {
                        version: v.to_string(),
                        first_ms: vs.iter().map(|r| r.time_ms).min().unwrap_or(0),
                        summary: box_summary(&lat)?,
                        error_rate: error_rate(&vs),
                    })
                })
                .collect();
            boxes.sort_by_key(|b| rank(&b.version));
            (rs.len(), RouteVersions { route, boxes })
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.route.cmp(&b.1.route)));
    out.into_iter().map(|(_, r)| r).collect()
}

/// One client (IP or user) on one version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientPerf {
    /// The IP or user.
    pub client: String,
    /// Version label.
    pub version: String,
    /// Requests.
    pub hits: usize,
    /// Median latency, ms.
    pub median_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// Share of 5xx answers.
    pub error_rate: f64,
}

/// Per client (by `key`) and version, busiest clients first, versions in order.
pub fn clients(rows: &[RequestRecord], key: impl Fn(&RequestRecord) -> String) -> Vec<ClientPerf> {
    let order = version_order(rows);
    let rank = |v: &str| order.iter().position(|o| o == v).unwrap_or(usize::MAX);
    let mut totals: HashMap<String, usize> = HashMap::new();
    let groups = group(rows, |r| (key(r), r.version.clone()));
    for ((c, _), rs) in &groups {
        *totals.entry(c.clone()).or_default() += rs.len();
    }
    let mut out: Vec<ClientPerf> = groups
        .into_iter()
        .map(|((client, version), rs)| {
            let v = sorted_ms(rs.iter().copied());
            ClientPerf {
                client,
                version,
                hits: rs.len(),
                median_ms: quantile(&v, 0.5),
                p90_ms: quantile(&v, 0.9),
                error_rate: error_rate(&rs),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        totals[&b.client]
            .cmp(&totals[&a.client])
            .then(a.client.cmp(&b.client))
            .then(rank(&a.version).cmp(&rank(&b.version)))
    });
    out
}

/// A route and its `(status, count)` pairs.
pub type StatusCounts = (String, Vec<(u16, usize)>);

/// Per route, the count of each status code (routes busiest first, codes ascending).
pub fn status_codes(rows: &[RequestRecord]) -> Vec<StatusCounts> {
    let mut out: Vec<(usize, StatusCounts)> = group(rows, route_key)
        .into_iter()
        .map(|(route, rs)| {
            let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
            for r in &rs {
                *codes.entry(r.status).or_default() += 1;
            }
            (rs.len(), (route, codes.into_iter().collect()))
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1 .0.cmp(&b.1 .0)));
    out.into_iter().map(|(_, rc)| rc).collect()
}

/// Where a route's time goes (level-3 records): mean µs per part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteProfile {
    /// `GET /api`.
    pub route: String,
    /// Profiled requests.
    pub n: usize,
    /// Mean total, µs.
    pub total_us: f64,
    /// `(part, mean µs)`: redis, sql, graphite, template, other; largest first.
    pub parts: Vec<(&'static str, f64)>,
}

/// Per route with level-3 records, busiest first.
pub fn profile(rows: &[RequestRecord]) -> Vec<RouteProfile> {
    let with: Vec<RequestRecord> = rows
        .iter()
        .filter(|r| r.breakdown.is_some())
        .cloned()
        .collect();
    let mut out: Vec<RouteProfile> = group(&with, route_key)
        .into_iter()
        .map(|(route, rs)| {
            let n = rs.len() as f64;
            let mut sums = [0f64; 5];
            let mut total = 0f64;
            for r in &rs {
                let b = r.breakdown.unwrap_or_default();
                sums[0] += b.redis_us as f64;
                sums[1] += b.sql_us as f64;
                sums[2] += b.graphite_us as f64;
                sums[3] += b.template_us as f64;
                sums[4] += b.other_us(r.duration_us) as f64;
                total += r.duration_us as f64;
            }
            let names = ["redis", "sql", "graphite", "template", "other"];
            let mut parts: Vec<(&'static str, f64)> =
                names.iter().zip(sums).map(|(k, s)| (*k, s / n)).collect();
            parts.sort_by(|a, b| b.1.total_cmp(&a.1));
            RouteProfile {
                route,
                n: rs.len(),
                total_us: total / n,
                parts,
            }
        })
        .collect();
    out.sort_by(|a, b| b.n.cmp(&a.n).then(a.route.cmp(&b.route)));
    out
}

/// One route compared between two samples (A = before, B = after).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// `GET /api`.
    pub route: String,
    /// Requests in A and B.
    pub n_a: usize,
    /// Requests in B.
    pub n_b: usize,
    /// Median latency in A, ms.
    pub median_a_ms: f64,
    /// Median latency in B, ms.
    pub median_b_ms: f64,
    /// (B − A) / A, percent (0 when A's median is 0).
    pub median_change_pct: f64,
    /// Mann–Whitney U two-sided p-value (1 when a side is empty).
    pub p_value: f64,
    /// p < 0.05 with both sides non-empty.
    pub significant: bool,
    /// 5xx share in A.
    pub error_rate_a: f64,
    /// 5xx share in B.
    pub error_rate_b: f64,
    /// B − A, percentage points.
    pub error_rate_change_pts: f64,
}

/// Per route present in either sample, the change from `a` to `b` (largest significant
/// slowdowns first).
pub fn compare(a: &[RequestRecord], b: &[RequestRecord]) -> Vec<Comparison> {
    let ga = group(a, route_key);
    let gb = group(b, route_key);
    let mut routes: Vec<&String> = ga.keys().chain(gb.keys()).collect();
    routes.sort();
    routes.dedup();
    let empty: Vec<&RequestRecord> = Vec::new();
    let mut out: Vec<Comparison> = routes
        .into_iter()
        .map(|route| {
            let ra = ga.get(route).unwrap_or(&empty);
            let rb = gb.get(route).unwrap_or(&empty);
            let va = sorted_ms(ra.iter().copied());
            let vb = sorted_ms(rb.iter().copied());
            let (ma, mb) = (quantile(&va, 0.5), quantile(&vb, 0.5));
            let test = mann_whitney(&va, &vb);
            let p = test.as_ref().map_or(1.0, |t| t.p);
            let (ea, eb) = (error_rate(ra), error_rate(rb));
            Comparison {
                route: route.clone(),
                n_a: ra.len(),
                n_b: rb.len(),
                median_a_ms: ma,
                median_b_ms: mb,
                median_change_pct: if ma > 0.0 {
                    (mb - ma) / ma * 100.0
                } else {
                    0.0
                },
                p_value: p,
                significant: test.is_some() && p < 0.05,
                error_rate_a: ea,
                error_rate_b: eb,
                error_rate_change_pts: (eb - ea) * 100.0,
            }
        })
        .collect();
    out.sort_by(|x, y| {
        y.significant
            .cmp(&x.significant)
            .then(y.median_change_pct.total_cmp(&x.median_change_pct))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::messages::Breakdown;

    fn r(t_ms: i64, route: &str, us: u64, status: u16, version: &str, ip: &str) -> RequestRecord {
        RequestRecord {
            time_ms: t_ms,
            route: route.into(),
            method: "GET".into(),
            status,
            duration_us: us,
            version: version.into(),
            ip: ip.into(),
            user: "admin".into(),
            group: None,
            breakdown: None,
        }
    }

    fn sample() -> Vec<RequestRecord> {
        let t0 = 1_800_000_000_000i64 - 1_800_000_000_000 % DAY_MS;
        let mut v = Vec::new();
        for i in 0..100 {
            v.push(r(
                t0 + i * 60_000,
                "/api",
                1000 + i as u64,
                200,
                "1.0",
                "10.0.0.1",
            ));
            v.push(r(
                t0 + DAY_MS + i * 60_000,
                "/api",
                3000 + i as u64,
                if i < 10 { 500 } else { 200 },
                "1.1",
                "10.0.0.2",
            ));
        }
        v.push(r(t0 + 5, "/now", 500, 404, "1.0", "10.0.0.1"));
        v
    }

    #[test]
    fn overview_traffic_versions() {
        let rows = sample();
        let o = overview(&rows);
        assert_eq!(o[0].route, "GET /api");
        assert_eq!(o[0].hits, 200);
        assert!((o[0].error_rate - 0.05).abs() < 1e-9);
        assert_eq!(o[1].route, "GET /now");
        let t0 = rows[0].time_ms;
        let t = traffic(&rows, t0, t0 + 2 * DAY_MS);
        assert_eq!(t.days.len(), 2);
        assert_eq!(t.per_day, vec![101, 100]);
        assert_eq!(t.hours[0][0], 61);
        assert_eq!(t.errors_per_day, vec![0, 10]);
        let v = versions(&rows);
        assert_eq!(v[0].boxes.len(), 2, "two versions, two boxes");
        assert_eq!(v[0].boxes[0].version, "1.0");
        assert!((v[0].boxes[1].summary.median - 3.0495).abs() < 1e-9);
        let c = clients(&rows, |r| r.ip.clone());
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].client, "10.0.0.1");
        assert_eq!(c[0].hits, 101);
        let s = status_codes(&rows);
        assert_eq!(s[0].1, vec![(200, 190), (500, 10)]);
    }

    #[test]
    fn compare_finds_the_slowdown() {
        let rows = sample();
        let (a, b): (Vec<RequestRecord>, Vec<RequestRecord>) =
            rows.into_iter().partition(|r| r.version == "1.0");
        let c = compare(&a, &b);
        let api = c.iter().find(|c| c.route == "GET /api").unwrap();
        assert!(api.significant && api.p_value < 1e-6, "{api:?}");
        assert!(api.median_change_pct > 150.0, "{api:?}");
        assert!((api.error_rate_change_pts - 10.0).abs() < 1e-9);
        let now = c.iter().find(|c| c.route == "GET /now").unwrap();
        assert_eq!((now.n_a, now.n_b, now.significant), (1, 0, false));
        // Identical samples: nothing significant.
        assert!(compare(&a, &a).iter().all(|c| !c.significant));
    }

    #[test]
    fn profile_groups_parts() {
        let mut x = r(0, "/api", 10_000, 200, "1", "ip");
        x.breakdown = Some(Breakdown {
            redis_us: 8_000,
            sql_us: 0,
            graphite_us: 0,
            template_us: 1_000,
        });
        let p = profile(&[x, r(0, "/api", 5, 200, "1", "ip")]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].n, 1);
        assert_eq!(p[0].parts[0], ("redis", 8_000.0));
        assert_eq!(p[0].parts[1], ("template", 1_000.0));
        assert_eq!(p[0].parts[2], ("other", 1_000.0));
    }
}
