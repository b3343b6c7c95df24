//! Agreement with the reference vectors (`../shared/vectors/algorithms.jsonl`, the reference
//! Skyline's own output) and with the spec's fixtures, plus edge cases.

use std::sync::OnceLock;

use serde_json::Value;

use super::*;

/// The vectors sit beside the repository (`../shared`), locally and in CI alike. A missing
/// file fails the tests: it must never turn into a silent skip.
const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/vectors/algorithms.jsonl"
);

struct Vector {
    metric: String,
    now: f64,
    series: Vec<(f64, f64)>,
    expected: Value,
    meta: Value,
}

fn vectors() -> &'static [Vector] {
    static VECTORS_CELL: OnceLock<Vec<Vector>> = OnceLock::new();
    VECTORS_CELL.get_or_init(load_vectors)
}

fn load_vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(VECTORS)
        .unwrap_or_else(|e| panic!("cannot read the reference vectors at {VECTORS}: {e}"));
    let vectors: Vec<Vector> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_vector)
        .collect();
    assert_eq!(
        vectors.len(),
        300,
        "the public vector file holds 300 series"
    );
    vectors
}

fn parse_vector(line: &str) -> Vector {
    let v: Value = serde_json::from_str(line).expect("vector line is JSON");
    let series = v["timeseries"]
        .as_array()
        .expect("timeseries array")
        .iter()
        .map(|p| {
            (
                p[0].as_f64().expect("numeric timestamp"),
                p[1].as_f64().expect("numeric value"),
            )
        })
        .collect();
    Vector {
        metric: v["metric"].as_str().expect("metric").to_string(),
        now: v["now"].as_f64().expect("now"),
        series,
        expected: v["expected"].clone(),
        meta: v["meta"].clone(),
    }
}

fn vote_json(v: Option<bool>) -> Value {
    v.map_or(Value::Null, Value::Bool)
}

fn all_algorithms_run() -> Settings {
    Settings {
        run_optimized_workflow: false,
        ..Settings::default()
    }
}

/// Every series: the exception, each of the nine raw votes (short-circuit off), the
/// consensus and the datapoint, with no exception allowed.
#[test]
fn vectors_agree_on_every_vote_verdict_and_datapoint() {
    let settings = all_algorithms_run();
    let mut agree = [0usize; 9];
    let mut analysed = 0usize;
    let mut mismatches = Vec::new();
    for v in vectors() {
        let verdict = run_selected_algorithm(&v.series, v.now, &settings);
        let exception = verdict.exception.map(|e| Value::from(e.name()));
        if exception.unwrap_or(Value::Null) != v.expected["exception"] {
            mismatches.push(format!("{}: exception {:?}", v.metric, verdict.exception));
            continue;
        }
        if Value::Bool(verdict.anomalous) != v.expected["anomalous"] {
            mismatches.push(format!("{}: anomalous {}", v.metric, verdict.anomalous));
        }
        let datapoint = verdict.datapoint.map_or(Value::Null, Value::from);
        if datapoint.as_f64() != v.expected["datapoint"].as_f64() {
            mismatches.push(format!("{}: datapoint {datapoint}", v.metric));
        }
        if verdict.exception.is_some() {
            assert!(verdict.ensemble.is_empty() && v.expected["ensemble"].is_null());
            continue;
        }
        analysed += 1;
        assert_eq!(verdict.ensemble.len(), 9);
        for (i, (alg, vote)) in verdict.ensemble.iter().enumerate() {
            assert_eq!(*alg, Algorithm::ALL[i]);
            let expected = &v.expected["ensemble"][alg.name()];
            if *expected == vote_json(*vote) {
                agree[i] += 1;
            } else {
                mismatches.push(format!(
                    "{}: {alg} {vote:?}, expected {expected} (fragile: {})",
                    v.metric, v.meta["fragile"]
                ));
            }
        }
    }
    for (alg, n) in Algorithm::ALL.iter().zip(agree) {
        eprintln!("{alg:28} {n}/{analysed}");
    }
    assert_eq!(analysed, 279);
    assert!(
        mismatches.is_empty(),
        "disagreements:\n{}",
        mismatches.join("\n")
    );
}

/// With the short-circuit on (Skyline's default) the verdict and datapoint do not change;
/// the votes that ran are the raw votes and the skipped slots are None.
#[test]
fn vectors_short_circuit_keeps_verdicts() {
    let settings = Settings::default();
    let mut skipped_some = 0;
    for v in vectors() {
        let verdict = run_selected_algorithm(&v.series, v.now, &settings);
        assert_eq!(
            Value::Bool(verdict.anomalous),
            v.expected["anomalous"],
            "{}",
            v.metric
        );
        assert_eq!(
            verdict.datapoint,
            v.expected["datapoint"].as_f64(),
            "{}",
            v.metric
        );
        let mut false_count = 0;
        for (alg, vote) in &verdict.ensemble {
            if false_count >= 4 {
                assert_eq!(*vote, None, "{}: {alg} should have been skipped", v.metric);
                skipped_some += 1;
                continue;
            }
            assert_eq!(
                vote_json(*vote),
                v.expected["ensemble"][alg.name()],
                "{}: {alg}",
                v.metric
            );
            if *vote == Some(false) {
                false_count += 1;
            }
        }
    }
    assert!(skipped_some > 0, "the short-circuit never triggered");
}

/// The nine functions called directly on the exception series (constant, short, stale data)
/// agree with `meta.ensemble_without_prechecks`.
#[test]
fn vectors_direct_calls_bypassing_prechecks() {
    let mut checked = 0;
    for v in vectors() {
        let expected = &v.meta["ensemble_without_prechecks"];
        if expected.is_null() {
            continue;
        }
        for alg in Algorithm::ALL {
            let vote = alg.run(&v.series, v.now, 86400);
            assert_eq!(
                vote_json(vote),
                expected[alg.name()],
                "{}: {alg} called directly",
                v.metric
            );
        }
        checked += 1;
    }
    // 10 Boring + 6 Stale + 4 TooShort; the empty series has no entry.
    assert_eq!(checked, 20);
}

/// With the decide-or-defer shortcuts switched off, the exact reproduction alone also gives
/// every reference vote.
#[test]
fn vectors_agree_without_shortcuts() {
    for v in vectors() {
        let ensemble = &v.expected["ensemble"];
        if ensemble.is_null() {
            continue;
        }
        for alg in Algorithm::ALL {
            let vote = run_exact(alg, &v.series, v.now, 86400);
            assert_eq!(vote_json(vote), ensemble[alg.name()], "{}: {alg}", v.metric);
        }
    }
}

/// The named per-algorithm functions are the same as `Algorithm::run`.
#[test]
fn vectors_named_functions_match_dispatch() {
    for v in vectors().iter().step_by(7) {
        let s = &v.series;
        let direct = [
            histogram_bins(s),
            first_hour_average(s, 86400),
            stddev_from_average(s),
            grubbs(s),
            ks_test(s, v.now),
            mean_subtraction_cumulation(s),
            median_absolute_deviation(s),
            stddev_from_moving_average(s),
            least_squares(s),
        ];
        for (alg, vote) in Algorithm::ALL.iter().zip(direct) {
            assert_eq!(vote, alg.run(s, v.now, 86400), "{}: {alg}", v.metric);
        }
    }
}

/// Spec §11.1: 86,401 one-second points of 1 with a last value of 1000.
fn fixture_11_1() -> (Vec<(f64, f64)>, f64) {
    let now = 1_700_000_000.0_f64;
    let mut series: Vec<(f64, f64)> = (0..=86400)
        .map(|i| (now - 86400.0 + f64::from(i), 1.0))
        .collect();
    if let Some(last) = series.last_mut() {
        last.1 = 1000.0;
    }
    (series, now)
}

#[test]
fn fixture_11_1_votes_and_verdict() {
    let (series, now) = fixture_11_1();
    let values: Vec<f64> = series.iter().map(|p| p.1).collect();
    assert_eq!(tail_avg(&values), Some(334.0));
    assert_eq!(grubbs(&series), Some(true));
    assert_eq!(first_hour_average(&series, 86400), Some(true));
    assert_eq!(stddev_from_average(&series), Some(true));
    assert_eq!(stddev_from_moving_average(&series), Some(true));
    assert_eq!(mean_subtraction_cumulation(&series), Some(true));
    assert_eq!(least_squares(&series), Some(true));
    assert_eq!(histogram_bins(&series), Some(true));
    assert_eq!(median_absolute_deviation(&series), Some(false));
    assert_eq!(ks_test(&series, now), Some(false));

    let verdict = run_selected_algorithm(&series, now, &all_algorithms_run());
    let votes: Vec<Option<bool>> = verdict.ensemble.iter().map(|(_, v)| *v).collect();
    let (t, f) = (Some(true), Some(false));
    assert_eq!(votes, vec![t, t, t, t, f, t, f, t, t]);
    assert!(verdict.anomalous);
    assert_eq!(verdict.triggered().len(), 7);
    assert_eq!(verdict.datapoint, Some(1000.0));
    assert_eq!(verdict.exception, None);
    let optimized = run_selected_algorithm(&series, now, &Settings::default());
    assert!(optimized.anomalous);
    assert_eq!(optimized.datapoint, Some(1000.0));
}

#[test]
fn fixture_11_1_ewm_intermediates() {
    let (series, _) = fixture_11_1();
    let mut ewm = stats::EwmCov::new(50.0);
    for p in &series {
        ewm.push(p.1);
    }
    assert!((ewm.mean() - 20.588235294).abs() < 1e-9, "{}", ewm.mean());
    assert!((ewm.std() - 139.200566011).abs() < 1e-9, "{}", ewm.std());
}

/// Spec §11.4: τ = t.isf(0.05/(2n), n-2) and the critical value, to 1e-9.
#[test]
fn grubbs_critical_values_match_spec_table() {
    let table = [
        (3usize, 38.1884592970, 1.1543048513),
        (10, 3.8325186853, 2.2899540845),
        (100, 3.6008121696, 3.3840829012),
        (1000, 4.0734220553, 4.0399781638),
        (1440, 4.1531481908, 4.1284627892),
        (8665, 4.5374575052, 4.5320752573),
        (86401, 4.9985699509, 4.9978473405),
    ];
    for (n, tau, g) in table {
        let nf = n as f64;
        let got_tau = t_isf(0.05 / (2.0 * nf), nf - 2.0);
        assert!((got_tau - tau).abs() < 1e-9, "n={n}: τ {got_tau} vs {tau}");
        let got_g = grubbs_critical_value(n);
        assert!((got_g - g).abs() < 1e-9, "n={n}: G {got_g} vs {g}");
        // Cached lookups return the same bits.
        assert_eq!(grubbs_critical_value(n).to_bits(), got_g.to_bits());
    }
    assert!(grubbs_critical_value(2).is_nan());
    assert!(grubbs_critical_value(0).is_nan());
}

fn ensemble_of(votes: &[Option<bool>]) -> Vec<(Algorithm, Option<bool>)> {
    Algorithm::ALL
        .iter()
        .copied()
        .zip(votes.iter().copied())
        .collect()
}

#[test]
fn consensus_counts_none_as_not_false() {
    let (t, f, n) = (Some(true), Some(false), None);
    // Kind none_decides: 5 True + 1 None + 3 False is anomalous only through the None.
    assert!(consensus(&ensemble_of(&[t, t, t, t, t, n, f, f, f]), 6));
    assert!(!consensus(&ensemble_of(&[t, t, t, t, t, f, f, f, f]), 6));
    assert!(consensus(&ensemble_of(&[t, t, t, t, t, t, f, f, f]), 6));
    // Every vote None: never anomalous.
    assert!(!consensus(&ensemble_of(&[n; 9]), 6));
    // One real vote among Nones is enough to decide.
    assert!(consensus(&ensemble_of(&[t, n, n, n, n, n, n, n, n]), 6));
    // All True, and no False at all: anomalous under the spec's rule kept here. (Skyline G's
    // code since 2022-01 adds `count(False) > 0` and would say not anomalous; no vector
    // covers it.)
    assert!(consensus(&ensemble_of(&[t; 9]), 6));
    assert!(consensus(&ensemble_of(&[t, t, t, t, t, t, t, t, n]), 6));
    // CONSENSUS larger than the ensemble can never be met.
    assert!(!consensus(&ensemble_of(&[t; 9]), 10));
    assert!(!consensus(&[], 6));
}

/// The short-circuit fills the slots after the 4th False with None, and the verdict is the
/// same as running everything.
#[test]
fn short_circuit_fills_remaining_slots_with_none() {
    let series: Vec<(f64, f64)> = (0..1440)
        .map(|i| (1_600_000_000.0 + 60.0 * f64::from(i), f64::from(i % 7)))
        .collect();
    let now = 1_600_000_000.0 + 60.0 * 1439.0;
    let optimized = run_selected_algorithm(&series, now, &Settings::default());
    let full = run_selected_algorithm(&series, now, &all_algorithms_run());
    assert_eq!(optimized.anomalous, full.anomalous);
    let falses = optimized
        .ensemble
        .iter()
        .take_while(|(_, v)| v.is_some())
        .filter(|(_, v)| *v == Some(false))
        .count();
    assert_eq!(falses, 4);
    assert!(optimized.ensemble.iter().any(|(_, v)| v.is_none()));
    assert!(full.ensemble.iter().all(|(_, v)| v.is_some()));
    // CONSENSUS above the ensemble size: like Skyline, the first algorithm still runs before
    // consensus is found impossible.
    let impossible = Settings {
        consensus: 10,
        ..Settings::default()
    };
    let v = run_selected_algorithm(&series, now, &impossible);
    assert!(v.ensemble[0].1.is_some());
    assert!(v.ensemble[1..].iter().all(|(_, vote)| vote.is_none()));
    assert!(!v.anomalous);
}

fn constant_tail(tail: &[f64]) -> Vec<(f64, f64)> {
    let mut values: Vec<f64> = (0..200).map(f64::from).collect();
    values.extend_from_slice(tail);
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| (1_600_000_000.0 + 60.0 * i as f64, v))
        .collect()
}

#[test]
fn boring_is_equality_with_the_set_size() {
    let now = |s: &[(f64, f64)]| s[s.len() - 1].0;
    let flat = constant_tail(&[5.0; 100]);
    let settings = Settings::default();
    assert_eq!(
        precheck(&flat, now(&flat), &settings),
        Some(Exception::Boring)
    );
    // BOREDOM_SET_SIZE 2: a constant tail has 1 distinct value, which is not == 2.
    let two = Settings {
        boredom_set_size: 2,
        ..Settings::default()
    };
    assert_eq!(precheck(&flat, now(&flat), &two), None);
    let mut alternating = vec![1.0; 100];
    for v in alternating.iter_mut().step_by(2) {
        *v = 2.0;
    }
    let alt = constant_tail(&alternating);
    assert_eq!(precheck(&alt, now(&alt), &two), Some(Exception::Boring));
    assert_eq!(precheck(&alt, now(&alt), &settings), None);
    // Python equality: 0.0 == -0.0 (and 1 == 1.0, which f64 cannot tell apart anyway).
    let mut zeros = vec![0.0; 100];
    zeros[3] = -0.0;
    let z = constant_tail(&zeros);
    assert_eq!(precheck(&z, now(&z), &settings), Some(Exception::Boring));
    // Every NaN is a distinct object in Python's set.
    let nans = constant_tail(&[f64::NAN; 100]);
    assert_eq!(precheck(&nans, now(&nans), &settings), None);
    // One different value in the last 100 is enough to be analysed.
    let mut almost = vec![5.0; 100];
    almost[0] = 6.0;
    let a = constant_tail(&almost);
    assert_eq!(precheck(&a, now(&a), &settings), None);
}

#[test]
fn precheck_order_and_boundaries() {
    let settings = Settings::default();
    assert_eq!(
        precheck(&[], 0.0, &settings),
        Some(Exception::EmptyTimeseries)
    );
    let short: Vec<(f64, f64)> = (0..99).map(|i| (f64::from(i), f64::from(i))).collect();
    // TooShort wins over Stale.
    assert_eq!(precheck(&short, 1e9, &settings), Some(Exception::TooShort));
    let series = constant_tail(&[1.0; 100]);
    let last = series[series.len() - 1].0;
    // Stale is strict (> 500) and wins over Boring.
    assert_eq!(
        precheck(&series, last + 501.0, &settings),
        Some(Exception::Stale)
    );
    assert_eq!(
        precheck(&series, last + 500.0, &settings),
        Some(Exception::Boring)
    );
    let verdict = run_selected_algorithm(&series, last + 600.0, &settings);
    assert_eq!(verdict.exception, Some(Exception::Stale));
    let lenient = Settings {
        min_tolerable_length: 0,
        ..Settings::default()
    };
    assert_eq!(
        precheck(&[], 0.0, &lenient),
        Some(Exception::EmptyTimeseries)
    );
    assert!(!verdict.anomalous && verdict.ensemble.is_empty() && verdict.datapoint.is_none());
}

#[test]
fn bankers_rounding_gates() {
    use stats::py_round_nonzero;
    assert_eq!(py_round_nonzero(0.5), Some(false));
    assert_eq!(py_round_nonzero(-0.5), Some(false));
    assert_eq!(py_round_nonzero(0.5000000000000001), Some(true));
    assert_eq!(py_round_nonzero(1.5), Some(true));
    assert_eq!(py_round_nonzero(2.5), Some(true));
    assert_eq!(py_round_nonzero(0.49999999999999994), Some(false));
    assert_eq!(py_round_nonzero(f64::NAN), None);
    assert_eq!(py_round_nonzero(f64::INFINITY), None);
    assert_eq!(2.5f64.round_ties_even(), 2.0);
    // least_squares' gate: |t| > 3·std passes, but round(std) == 0 with std = 0.5.
    assert_eq!(least_squares::evaluate(10.0, 0.5), Some(false));
    assert_eq!(least_squares::evaluate(10.0, 0.51), Some(true));
    assert_eq!(least_squares::evaluate(0.5, 0.1), Some(false));
    assert_eq!(least_squares::evaluate(-1.6, 0.51), Some(true));
    assert_eq!(least_squares::evaluate(1.0, 0.51), Some(false));
    // A non-finite mean reaching round() raises in Python.
    assert_eq!(least_squares::evaluate(f64::INFINITY, 1.0), None);
    assert_eq!(least_squares::evaluate(1.0, f64::NAN), Some(false));
}

fn series_of(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (1_600_000_000.0 + 60.0 * i as f64, v))
        .collect()
}

#[test]
fn histogram_bins_edge_cases() {
    // Constant series: every value lands in bin 14 (no division by zero) and bin 0 fires iff
    // tail_avg <= min.
    assert_eq!(histogram_bins(&series_of(&[1.0; 200])), Some(true));
    assert_eq!(histogram_bins(&series_of(&[0.0; 200])), Some(true));
    // (0.1 + 0.1 + 0.1) / 3 rounds above 0.1.
    assert_eq!(histogram_bins(&series_of(&[0.1; 200])), Some(false));
    // T equal to the maximum never triggers (half-open bins), however sparse the top bin.
    let mut v: Vec<f64> = (0..200).map(|i| f64::from(i % 10)).collect();
    v.extend([100.0, 100.0, 100.0]);
    assert_eq!(histogram_bins(&series_of(&v)), Some(false));
    // T inside a sparse middle bin triggers.
    let mut v: Vec<f64> = (0..200).map(|i| f64::from(i % 2) * 100.0).collect();
    v.extend([50.0, 50.0, 50.0]);
    assert_eq!(histogram_bins(&series_of(&v)), Some(true));
    // T inside bin 0 but above the minimum does not trigger even when bin 0 is sparse.
    let mut v: Vec<f64> = (0..200).map(|_| 100.0).collect();
    v.extend([0.0, 1.0, 1.0, 1.0]);
    assert_eq!(histogram_bins(&series_of(&v)), Some(false));
    // NaNs are dropped before binning but poison tail_avg.
    let mut v: Vec<f64> = (0..200).map(|i| f64::from(i % 2) * 100.0).collect();
    v.extend([f64::NAN, 50.0, 50.0, 50.0]);
    assert_eq!(histogram_bins(&series_of(&v)), Some(true));
    v.push(f64::NAN);
    assert_eq!(histogram_bins(&series_of(&v)), Some(false));
    assert_eq!(histogram_bins(&series_of(&[f64::NAN; 5])), None);
    assert_eq!(histogram_bins(&[]), None);
    // One and two points: tail_avg is the last value, which equals min (bin 0) or max.
    assert_eq!(histogram_bins(&series_of(&[3.0])), Some(true));
    assert_eq!(histogram_bins(&series_of(&[3.0, 4.0])), Some(false));
    assert_eq!(histogram_bins(&series_of(&[4.0, 3.0])), Some(true));
}

#[test]
fn tail_avg_shapes() {
    assert_eq!(tail_avg(&[]), None);
    assert_eq!(tail_avg(&[7.0]), Some(7.0));
    assert_eq!(tail_avg(&[1.0, 7.0]), Some(7.0));
    assert_eq!(tail_avg(&[9.0, 1.0, 1.0, 2.0]), Some(4.0 / 3.0));
}

#[test]
fn numba_median_matches_sorting() {
    let data = [5.0, 3.0, 9.0, 1.0, 7.0, 3.0, 8.0, 2.0, 2.0, 6.0];
    for n in 1..=data.len() {
        let mut buf = data[..n].to_vec();
        let mut sorted = data[..n].to_vec();
        sorted.sort_by(f64::total_cmp);
        let expected = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        assert_eq!(stats::numba_median(&mut buf), expected, "n={n}");
    }
    assert!(stats::numba_median(&mut []).is_nan());
    // NaN does not propagate through the quickselect (spec §13) and never panics.
    let mut with_nan = vec![1.0, f64::NAN, 3.0, 2.0, 5.0];
    let m = stats::numba_median(&mut with_nan);
    assert!(!m.is_nan());
}

#[test]
fn pairwise_sum_blocks() {
    let v: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.1).collect();
    for n in [0, 1, 7, 8, 9, 127, 128, 129, 256, 1000] {
        let naive: f64 = v[..n].iter().sum();
        assert!((stats::pairwise_sum(&v[..n]) - naive).abs() < 1e-9 * (1.0 + naive.abs()));
    }
    // numpy: np.sum([0.1] * 10) == 1.0, while Python's sequential sum() gives 0.999...9.
    assert_eq!(stats::pairwise_sum(&[0.1; 10]), 1.0);
    assert_eq!(stats::naive_sum(&[0.1; 10]), 0.9999999999999999);
}

#[test]
fn ks_statistic_and_adf_guards() {
    let a: Vec<f64> = (0..30).map(f64::from).collect();
    let b: Vec<f64> = (100..130).map(f64::from).collect();
    assert_eq!(ks_statistic(&a, &b), 1.0);
    assert_eq!(ks_statistic(&a, &a), 0.0);
    assert!(ks_statistic(&a, &[]).is_nan());
    // statsmodels refuses maxlag 10 below 24 observations, and constant input.
    assert_eq!(adf_tstat(&a[..23]), None);
    assert!(adf_tstat(&a[..24]).is_some());
    assert_eq!(adf_tstat(&[3.0; 40]), None);
    assert_eq!(adf_tstat(&[f64::NAN; 40]), None);
}

/// ks_test's None vote: D > 0.5 with a reference window of 20–23 points.
#[test]
fn ks_test_none_for_short_reference() {
    let now = 1_600_000_000.0;
    // 22 reference points (one every 130 s), then 60 probe points at 10 s, shifted up.
    let mut series: Vec<(f64, f64)> = (0..22)
        .map(|i| (now - 3590.0 + 130.0 * f64::from(i), f64::from(i % 5)))
        .collect();
    series.extend((0..60).map(|i| (now - 590.0 + 10.0 * f64::from(i), 100.0 + f64::from(i % 3))));
    assert_eq!(ks_test(&series, now), None);
}

/// Degenerate and non-finite input never panics anywhere.
#[test]
fn degenerate_input_never_panics() {
    let base: Vec<f64> = (0..150).map(|i| f64::from(i % 13)).collect();
    let mut cases: Vec<Vec<(f64, f64)>> = vec![
        vec![],
        series_of(&[1.0]),
        series_of(&[1.0, 2.0]),
        series_of(&[f64::NAN; 150]),
        series_of(&[f64::INFINITY; 150]),
        series_of(&[f64::MAX, -f64::MAX, f64::MAX]),
        series_of(&[1e300; 150]),
        vec![(f64::NAN, 1.0); 150],
        vec![(0.0, 1.0), (0.0, 2.0), (0.0, 3.0), (0.0, 4.0)],
        vec![(1e9, 1.0), (1e9, 2.0), (1e9, 3.0), (1e9, 4.0)],
    ];
    for poison in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for at in [0, 75, 147, 149] {
            let mut v = base.clone();
            v[at] = poison;
            cases.push(series_of(&v));
        }
    }
    for s in &cases {
        let now = s.last().map_or(0.0, |p| p.0);
        for alg in Algorithm::ALL {
            let _ = alg.run(s, now, 86400);
        }
        for settings in [Settings::default(), all_algorithms_run()] {
            let _ = run_selected_algorithm(s, now, &settings);
            let lenient = Settings {
                min_tolerable_length: 0,
                max_tolerable_boredom: 0,
                ..settings
            };
            let _ = run_selected_algorithm(s, now, &lenient);
        }
    }
    // On an empty series Python raises in every algorithm except ks_test (its windows are
    // just too small) and least_squares (numpy's lstsq returns zeros for 0 rows, then
    // `len(errors) < 3` is False).
    for alg in Algorithm::ALL {
        let expected = match alg {
            Algorithm::KsTest | Algorithm::LeastSquares => Some(false),
            _ => None,
        };
        assert_eq!(alg.run(&[], 0.0, 86400), expected, "{alg}");
    }
}

#[test]
fn names_parse_and_serialise() {
    for alg in Algorithm::ALL {
        assert_eq!(alg.name().parse::<Algorithm>(), Ok(alg));
        let json = serde_json::to_string(&alg).expect("serialise");
        assert_eq!(json, format!("\"{}\"", alg.name()));
        let back: Algorithm = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, alg);
    }
    assert!("median".parse::<Algorithm>().is_err());
    assert_eq!(Exception::EmptyTimeseries.name(), "EmptyTimeseries");
    assert_eq!(Exception::TooShort.to_string(), "TooShort");
    let d = Settings::default();
    assert_eq!(d.algorithms, Algorithm::ALL.to_vec());
    assert_eq!(
        (
            d.consensus,
            d.full_duration,
            d.min_tolerable_length,
            d.stale_period,
            d.max_tolerable_boredom,
            d.boredom_set_size,
            d.run_optimized_workflow
        ),
        (6, 86400, 100, 500, 100, 1, true)
    );
}

/// Every decide-or-defer shortcut agrees with the exact reproduction: random series of many
/// shapes and scales, with the last values swept across the decision boundaries.
#[test]
fn shortcuts_agree_with_the_exact_path() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let algorithms = [
        Algorithm::StddevFromAverage,
        Algorithm::Grubbs,
        Algorithm::MeanSubtractionCumulation,
        Algorithm::StddevFromMovingAverage,
        Algorithm::LeastSquares,
    ];
    let mut checked = 0usize;
    for case in 0..300 {
        let n = 3 + (next() * 2500.0) as usize;
        let offset = [0.0, 100.0, 1e6, 1e12, -5e3, 0.3][case % 6];
        let scale = [1.0, 1e-6, 1e3, 0.01, 0.4][case % 5];
        let mut level = 0.0;
        let mut series: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let step = next() - 0.5;
                if case % 3 == 0 {
                    level += step;
                }
                let v = if case % 3 == 0 { level } else { step };
                let trend = if case % 4 == 1 { i as f64 * 1e-3 } else { 0.0 };
                (1.6e9 + 60.0 * i as f64, offset + scale * (v + trend))
            })
            .collect();
        if case % 7 == 0 {
            // Integer-valued data, as counters send.
            for p in &mut series {
                p.1 = (p.1 * 10.0).round();
            }
        }
        let base: Vec<f64> = series[n - 3..].iter().map(|p| p.1).collect();
        for k in 0..30 {
            let push = scale * (f64::from(k) * 0.4 - 2.0) * (1.0 + next());
            for (p, b) in series[n - 3..].iter_mut().zip(&base) {
                p.1 = b + push;
            }
            let now = series[n - 1].0;
            for alg in algorithms {
                assert_eq!(
                    alg.run(&series, now, 86400),
                    run_exact(alg, &series, now, 86400),
                    "{alg} case {case} n {n} k {k}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 300 * 30 * 5);
}

/// The closed-form shortcut of stddev_from_moving_average never decides differently from
/// pandas' recursion: random series of many shapes, with last values swept across the 3σ
/// boundary so that near-ties are exercised.
#[test]
fn moving_average_shortcut_agrees_with_the_recursion() {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut decided, mut deferred) = (0usize, 0usize);
    for case in 0..1200 {
        let n = 2 + (next() * 3000.0) as usize;
        let offset = [0.0, 100.0, 1e6, 1e12, -5e3, 1e9][case % 6];
        let scale = [1.0, 1e-6, 1e3, 0.01][case % 4];
        let shift_at = (next() * n as f64) as usize;
        let shift = [0.0, 50.0, -1e4, 1e8][case % 7 % 4];
        let mut level = 0.0;
        let mut values: Vec<f64> = (0..n)
            .map(|i| {
                let step = next() - 0.5;
                let base = if i >= shift_at {
                    offset + shift * scale
                } else {
                    offset
                };
                if case % 3 == 0 {
                    level += step;
                    base + scale * level
                } else {
                    base + scale * step
                }
            })
            .collect();
        let base = values[n - 1];
        for k in 0..40 {
            values[n - 1] = base + scale * (f64::from(k) * 0.5 - 2.0) * (1.0 + next());
            let exact = stddev_from_moving_average::exact_verdict(&values, values[n - 1]);
            match stddev_from_moving_average::closed_form_verdict(&values) {
                Some(fast) => {
                    decided += 1;
                    assert_eq!(fast, exact, "case {case} n {n} k {k}");
                }
                None => deferred += 1,
            }
        }
    }
    eprintln!("decided {decided} deferred {deferred}");
    assert!(decided > deferred, "the shortcut should decide most cases");
}
