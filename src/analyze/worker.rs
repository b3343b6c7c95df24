//! `AnalysisWorker`: the analysis threads (Skyline's `spin_process`), a `SyncArbiter` pool of
//! `[analyzer] workers`. Each batch: decode every value, stable-sort by timestamp (Skyline G
//! sorts and keeps duplicates), run the algorithms, and return counts and anomalies.
//!
//! Backpressure: the run loop keeps at most two batches per worker in flight and awaits
//! replies, so the pool's mailbox never grows beyond that.

use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::error;

use super::algorithms::{self, Exception, Settings};
use super::messages::{exception_index, AnalyzeBatch, BatchOutcome};
use super::streaming::{StreamRun, STREAM};
use crate::model::msgpack::decode_series_f64;
use crate::model::{Anomaly, FULL_NAMESPACE};

/// One analysis thread.
pub struct AnalysisWorker {
    settings: Settings,
    host: String,
    /// Reused decode buffer.
    series: Vec<(f64, f64)>,
    /// The stream detector, when `[analyzer] detectors` has it.
    stream: Option<StreamRun>,
    /// `[analyzer] worker_nice`, applied when the thread starts.
    nice: i32,
}

impl AnalysisWorker {
    /// A worker with the analyzer settings and the host name recorded as `added_by`.
    pub fn new(settings: Settings, host: String) -> Self {
        AnalysisWorker {
            settings,
            host,
            series: Vec::with_capacity(2048),
            stream: None,
            nice: 0,
        }
    }

    /// Run this much lower in priority than the rest of the daemon (`[analyzer]
    /// worker_nice`).
    pub fn with_nice(mut self, nice: i32) -> Self {
        self.nice = nice;
        self
    }

    /// Also run the stream detector (its verdict combined with Skyline's as `run` says).
    pub fn with_stream(mut self, run: StreamRun) -> Self {
        self.stream = Some(run);
        self
    }
}

impl Actor for AnalysisWorker {
    type Context = SyncContext<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        crate::telemetry::priority::lower_thread_priority(self.nice, "analysis worker");
    }
}

/// Analyses one decoded, sorted series; pure apart from the clock it is handed.
pub fn analyse(
    name: &str,
    series: &[(f64, f64)],
    now: f64,
    settings: &Settings,
    host: &str,
) -> (algorithms::Verdict, Option<Anomaly>) {
    let verdict = algorithms::run_selected_algorithm(series, now, settings);
    if !verdict.anomalous {
        return (verdict, None);
    }
    let last = series.last().copied().unwrap_or((now, 0.0));
    let from = series.get(1).map(|p| p.0).unwrap_or(last.0);
    let anomaly = Anomaly {
        metric: name.to_string(),
        timestamp: last.0 as i64,
        datapoint: verdict.datapoint.unwrap_or(last.1),
        from_timestamp: from as i64,
        full_duration: last.0 as i64 - from as i64,
        algorithms_run: settings
            .algorithms
            .iter()
            .map(|a| a.name().to_string())
            .collect(),
        triggered_algorithms: verdict
            .triggered()
            .iter()
            .map(|a| a.name().to_string())
            .collect(),
        app: "analyzer".into(),
        source: "graphite".into(),
        host: host.to_string(),
        added_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    (verdict, Some(anomaly))
}

/// Apply the stream detector to one metric: feed it the series, combine its verdict with
/// Skyline's (`anomaly` is Skyline's), and return the anomaly to report, with `stream` among
/// its algorithms run and, when it fired, triggered.
fn with_stream(
    run: &StreamRun,
    name: &str,
    series: &[(f64, f64)],
    anomaly: Option<Anomaly>,
    host: &str,
) -> Option<Anomaly> {
    let (combined, v) = run.judge(name, series, anomaly.is_some());
    if !combined {
        return None;
    }
    let mut a = match anomaly {
        Some(a) => a,
        None => {
            let (t, value) = v.point.or(series.last().copied())?;
            let from = series.first().map_or(t, |p| p.0);
            Anomaly {
                metric: name.to_string(),
                timestamp: t as i64,
                datapoint: value,
                from_timestamp: from as i64,
                full_duration: t as i64 - from as i64,
                algorithms_run: Vec::new(),
                triggered_algorithms: Vec::new(),
                app: "analyzer".into(),
                source: "graphite".into(),
                host: host.to_string(),
                added_at: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
            }
        }
    };
    if !run.skyline {
        a.algorithms_run.clear();
        a.triggered_algorithms.clear();
    }
    a.algorithms_run.push(STREAM.to_string());
    if v.anomalous {
        a.triggered_algorithms.push(STREAM.to_string());
    }
    Some(a)
}

impl Handler<AnalyzeBatch> for AnalysisWorker {
    type Result = MessageResult<AnalyzeBatch>;

    fn handle(&mut self, batch: AnalyzeBatch, _ctx: &mut Self::Context) -> Self::Result {
        let mut out = BatchOutcome::default();
        let mut triggered = vec![0usize; self.settings.algorithms.len()];
        let mut logged = false;
        for (key, value) in batch.keys.iter().zip(batch.values) {
            let name = key.strip_prefix(FULL_NAMESPACE).unwrap_or(key);
            let bytes = value.unwrap_or_default();
            if let Err(err) = decode_series_f64(&bytes, &mut self.series) {
                out.exceptions[exception_index(None)] += 1;
                if !logged {
                    error!("cannot decode metric {name}: {err}");
                    logged = true;
                }
                continue;
            }
            // Stable sort by timestamp only; duplicates keep their arrival order.
            if !self.series.windows(2).all(|w| w[0].0 <= w[1].0) {
                self.series.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            let (verdict, mut anomaly) =
                analyse(name, &self.series, batch.now, &self.settings, &self.host);
            if let Some(run) = &self.stream {
                anomaly = with_stream(run, name, &self.series, anomaly, &self.host);
            }
            match verdict.exception {
                Some(e) => {
                    out.exceptions[exception_index(Some(e))] += 1;
                    if e == Exception::EmptyTimeseries {
                        out.empty.push(key.clone());
                    }
                }
                None => out.analysed += 1,
            }
            // Skyline's anomaly_breakdown: triggered algorithms of anomalous metrics only.
            if verdict.anomalous {
                for (i, (_, vote)) in verdict.ensemble.iter().enumerate() {
                    if *vote == Some(true) {
                        triggered[i] += 1;
                    }
                }
            }
            if let Some(a) = anomaly {
                out.training.push((
                    a.metric.clone(),
                    crate::ionosphere::training::bound_series(&self.series),
                ));
                out.anomalies.push(a);
            }
        }
        out.triggered = self
            .settings
            .algorithms
            .iter()
            .zip(triggered)
            .map(|(a, n)| (a.name(), n))
            .collect();
        MessageResult(out)
    }
}
