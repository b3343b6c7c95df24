//! The Analyzer's side of the Mirage hand-off (spec §1.3), kept apart from the run loop.
//!
//! After each run, for each anomaly of a Mirage metric: `SET
//! analyzer.mirage_check_sent.<ts>.<metric> 1 EX 300 NX` (one check per anomaly timestamp),
//! SADD its member to `analyzer.waterfall_alerts.sent_to_mirage`, then `try_send` the check.
//! Such anomalies are neither recorded nor alerted by the Analyzer. Fallbacks, each one
//! alerting rather than silencing: the channel is full or closed → SREM the member and the
//! Analyzer records and alerts the anomaly itself (counted, logged once a minute); Redis
//! fails → the same. Every run the members older than `waterfall_secs` are SREMed and those
//! actually removed are recorded and alerted by the Analyzer (the waterfall; Mirage removes
//! a member as soon as it has decided, so only undecided checks fire).

use std::time::{Duration, Instant};

use crate::store::redis_conn::RedisConn;
use log::{error, warn};

use crate::mirage::messages::{check_sent_key, MiragePredicate, WaterfallItem};
use crate::mirage::{CheckSender, MirageCheck, WATERFALL_KEY};
use crate::model::Anomaly;
use crate::telemetry::metrics as m;

/// What the Analyzer needs to hand checks to Mirage (built by `app`).
pub struct MirageHandoff {
    /// The bounded channel to Mirage.
    pub sender: CheckSender,
    /// Metric → Mirage hours (None: not a Mirage metric).
    pub hours: MiragePredicate,
    /// Seconds after which an undecided check is alerted by the Analyzer.
    pub waterfall_secs: u64,
    last_log: std::sync::Mutex<Option<Instant>>,
}

impl MirageHandoff {
    /// A hand-off through `sender`.
    pub fn new(sender: CheckSender, hours: MiragePredicate, waterfall_secs: u64) -> Self {
        MirageHandoff {
            sender,
            hours,
            waterfall_secs,
            last_log: std::sync::Mutex::new(None),
        }
    }

    fn log_once_a_minute(&self, msg: &str) {
        if let Ok(mut g) = self.last_log.lock() {
            if g.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                error!("{msg} (logged once a minute)");
                *g = Some(Instant::now());
            }
        }
    }
}

/// Totals of one hand-off, for `analyzer.run_stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HandoffReport {
    /// Checks sent to Mirage.
    pub sent_to_mirage: usize,
    /// Already sent for the same timestamp (not sent again).
    pub already_sent: usize,
    /// Alerted by the Analyzer because Mirage could not take them (queue full, Redis).
    pub fallback_alerts: usize,
    /// Waterfall members that expired and were alerted by the Analyzer.
    pub waterfall_alerts: usize,
}

/// Hands the Mirage metrics among `anomalies` to Mirage (removing them from the list) and
/// appends the expired waterfall checks (see the module docs). `now` is epoch seconds.
pub async fn hand_off(
    conn: &mut RedisConn,
    h: &MirageHandoff,
    anomalies: &mut Vec<Anomaly>,
    now: i64,
) -> HandoffReport {
    let mut report = HandoffReport::default();
    let mut candidates = Vec::new();
    let mut kept = Vec::with_capacity(anomalies.len());
    for a in anomalies.drain(..) {
        match (h.hours)(&a.metric) {
            Some(hours) => candidates.push((a, hours)),
            None => kept.push(a),
        }
    }
    *anomalies = kept;
    if !candidates.is_empty() {
        let mut p = redis::pipe();
        for (a, _) in &candidates {
            p.cmd("SET")
                .arg(check_sent_key(a.timestamp, &a.metric))
                .arg(1)
                .arg("EX")
                .arg(300)
                .arg("NX");
        }
        let claimed: Result<Vec<Option<String>>, _> = p.query_async(conn).await;
        match claimed {
            Err(e) => {
                h.log_once_a_minute(&format!(
                    "mirage hand-off: Redis failed ({e}); the Analyzer alerts {} Mirage metric(s) itself",
                    candidates.len()
                ));
                report.fallback_alerts += candidates.len();
                m::MIRAGE_QUEUE_FULL.add(candidates.len() as u64);
                anomalies.extend(candidates.into_iter().map(|(a, _)| a));
            }
            Ok(claimed) => {
                let mut fresh = Vec::new();
                for ((a, hours), c) in candidates.into_iter().zip(claimed) {
                    if c.is_some() {
                        let item = WaterfallItem {
                            metric: a.metric.clone(),
                            timestamp: a.timestamp,
                            value: a.datapoint,
                            added_at: now,
                            hours,
                            anomaly: a.clone(),
                        }
                        .encode();
                        fresh.push(MirageCheck {
                            anomaly: a,
                            hours,
                            waterfall_item: item,
                        });
                    } else {
                        report.already_sent += 1;
                    }
                }
                send_checks(conn, h, fresh, anomalies, &mut report).await;
            }
        }
    }
    expire_waterfall(conn, h, anomalies, now, &mut report).await;
    anomalies.sort_by(|a, b| a.metric.cmp(&b.metric));
    report
}

async fn send_checks(
    conn: &mut RedisConn,
    h: &MirageHandoff,
    fresh: Vec<MirageCheck>,
    anomalies: &mut Vec<Anomaly>,
    report: &mut HandoffReport,
) {
    if fresh.is_empty() {
        return;
    }
    let mut p = redis::pipe();
    p.cmd("SADD").arg(WATERFALL_KEY);
    for c in &fresh {
        p.arg(&c.waterfall_item);
    }
    if let Err(e) = p.query_async::<()>(conn).await {
        h.log_once_a_minute(&format!(
            "mirage hand-off: SADD {WATERFALL_KEY} failed ({e}); the Analyzer alerts {} Mirage metric(s) itself",
            fresh.len()
        ));
        report.fallback_alerts += fresh.len();
        m::MIRAGE_QUEUE_FULL.add(fresh.len() as u64);
        anomalies.extend(fresh.into_iter().map(|c| c.anomaly));
        return;
    }
    let mut refused = Vec::new();
    for c in fresh {
        match h.sender.try_send(c) {
            Ok(()) => {
                report.sent_to_mirage += 1;
                m::MIRAGE_CHECKS_SENT.inc();
            }
            Err(e) => refused.push(e.into_inner()),
        }
    }
    if refused.is_empty() {
        return;
    }
    h.log_once_a_minute(&format!(
        "mirage hand-off: queue full (queue_max) or Mirage stopped; the Analyzer alerts {} Mirage metric(s) itself, latest {}",
        refused.len(),
        refused[refused.len() - 1].anomaly.metric
    ));
    m::MIRAGE_QUEUE_FULL.add(refused.len() as u64);
    report.fallback_alerts += refused.len();
    let mut p = redis::pipe();
    p.cmd("SREM").arg(WATERFALL_KEY);
    for c in &refused {
        p.arg(&c.waterfall_item);
    }
    if let Err(e) = p.query_async::<()>(conn).await {
        // The members stay: the waterfall may alert them again later (the alert keys and
        // Panorama's expiry window de-duplicate); an alert is never lost.
        warn!(
            "mirage hand-off: SREM of {} refused check(s) failed: {e}",
            refused.len()
        );
    }
    anomalies.extend(refused.into_iter().map(|c| c.anomaly));
}

async fn expire_waterfall(
    conn: &mut RedisConn,
    h: &MirageHandoff,
    anomalies: &mut Vec<Anomaly>,
    now: i64,
    report: &mut HandoffReport,
) {
    let members: Vec<String> = match redis::cmd("SMEMBERS")
        .arg(WATERFALL_KEY)
        .query_async(conn)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            h.log_once_a_minute(&format!(
                "mirage waterfall: SMEMBERS {WATERFALL_KEY} failed: {e}"
            ));
            return;
        }
    };
    let mut due: Vec<(String, Option<WaterfallItem>)> = Vec::new();
    for s in members {
        match serde_json::from_str::<WaterfallItem>(&s) {
            Ok(item) if now - item.added_at >= h.waterfall_secs as i64 => due.push((s, Some(item))),
            Ok(_) => {}
            // Not ours (e.g. a Python Skyline's literal): removed so it cannot pile up.
            Err(_) => due.push((s, None)),
        }
    }
    if due.is_empty() {
        return;
    }
    let mut p = redis::pipe();
    for (s, _) in &due {
        p.cmd("SREM").arg(WATERFALL_KEY).arg(s);
    }
    let removed: Vec<i64> = match p.query_async(conn).await {
        Ok(v) => v,
        Err(e) => {
            h.log_once_a_minute(&format!("mirage waterfall: SREM failed: {e}"));
            return;
        }
    };
    let mut names = Vec::new();
    for ((_, item), r) in due.into_iter().zip(removed) {
        let Some(item) = item else { continue };
        if r == 1 {
            m::MIRAGE_WATERFALL.inc();
            report.waterfall_alerts += 1;
            if names.len() < 5 {
                names.push(item.metric.clone());
            }
            anomalies.push(item.anomaly);
        }
    }
    if report.waterfall_alerts > 0 {
        // One line per run, not one per metric.
        warn!(
            "mirage waterfall: {} check(s) not decided by Mirage within {} s are alerted by the Analyzer: {}{}",
            report.waterfall_alerts,
            h.waterfall_secs,
            names.join(", "),
            if report.waterfall_alerts > names.len() { ", …" } else { "" }
        );
    }
}
