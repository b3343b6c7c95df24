//! Skyline's nine analyzer algorithms, its pre-checks (TooShort / EmptyTimeseries, Stale,
//! Boring) and its CONSENSUS decision, as pure functions over a `(timestamp, value)` slice.
//!
//! Owns the numerics only: no I/O, no clock (the wall-clock `now` is always injected), no
//! actors, Redis or database. Every function is total: degenerate or non-finite input never
//! panics, and where the reference Python raises inside an algorithm (which Skyline turns into
//! a `None` vote) the function returns `None`.
//!
//! The numbers reproduce what the reference Skyline computes with its pinned libraries
//! (pairwise means, bottleneck's naive std, numba's loops and quickselect median, pandas' EWM
//! recursion, banker's rounding), see `stats`, because verdicts sit on `>` comparisons.

mod adf;
mod context;
mod first_hour_average;
mod grubbs;
mod histogram_bins;
mod ks_test;
mod least_squares;
mod mean_subtraction_cumulation;
mod median_absolute_deviation;
mod shortcut;
pub mod stats;
mod stddev_from_average;
mod stddev_from_moving_average;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use adf::{adf_tstat, ADF_T_CRITICAL};
pub use context::Workspace;
pub use first_hour_average::first_hour_average;
pub use grubbs::{critical_value as grubbs_critical_value, grubbs, t_isf};
pub use histogram_bins::histogram_bins;
pub use ks_test::{ks_statistic, ks_test};
pub use least_squares::{fit as least_squares_fit, least_squares};
pub use mean_subtraction_cumulation::mean_subtraction_cumulation;
pub use median_absolute_deviation::median_absolute_deviation;
pub use stats::tail_avg;
pub use stddev_from_average::stddev_from_average;
pub use stddev_from_moving_average::{stddev_from_moving_average, MovingAverage};

use context::Ctx;

/// One of Skyline's nine algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Tail average in a sparsely populated histogram bin.
    HistogramBins,
    /// Tail average far from the first hour of the FULL_DURATION window.
    FirstHourAverage,
    /// Tail average beyond 3 standard deviations of the whole series.
    StddevFromAverage,
    /// One-sided Grubbs test of the tail average.
    Grubbs,
    /// KS test of the last 10 minutes against the hour before, gated by ADF.
    KsTest,
    /// Last value's deviation from the mean of the others, in their standard deviations.
    MeanSubtractionCumulation,
    /// Last value more than 6 median absolute deviations from the median.
    MedianAbsoluteDeviation,
    /// Last value beyond 3 EWM standard deviations of the EWM mean.
    StddevFromMovingAverage,
    /// Last three residuals of a linear fit beyond 3 standard deviations.
    LeastSquares,
}

impl Algorithm {
    /// All nine, in Skyline G's default `ALGORITHMS` order (cheap, frequent triggers first).
    pub const ALL: [Algorithm; 9] = [
        Algorithm::HistogramBins,
        Algorithm::FirstHourAverage,
        Algorithm::StddevFromAverage,
        Algorithm::Grubbs,
        Algorithm::KsTest,
        Algorithm::MeanSubtractionCumulation,
        Algorithm::MedianAbsoluteDeviation,
        Algorithm::StddevFromMovingAverage,
        Algorithm::LeastSquares,
    ];

    /// Skyline's name for it, as used in `settings.ALGORITHMS`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HistogramBins => "histogram_bins",
            Algorithm::FirstHourAverage => "first_hour_average",
            Algorithm::StddevFromAverage => "stddev_from_average",
            Algorithm::Grubbs => "grubbs",
            Algorithm::KsTest => "ks_test",
            Algorithm::MeanSubtractionCumulation => "mean_subtraction_cumulation",
            Algorithm::MedianAbsoluteDeviation => "median_absolute_deviation",
            Algorithm::StddevFromMovingAverage => "stddev_from_moving_average",
            Algorithm::LeastSquares => "least_squares",
        }
    }

    /// Run this algorithm alone on `series`. `now` is only read by ks_test and
    /// `full_duration` only by first_hour_average.
    pub fn run(self, series: &[(f64, f64)], now: f64, full_duration: i64) -> Option<bool> {
        run_single(series, now, full_duration, self.kernel())
    }

    fn kernel(self) -> Kernel {
        match self {
            Algorithm::HistogramBins => histogram_bins::kernel,
            Algorithm::FirstHourAverage => first_hour_average::kernel,
            Algorithm::StddevFromAverage => stddev_from_average::kernel,
            Algorithm::Grubbs => grubbs::kernel,
            Algorithm::KsTest => ks_test::kernel,
            Algorithm::MeanSubtractionCumulation => mean_subtraction_cumulation::kernel,
            Algorithm::MedianAbsoluteDeviation => median_absolute_deviation::kernel,
            Algorithm::StddevFromMovingAverage => stddev_from_moving_average::kernel,
            Algorithm::LeastSquares => least_squares::kernel,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The error of parsing an unknown algorithm name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown algorithm '{}'", self.0)
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_string()))
    }
}

/// Why a series was not analysed (Skyline's `algorithm_exceptions`, in check order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Exception {
    /// Fewer than `min_tolerable_length` points.
    TooShort,
    /// No points at all (raised instead of TooShort; the analyzer drops the metric).
    EmptyTimeseries,
    /// The last point is more than `stale_period` seconds older than `now`.
    Stale,
    /// The last `max_tolerable_boredom` values hold exactly `boredom_set_size` distinct ones.
    Boring,
}

impl Exception {
    /// Skyline's class name, as counted in the analyzer's exception breakdown.
    pub fn name(self) -> &'static str {
        match self {
            Exception::TooShort => "TooShort",
            Exception::EmptyTimeseries => "EmptyTimeseries",
            Exception::Stale => "Stale",
            Exception::Boring => "Boring",
        }
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The analyzer settings `run_selected_algorithm` honours. `Default` is Skyline's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `ALGORITHMS`, in run order.
    pub algorithms: Vec<Algorithm>,
    /// `CONSENSUS`: anomalous iff at most `len(algorithms) - consensus` votes are False.
    pub consensus: usize,
    /// `FULL_DURATION` in seconds (first_hour_average's window).
    pub full_duration: i64,
    /// `MIN_TOLERABLE_LENGTH`.
    pub min_tolerable_length: usize,
    /// `STALE_PERIOD` in seconds.
    pub stale_period: i64,
    /// `MAX_TOLERABLE_BOREDOM`: how many trailing values the Boring check looks at.
    pub max_tolerable_boredom: usize,
    /// `BOREDOM_SET_SIZE`: the distinct-value count that makes a series Boring.
    pub boredom_set_size: usize,
    /// `RUN_OPTIMIZED_WORKFLOW`: stop running algorithms once consensus is impossible.
    pub run_optimized_workflow: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            algorithms: Algorithm::ALL.to_vec(),
            consensus: 6,
            full_duration: 86400,
            min_tolerable_length: 100,
            stale_period: 500,
            max_tolerable_boredom: 100,
            boredom_set_size: 1,
            run_optimized_workflow: true,
        }
    }
}

/// The outcome of [`run_selected_algorithm`].
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Skyline's CONSENSUS decision.
    pub anomalous: bool,
    /// Every configured algorithm with its vote, in run order: `None` when it raised or was
    /// skipped by the short-circuit. Empty when an exception applies.
    pub ensemble: Vec<(Algorithm, Option<bool>)>,
    /// The last raw value (not tail_avg); `None` when an exception applies.
    pub datapoint: Option<f64>,
    /// The pre-check that stopped the analysis, if any.
    pub exception: Option<Exception>,
}

impl Verdict {
    /// The algorithms that voted True (Skyline's `triggered_algorithms`).
    pub fn triggered(&self) -> Vec<Algorithm> {
        self.ensemble
            .iter()
            .filter(|(_, vote)| *vote == Some(true))
            .map(|(a, _)| *a)
            .collect()
    }

    fn exception(e: Exception) -> Self {
        Verdict {
            anomalous: false,
            ensemble: Vec::new(),
            datapoint: None,
            exception: Some(e),
        }
    }
}

type Kernel = fn(&mut Ctx<'_>) -> Option<bool>;

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::new());
}

/// Run `f` with this thread's workspace (or a fresh one if it is already in use).
fn with_workspace<R>(f: impl FnOnce(&mut Workspace) -> R) -> R {
    WORKSPACE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut ws) => f(&mut ws),
        Err(_) => f(&mut Workspace::new()),
    })
}

/// One algorithm on one series, through the thread's reusable buffers.
fn run_single(series: &[(f64, f64)], now: f64, full_duration: i64, kernel: Kernel) -> Option<bool> {
    with_workspace(|ws| kernel(&mut Ctx::new(ws.load(series), series, now, full_duration)))
}

/// One algorithm on one series with the decide-or-defer shortcuts switched off (tests compare
/// it with [`Algorithm::run`]).
#[cfg(test)]
fn run_exact(alg: Algorithm, series: &[(f64, f64)], now: f64, full_duration: i64) -> Option<bool> {
    let mut ws = Workspace::new();
    let mut ctx = Ctx::new(ws.load(series), series, now, full_duration);
    ctx.shortcuts = false;
    (alg.kernel())(&mut ctx)
}

/// Skyline's `run_selected_algorithm`: the pre-checks in Skyline's order, then the ensemble
/// and the CONSENSUS decision. `now` is the wall clock to use (Stale and ks_test).
pub fn run_selected_algorithm(series: &[(f64, f64)], now: f64, settings: &Settings) -> Verdict {
    with_workspace(|ws| run_selected_algorithm_with(ws, series, now, settings))
}

/// [`run_selected_algorithm`] with caller-owned buffers (no thread-local lookup).
pub fn run_selected_algorithm_with(
    ws: &mut Workspace,
    series: &[(f64, f64)],
    now: f64,
    settings: &Settings,
) -> Verdict {
    if let Some(e) = precheck(series, now, settings) {
        return Verdict::exception(e);
    }
    let mut ctx = Ctx::new(ws.load(series), series, now, settings.full_duration);
    let ensemble = run_ensemble(&mut ctx, settings);
    Verdict {
        anomalous: consensus(&ensemble, settings.consensus),
        ensemble,
        datapoint: series.last().map(|p| p.1),
        exception: None,
    }
}

/// Run `algorithms` in order on `series` *without* the pre-checks, handing each vote to
/// `on_vote`, and stop as soon as it returns `ControlFlow::Break`. Statistics shared between
/// algorithms are computed once. This is the building block for detectors with their own
/// decision rule (e.g. the NAB protocol's "at least N True").
pub fn run_algorithms(
    ws: &mut Workspace,
    series: &[(f64, f64)],
    now: f64,
    full_duration: i64,
    algorithms: &[Algorithm],
    mut on_vote: impl FnMut(Algorithm, Option<bool>) -> ControlFlow<()>,
) {
    let mut ctx = Ctx::new(ws.load(series), series, now, full_duration);
    for &alg in algorithms {
        if on_vote(alg, (alg.kernel())(&mut ctx)).is_break() {
            return;
        }
    }
}

/// The exceptions Skyline raises before running any algorithm, in its order.
pub fn precheck(series: &[(f64, f64)], now: f64, settings: &Settings) -> Option<Exception> {
    // With MIN_TOLERABLE_LENGTH 0 an empty series passes the length test and Skyline then
    // fails on `timeseries[-1]`; it is reported as empty either way.
    let Some(last) = series.last() else {
        return Some(Exception::EmptyTimeseries);
    };
    if series.len() < settings.min_tolerable_length {
        return Some(Exception::TooShort);
    }
    if now - last.0 > settings.stale_period as f64 {
        return Some(Exception::Stale);
    }
    if is_boring(series, settings) {
        return Some(Exception::Boring);
    }
    None
}

/// `len(set(v for the last MAX_TOLERABLE_BOREDOM points)) == BOREDOM_SET_SIZE`, with Python's
/// equality (1 == 1.0, 0.0 == -0.0) and every NaN distinct.
fn is_boring(series: &[(f64, f64)], settings: &Settings) -> bool {
    // Python's `ts[-0:]` is the whole series.
    let take = match settings.max_tolerable_boredom {
        0 => series.len(),
        k => k.min(series.len()),
    };
    let tail = &series[series.len() - take..];
    let limit = settings.boredom_set_size;
    // Count distinct values, stopping as soon as the count exceeds the set size.
    let mut distinct: Vec<f64> = Vec::with_capacity(limit.min(take) + 1);
    for &(_, v) in tail {
        if !distinct.contains(&v) {
            distinct.push(v);
            if distinct.len() > limit {
                return false;
            }
        }
    }
    distinct.len() == limit
}

/// Run the configured algorithms in order. With the optimized workflow, once
/// `len - consensus + 1` votes are False the remaining slots are filled with None unrun; as in
/// Skyline the test follows each algorithm, so the first one always runs.
fn run_ensemble(ctx: &mut Ctx<'_>, settings: &Settings) -> Vec<(Algorithm, Option<bool>)> {
    let max_false = settings.algorithms.len() as i64 - settings.consensus as i64 + 1;
    let mut false_count = 0i64;
    let mut consensus_possible = true;
    let mut ensemble = Vec::with_capacity(settings.algorithms.len());
    for &alg in &settings.algorithms {
        let vote = if consensus_possible {
            (alg.kernel())(ctx)
        } else {
            None
        };
        if vote == Some(false) {
            false_count += 1;
        }
        ensemble.push((alg, vote));
        if settings.run_optimized_workflow && false_count >= max_false {
            consensus_possible = false;
        }
    }
    ensemble
}

/// Skyline's decision: `count(False) <= len - CONSENSUS`, counting only literal False (a
/// None vote, from an error or the short-circuit, counts *for* anomalous), and never
/// anomalous when every vote is None.
///
/// This is the rule of the spec (§6.6) and of the vectors' README. Skyline G's
/// `run_selected_algorithm` since 2022-01 (Feature #3566) also requires
/// `count(False) > 0`, so there an ensemble without any False vote (e.g. all nine True) is
/// *not* anomalous. No reference vector has zero False votes, so the vectors cannot settle
/// it; the spec's rule is kept deliberately (see the `consensus_*` test).
pub fn consensus(ensemble: &[(Algorithm, Option<bool>)], consensus: usize) -> bool {
    if ensemble.iter().all(|(_, v)| v.is_none()) {
        return false;
    }
    let false_count = ensemble.iter().filter(|(_, v)| *v == Some(false)).count() as i64;
    false_count <= ensemble.len() as i64 - consensus as i64
}
