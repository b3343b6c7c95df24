//! Mirage's analysis, pure: Skyline's `determine_data_frequency`, the merge of recent Redis
//! data into the fetched days (`downsample_full_duration_and_merge_graphite`), and the nine
//! algorithms with `MIRAGE_CONSENSUS` (`mirage_algorithms.py`, spec §1.5.9–§1.6). No I/O, no
//! clock (`now` is handed in), no actix, redis or diesel.
//!
//! The algorithms are the Analyzer's (`analyze::algorithms`) run with `full_duration` 86400
//! (Mirage's first_hour_average hard-codes a day) and none of the Analyzer's pre-checks
//! (no Stale, Boring or TooShort; only the `min_tolerable_length` gate and the history gate).

use std::fmt::Write as _;
use std::ops::ControlFlow;

use crate::analyze::algorithms::{self, Algorithm, Workspace};

/// Mirage's first_hour_average window is always the hour a day before the last point.
pub const MIRAGE_FULL_DURATION: i64 = 86_400;

/// What the analysis needs from `[mirage]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MirageAnalysis {
    /// `MIRAGE_ALGORITHMS`, in run order.
    pub algorithms: Vec<Algorithm>,
    /// `MIRAGE_CONSENSUS`.
    pub consensus: usize,
    /// `MIN_TOLERABLE_LENGTH`.
    pub min_tolerable_length: usize,
}

impl Default for MirageAnalysis {
    fn default() -> Self {
        MirageAnalysis {
            algorithms: Algorithm::ALL.to_vec(),
            consensus: 6,
            min_tolerable_length: 100,
        }
    }
}

/// Why Mirage could not decide a check (the Analyzer's waterfall alert then stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecided {
    /// Fewer points than `min_tolerable_length`.
    TooShort,
    /// The series holds nothing older than a day before the anomaly (Skyline's "valid"
    /// history test, §1.5.5): days cannot be compared.
    NoHistory,
}

impl Undecided {
    /// Short name for logs and run stats.
    pub fn name(self) -> &'static str {
        match self {
            Undecided::TooShort => "too_short",
            Undecided::NoHistory => "no_history",
        }
    }
}

/// The outcome of [`analyse`].
#[derive(Debug, Clone, PartialEq)]
pub struct MirageVerdict {
    /// MIRAGE_CONSENSUS reached.
    pub anomalous: bool,
    /// Each algorithm's vote (None: raised, or not run once consensus was out of reach).
    pub ensemble: Vec<(Algorithm, Option<bool>)>,
}

impl MirageVerdict {
    /// Names of the algorithms that voted True.
    pub fn triggered(&self) -> Vec<String> {
        self.ensemble
            .iter()
            .filter(|(_, v)| *v == Some(true))
            .map(|(a, _)| a.name().to_string())
            .collect()
    }
}

/// Skyline's `determine_data_frequency`: the most common step among the last 101 points
/// (ties: the smallest); any value in 1..68 that is not a divisor-like step becomes 60.
pub fn determine_data_frequency(series: &[(f64, f64)]) -> i64 {
    let tail = &series[series.len().saturating_sub(101)..];
    let mut diffs: Vec<i64> = tail.windows(2).map(|w| (w[1].0 - w[0].0) as i64).collect();
    if diffs.is_empty() {
        return 60;
    }
    diffs.sort_unstable();
    let (mut best, mut best_n) = (diffs[0], 0usize);
    let mut i = 0;
    while i < diffs.len() {
        let j = diffs[i..].iter().take_while(|d| **d == diffs[i]).count();
        if j > best_n {
            best = diffs[i];
            best_n = j;
        }
        i += j;
    }
    if (1..68).contains(&best) && ![1, 2, 3, 5, 6, 10, 12, 15, 20, 30].contains(&best) {
        60
    } else {
        best
    }
}

/// Mean over right-closed bins of `res` seconds anchored at the last timestamp, each labelled
/// by its right edge floored to a multiple of `res` (pandas `resample(origin='end')`, spec
/// §1.5.9e). `series` must be sorted; NaN values are skipped; empty bins are dropped.
pub fn downsample_right_closed(series: &[(f64, f64)], res: i64) -> Vec<(f64, f64)> {
    let Some(&(last, _)) = series.last() else {
        return Vec::new();
    };
    let res_f = res.max(1) as f64;
    // Walk backwards: bin k holds last - (k+1)·res < t <= last - k·res.
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut cur: Option<(i64, f64, usize)> = None;
    for &(t, v) in series.iter().rev() {
        let k = ((last - t) / res_f).floor() as i64;
        match &mut cur {
            Some((ck, sum, n)) if *ck == k => {
                if v.is_finite() {
                    *sum += v;
                    *n += 1;
                }
            }
            _ => {
                if let Some((ck, sum, n)) = cur.take() {
                    push_bin(&mut out, last, ck, res_f, sum, n);
                }
                cur = Some(if v.is_finite() {
                    (k, v, 1)
                } else {
                    (k, 0.0, 0)
                });
            }
        }
    }
    if let Some((ck, sum, n)) = cur {
        push_bin(&mut out, last, ck, res_f, sum, n);
    }
    out.reverse();
    out
}

fn push_bin(out: &mut Vec<(f64, f64)>, last: f64, k: i64, res: f64, sum: f64, n: usize) {
    if n == 0 {
        return;
    }
    let right = last - k as f64 * res;
    out.push(((right / res).floor() * res, sum / n as f64));
}

/// The fetched days with their recent part replaced by the Redis series downsampled to the
/// days' own step (spec §1.5.9): no merge when the step is 60 s or Redis has nothing.
pub fn merge_recent(days: &[(f64, f64)], redis: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let step = determine_data_frequency(days);
    if step == 60 || redis.is_empty() {
        return days.to_vec();
    }
    let recent = downsample_right_closed(redis, step);
    let Some(first) = recent.first().map(|p| p.0) else {
        return days.to_vec();
    };
    let mut out: Vec<(f64, f64)> = days.iter().copied().filter(|p| p.0 < first).collect();
    out.extend(recent);
    out
}

/// Sorted by time, repeated timestamps removed (the first kept), non-finite timestamps
/// dropped (`mirage_algorithms.py:884-900`).
pub fn prepare(series: &mut Vec<(f64, f64)>) {
    series.retain(|p| p.0.is_finite());
    if !series.windows(2).all(|w| w[0].0 <= w[1].0) {
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series.dedup_by(|b, a| a.0 == b.0);
}

/// Mirage's verdict on a prepared series whose anomaly is at `metric_timestamp`. `now` is the
/// wall clock (ks_test's windows). With `short_circuit` the remaining algorithms are not run
/// once consensus is out of reach (the verdict is the same).
pub fn analyse_with(
    ws: &mut Workspace,
    series: &[(f64, f64)],
    metric_timestamp: f64,
    now: f64,
    s: &MirageAnalysis,
    short_circuit: bool,
) -> Result<MirageVerdict, Undecided> {
    if series.len() < s.min_tolerable_length.max(1) {
        return Err(Undecided::TooShort);
    }
    if series[0].0 > metric_timestamp - MIRAGE_FULL_DURATION as f64 {
        return Err(Undecided::NoHistory);
    }
    let max_false = s.algorithms.len() as i64 - s.consensus as i64;
    let mut ensemble: Vec<(Algorithm, Option<bool>)> = Vec::with_capacity(s.algorithms.len());
    let mut falses = 0i64;
    algorithms::run_algorithms(
        ws,
        series,
        now,
        MIRAGE_FULL_DURATION,
        &s.algorithms,
        |alg, vote| {
            ensemble.push((alg, vote));
            if vote == Some(false) {
                falses += 1;
            }
            if short_circuit && falses > max_false {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    for &a in &s.algorithms[ensemble.len()..] {
        ensemble.push((a, None));
    }
    Ok(MirageVerdict {
        anomalous: algorithms::consensus(&ensemble, s.consensus),
        ensemble,
    })
}

/// [`analyse_with`] with a fresh workspace and the short circuit on.
pub fn analyse(
    series: &[(f64, f64)],
    metric_timestamp: f64,
    now: f64,
    s: &MirageAnalysis,
) -> Result<MirageVerdict, Undecided> {
    analyse_with(
        &mut Workspace::new(),
        series,
        metric_timestamp,
        now,
        s,
        true,
    )
}

/// The last `hours` of `series` (points after `last - hours·3600`).
pub fn last_hours(series: &[(f64, f64)], hours: u64) -> &[(f64, f64)] {
    let Some(last) = series.last().map(|p| p.0) else {
        return series;
    };
    let from = last - hours as f64 * 3600.0;
    let start = series.partition_point(|p| p.0 < from);
    &series[start..]
}

/// `skyline analyze --csv FILE --mirage-hours H`: the second stage on a file, as a readable
/// report. The file is taken as Graphite would return it (its own step); every algorithm is
/// run so each vote is shown.
pub fn render_report(
    label: &str,
    series: &[(f64, f64)],
    hours: u64,
    now: f64,
    s: &MirageAnalysis,
) -> String {
    let window = last_hours(series, hours);
    let last = window.last().map(|p| p.0).unwrap_or(now);
    let mut out = String::new();
    let _ = writeln!(out, "series    {label}  (Mirage, {hours} h)");
    match (window.first(), window.last()) {
        (Some(f), Some(l)) => {
            let _ = writeln!(
                out,
                "points    {}  from {}  to {}  step {} s",
                window.len(),
                crate::analyze::crucible::format_timestamp(f.0),
                crate::analyze::crucible::format_timestamp(l.0),
                determine_data_frequency(window)
            );
        }
        _ => {
            let _ = writeln!(out, "points    0");
        }
    }
    let _ = writeln!(out);
    match analyse_with(&mut Workspace::new(), window, last, now, s, false) {
        Err(u) => {
            let _ = writeln!(
                out,
                "verdict   not decided ({}): the Analyzer's alert stands (waterfall)",
                u.name()
            );
        }
        Ok(v) => {
            let _ = writeln!(out, "{:<30} vote", "algorithm");
            let _ = writeln!(out, "{:-<30} -----", "");
            for (alg, vote) in &v.ensemble {
                let label = match vote {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "None",
                };
                let _ = writeln!(out, "{:<30} {label}", alg.name());
            }
            let count = |x: Option<bool>| v.ensemble.iter().filter(|(_, y)| *y == x).count();
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "consensus {} True, {} False, {} None; MIRAGE_CONSENSUS {} allows at most {} False",
                count(Some(true)),
                count(Some(false)),
                count(None),
                s.consensus,
                (s.algorithms.len() as i64 - s.consensus as i64).max(0)
            );
            let _ = writeln!(
                out,
                "verdict   {}",
                if v.anomalous {
                    "ANOMALOUS (Panorama app mirage + alert)"
                } else {
                    "not anomalous (cleared: no alert)"
                }
            );
            if let Some(p) = window.last() {
                let _ = writeln!(out, "datapoint {}", p.1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_is_the_modal_step() {
        let s: Vec<(f64, f64)> = (0..200).map(|i| (i as f64 * 600.0, 1.0)).collect();
        assert_eq!(determine_data_frequency(&s), 600);
        let s: Vec<(f64, f64)> = (0..200).map(|i| (i as f64 * 7.0, 1.0)).collect();
        assert_eq!(
            determine_data_frequency(&s),
            60,
            "odd small steps become 60"
        );
        let s: Vec<(f64, f64)> = (0..200).map(|i| (i as f64 * 10.0, 1.0)).collect();
        assert_eq!(determine_data_frequency(&s), 10);
        // Tie between 60 and 120: the smaller wins.
        let s = vec![(0.0, 1.0), (60.0, 1.0), (180.0, 1.0)];
        assert_eq!(determine_data_frequency(&s), 60);
    }

    /// Appendix B: Graphite 600-s data and Redis 60-s data give a last bucket that is the mean
    /// of the last 10 Redis points, labelled floor(last/600)·600.
    #[test]
    fn merge_last_bucket_is_the_mean_of_the_last_ten_redis_points() {
        let last = 1_700_000_000.0_f64 + 123.0;
        let days: Vec<(f64, f64)> = (0..1008)
            .map(|i| ((1_700_000_000 - (1007 - i) * 600) as f64, 5.0))
            .collect();
        let redis: Vec<(f64, f64)> = (0..1440)
            .map(|i| (last - (1439 - i) as f64 * 60.0, i as f64))
            .collect();
        let merged = merge_recent(&days, &redis);
        let (t, v) = *merged.last().unwrap();
        assert_eq!(t, (last / 600.0).floor() * 600.0);
        let want: f64 = (1430..1440).map(|i| i as f64).sum::<f64>() / 10.0;
        assert!((v - want).abs() < 1e-9, "{v} vs {want}");
        // Graphite points before the first Redis bucket are kept, and nothing overlaps.
        let first_recent = downsample_right_closed(&redis, 600)[0].0;
        assert!(merged.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(merged
            .iter()
            .filter(|p| p.0 < first_recent)
            .all(|p| p.1 == 5.0));
        // 60-s Graphite data is not merged.
        let minutely: Vec<(f64, f64)> = (0..200).map(|i| (i as f64 * 60.0, 1.0)).collect();
        assert_eq!(merge_recent(&minutely, &redis), minutely);
    }

    fn ens(t: usize, n: usize, f: usize) -> Vec<(Algorithm, Option<bool>)> {
        let mut v = Vec::new();
        let votes = std::iter::repeat_n(Some(true), t)
            .chain(std::iter::repeat_n(None, n))
            .chain(std::iter::repeat_n(Some(false), f));
        for (a, vote) in Algorithm::ALL.iter().zip(votes) {
            v.push((*a, vote));
        }
        v
    }

    /// Appendix B: 6 True / 3 False → anomalous; 5 True / 1 None / 3 False → anomalous;
    /// 5 True / 4 False → not.
    #[test]
    fn mirage_consensus_of_appendix_b() {
        assert!(algorithms::consensus(&ens(6, 0, 3), 6));
        assert!(algorithms::consensus(&ens(5, 1, 3), 6));
        assert!(!algorithms::consensus(&ens(5, 0, 4), 6));
    }

    fn week(level: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
        let end = 1_700_000_000.0;
        (0..1008)
            .map(|i| (end - (1007 - i) as f64 * 600.0, level(i)))
            .collect()
    }

    #[test]
    fn gates_and_verdicts() {
        let s = MirageAnalysis::default();
        let short = &week(|_| 1.0)[..99];
        let last = short.last().unwrap().0;
        assert_eq!(analyse(short, last, last, &s), Err(Undecided::TooShort));
        let day = &week(|_| 1.0)[1008 - 144..];
        let last = day.last().unwrap().0;
        assert_eq!(analyse(day, last, last, &s), Err(Undecided::NoHistory));
        // Steady noise then a level never seen: anomalous.
        let jump = week(|i| {
            if i >= 1005 {
                500.0
            } else {
                100.0 + (i % 7) as f64
            }
        });
        let last = jump.last().unwrap().0;
        let v = analyse(&jump, last, last, &s).unwrap();
        assert!(v.anomalous, "{v:?}");
        // Short circuit gives the same verdict as the full run.
        let full = analyse_with(&mut Workspace::new(), &jump, last, last, &s, false).unwrap();
        assert_eq!(full.anomalous, v.anomalous);
        let flat = week(|i| 100.0 + (i % 7) as f64);
        let v = analyse(&flat, last, last, &s).unwrap();
        assert!(!v.anomalous, "{v:?}");
    }

    #[test]
    fn prepare_sorts_and_dedups() {
        let mut s = vec![
            (3.0, 1.0),
            (1.0, 2.0),
            (1.0, 3.0),
            (f64::NAN, 0.0),
            (2.0, 4.0),
        ];
        prepare(&mut s);
        assert_eq!(s, vec![(1.0, 2.0), (2.0, 4.0), (3.0, 1.0)]);
    }
}
