//! Messages between the analyzer's run loop and its worker pool (both inside `analyze`).

use actix::prelude::*;

use crate::model::Anomaly;

use super::algorithms::Exception;

/// A chunk of metrics to analyse: full keys and their raw Redis values (from one MGET).
#[derive(Message)]
#[rtype(result = "BatchOutcome")]
pub struct AnalyzeBatch {
    /// Full keys (`metrics.<name>`).
    pub keys: Vec<String>,
    /// Their values; `None` when the key vanished since SMEMBERS.
    pub values: Vec<Option<Vec<u8>>>,
    /// The run's wall clock (epoch seconds), used for Stale and ks_test.
    pub now: f64,
}

/// What a worker found in one batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Metrics analysed (no exception).
    pub analysed: usize,
    /// Exception counts, indexed by [`exception_index`].
    pub exceptions: [usize; 5],
    /// Votes per algorithm name that were True, for the anomaly breakdown.
    pub triggered: Vec<(&'static str, usize)>,
    /// Anomalies found.
    pub anomalies: Vec<Anomaly>,
    /// Keys whose series was empty (removed from the unique set, as Skyline does).
    pub empty: Vec<String>,
    /// The analysed series of each anomaly (base name, newest
    /// `ionosphere::training::MAX_TRAINING_POINTS` points), kept for Ionosphere training.
    pub training: Vec<(String, Vec<(i64, f64)>)>,
}

/// Index of an exception in [`BatchOutcome::exceptions`]; 4 is `Other` (undecodable).
pub fn exception_index(e: Option<Exception>) -> usize {
    match e {
        Some(Exception::TooShort) => 0,
        Some(Exception::EmptyTimeseries) => 1,
        Some(Exception::Stale) => 2,
        Some(Exception::Boring) => 3,
        None => 4,
    }
}

/// Names of the exception counters, in [`exception_index`] order.
pub const EXCEPTION_NAMES: [&str; 5] = ["TooShort", "EmptyTimeseries", "Stale", "Boring", "Other"];
