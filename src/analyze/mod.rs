//! Analyze: Skyline's Analyzer.
//!
//! Actors: [`Analyzer`] (the run loop, on the system arbiter: timer-driven, reads Redis,
//! writes the run's outputs) and [`AnalysisWorker`] (a `SyncArbiter` pool of
//! `[analyzer] workers` threads running the algorithms). Messages: `AnalyzeBatch` (loop →
//! pool, internal); outbound `panorama::RecordAnomaly` and `alert::AlertAnomaly` to every
//! anomaly recipient.
//!
//! Redis keys read: `metrics.unique_metrics`, `metrics.<name>`. Written: SREM of empty keys
//! from `metrics.unique_metrics` (as Skyline), `analyzer.current_anomalies`,
//! `analyzer.run_stats`, `analyzer` (heartbeat). File: `[analyzer] anomaly_dump` (JSONP).
//!
//! Backpressure: the loop keeps at most two batches per worker in flight; anomalies go out
//! with `do_send` (at most one per anomalous metric per run). Overrunning runs are skipped
//! ticks, counted and logged.
//!
//! [`algorithms`] is pure (no actix, redis or diesel); [`crucible`] and [`nab`] are the
//! offline front ends (`skyline analyze`, `skyline nab`). [`stream`] is the pure stream
//! detector and [`streaming`] the per-metric states the workers feed it (`[analyzer]
//! detectors`, `combine`; docs/stream.md).

pub mod algorithms;
pub mod config;
pub mod crucible;
mod messages;
pub mod nab;
mod runner;
pub mod stream;
pub mod streaming;
pub mod to_ionosphere;
pub mod waterfall;
mod worker;

pub use messages::{AnalyzeBatch, BatchOutcome};
pub use runner::{
    run_cycle, run_cycle_assigned, Analyzer, ClusterRole, RunReport, RunnerSettings,
    CURRENT_ANOMALIES_KEY, RUN_STATS_KEY,
};
pub use worker::{analyse, AnalysisWorker};

impl config::AnalyzerSettings {
    /// The algorithm settings these config values describe (names were validated at load).
    pub fn algorithm_settings(&self, full_duration_secs: u64) -> algorithms::Settings {
        algorithms::Settings {
            algorithms: self
                .algorithms
                .iter()
                .filter_map(|a| a.parse::<algorithms::Algorithm>().ok())
                .collect(),
            consensus: self.consensus,
            full_duration: full_duration_secs as i64,
            min_tolerable_length: self.min_tolerable_length,
            stale_period: self.stale_period_secs,
            max_tolerable_boredom: self.max_tolerable_boredom,
            boredom_set_size: self.boredom_set_size,
            run_optimized_workflow: self.run_optimized_workflow,
        }
    }

    /// Analysis threads to start.
    pub fn worker_count(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            self.workers
        }
    }
}

#[cfg(test)]
mod tests {
    use super::algorithms::Algorithm;
    use super::config::ALGORITHM_NAMES;

    #[test]
    fn config_names_are_the_algorithms_in_skyline_order() {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names, ALGORITHM_NAMES.to_vec());
        for n in ALGORITHM_NAMES {
            assert_eq!(n.parse::<Algorithm>().map(|a| a.name()), Ok(n));
        }
    }
}
