//! The 60-point reference slice against Skyline's golden tsfresh output.

use super::*;

/// `shared/` beside the main checkout, or two levels up from a helper's worktree.
fn shared_file(rel: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for base in [root.join("../shared"), root.join("../../shared")] {
        let p = base.join(rel);
        if p.exists() {
            return p;
        }
    }
    panic!("cannot find shared/{rel} beside {}", root.display());
}

fn slice60() -> Vec<f64> {
    let mut all = full_series();
    all.truncate(60);
    all
}

/// All 8,665 values of Skyline's `utils/data.json`.
fn full_series() -> Vec<f64> {
    let text = std::fs::read_to_string(shared_file("vectors/ionosphere/data.json"))
        .expect("read data.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("data.json is JSON");
    let pts = v["results"].as_array().expect("results array");
    pts.iter()
        .map(|p| p[1].as_f64().expect("numeric value"))
        .collect()
}

/// `(name, value)` rows of the golden CSV; an empty value is NaN.
fn golden() -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(shared_file("vectors/ionosphere/features-golden.csv"))
        .expect("read features-golden.csv");
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (name, value) = if let Some(rest) = line.strip_prefix('"') {
                let end = rest.find('"').expect("closing quote");
                (rest[..end].to_string(), &rest[end + 2..])
            } else {
                let (n, v) = line.split_once(',').expect("two columns");
                (n.to_string(), v)
            };
            let value = if value.is_empty() {
                f64::NAN
            } else {
                value.parse().expect("float")
            };
            (name, value)
        })
        .collect()
}

/// Features the fork computes only in the comprehensive set (high cost): not part of the
/// Efficient set Ionosphere uses, so not computed here (spec §3.4).
const NOT_COMPUTED: [&str; 6] = [
    "value__sample_entropy",
    "value__approximate_entropy__m_2__r_0.1",
    "value__approximate_entropy__m_2__r_0.3",
    "value__approximate_entropy__m_2__r_0.5",
    "value__approximate_entropy__m_2__r_0.7",
    "value__approximate_entropy__m_2__r_0.9",
];

/// Relative tolerance per feature: 1e-6 for the iterative/numerical ones (least squares,
/// spectral density, CWT ridge lines), 1e-9 for the rest.
fn tolerance(name: &str) -> f64 {
    const LOOSE: [&str; 4] = [
        "value__augmented_dickey_fuller",
        "value__ar_coefficient__",
        "value__spkt_welch_density__",
        "value__number_cwt_peaks__",
    ];
    if LOOSE.iter().any(|p| name.starts_with(p)) {
        1e-6
    } else {
        1e-9
    }
}

fn close(ours: f64, theirs: f64, rel: f64) -> bool {
    if theirs.is_nan() {
        return ours.is_nan();
    }
    if theirs == 0.0 {
        return ours.abs() <= 1e-12;
    }
    (ours - theirs).abs() <= rel * theirs.abs()
}

#[test]
fn names_are_210_and_140_have_ids() {
    let names = feature_names();
    assert_eq!(names.len(), FEATURE_COUNT);
    assert_eq!(names.iter().filter(|n| n.id.is_some()).count(), 140);
    let mut ids: Vec<u16> = names.iter().filter_map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 140, "every stored id appears exactly once");
    // The float-repr names that never match a listed id (spec §3.4).
    assert!(names
        .iter()
        .any(|n| n.name == "value__symmetry_looking__r_0.15000000000000002" && n.id.is_none()));
}

#[test]
fn the_60_point_slice_matches_the_golden_features() {
    let x = slice60();
    assert_eq!(x.len(), 60);
    let f = extract(&x).expect("features");
    let golden = golden();
    let names = feature_names();
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, want) in &golden {
        if NOT_COMPUTED.contains(&name.as_str()) {
            assert!(f.get(name).is_none(), "{name} is listed as not computed");
            continue;
        }
        let Some(got) = f.get(name) else {
            failures.push(format!("{name}: not computed"));
            continue;
        };
        compared += 1;
        if !close(got, *want, tolerance(name)) {
            failures.push(format!("{name}: ours {got:?}, golden {want:?}"));
        }
    }
    assert_eq!(
        compared, FEATURE_COUNT,
        "every computed feature is in the golden file"
    );
    assert_eq!(golden.len(), FEATURE_COUNT + NOT_COMPUTED.len());
    // Same order as the fork emits them.
    let order: Vec<&str> = golden
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !NOT_COMPUTED.contains(n))
        .collect();
    let ours: Vec<&str> = names.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(ours, order);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_140_id_sum_matches_the_golden_sum() {
    let x = slice60();
    let f = extract(&x).expect("features");
    let golden = golden();
    let want: f64 = STORED_FEATURE_IDS
        .iter()
        .map(|(_, name)| {
            golden
                .iter()
                .find(|(n, _)| n == name)
                .map(|&(_, v)| v)
                .unwrap_or_else(|| panic!("{name} missing from the golden file"))
        })
        .filter(|v| !v.is_nan())
        .sum();
    let stored = f.stored();
    assert_eq!(stored.len(), 140);
    let got = stored_sum(&stored);
    assert!(
        (got - want).abs() <= 1e-6 * want.abs(),
        "140-id sum: ours {got}, golden {want}"
    );
    assert_eq!(f.count(), FEATURE_COUNT);
}

#[test]
fn extraction_is_deterministic_and_never_panics_on_short_or_flat_series() {
    let x = slice60();
    assert_eq!(extract(&x), extract(&x));
    for n in 1..40 {
        let flat = vec![5.0; n];
        let f = extract(&flat).expect("features");
        assert_eq!(f.values.len(), FEATURE_COUNT);
        let ramp: Vec<f64> = (0..n).map(|i| i as f64).collect();
        assert_eq!(
            extract(&ramp).expect("features").values.len(),
            FEATURE_COUNT
        );
        assert_eq!(
            extract(&x[..n.min(60)]).expect("features").values.len(),
            FEATURE_COUNT
        );
    }
    assert_eq!(extract(&[]), Err(FeatureError::Empty));
    assert_eq!(extract(&[1.0, f64::NAN]), Err(FeatureError::NotFinite(1)));
}

/// The FFT path of the lag products (long series) agrees with the direct sums numpy's
/// `correlate` does (short series), so the two sizes are one definition.
#[test]
fn long_series_lag_products_agree_with_direct_sums() {
    let x: Vec<f64> = (0..1440)
        .map(|i| 1000.0 + ((i * 7919) % 113) as f64 + (i as f64 / 100.0).sin() * 50.0)
        .collect();
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let fft = lag_products(&x, mean);
    let c: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let n = x.len();
    assert_eq!(fft.len(), n);
    for (lag, got) in fft.iter().enumerate() {
        let direct: f64 = c[..n - lag].iter().zip(&c[lag..]).map(|(a, b)| a * b).sum();
        assert!(
            (got - direct).abs() <= 1e-9 * fft[0],
            "lag {lag}: fft {got}, direct {direct}"
        );
    }
    let f = extract(&x).expect("features");
    let var = c.iter().map(|v| v * v).sum::<f64>() / n as f64;
    let want = (1..n)
        .map(|l| {
            c[..n - l]
                .iter()
                .zip(&c[l..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / l as f64
                / var
        })
        .sum::<f64>()
        / (n - 1) as f64;
    let got = f.get("value__mean_autocorrelation").expect("computed");
    assert!(
        (got - want).abs() <= 1e-9 * want.abs(),
        "ours {got}, direct {want}"
    );
}

/// The whole 8,665-point reference series (10 s resolution, a day) and a 1,440-point day at
/// 60 s give finite values for the least-squares, spectral and CWT features.
#[test]
fn full_length_series_give_finite_hard_features() {
    let all = full_series();
    assert_eq!(all.len(), 8665);
    let minute: Vec<f64> = all.iter().step_by(6).copied().collect();
    for x in [&all[..], &minute[..]] {
        let f = extract(x).expect("features");
        for name in [
            "value__augmented_dickey_fuller",
            "value__ar_coefficient__k_10__coeff_0",
            "value__ar_coefficient__k_10__coeff_4",
            "value__spkt_welch_density__coeff_8",
            "value__mean_autocorrelation",
            "value__number_cwt_peaks__n_5",
            "value__binned_entropy__max_bins_10",
        ] {
            let v = f.get(name).expect("computed");
            assert!(v.is_finite(), "{name} = {v} on {} points", x.len());
        }
        assert_eq!(f.stored().len(), 140, "{} points", x.len());
        assert!(f.sum().is_finite());
    }
}

/// The sliding sorted window gives scipy's per-point `scoreatpercentile` over each window.
#[test]
fn cwt_noise_equals_sorting_each_window() {
    let x: Vec<f64> = (0..1000)
        .map(|i| (((i * 7919) % 101) as f64 - 50.0) * if i % 7 == 0 { 0.0 } else { 1.5 })
        .collect();
    for len in [1usize, 2, 19, 20, 21, 60, 1000] {
        let row = &x[..len];
        let got = cwt_noise(row);
        let window = (len as f64 / 20.0).ceil() as usize;
        let (hf, odd) = (window / 2, window % 2);
        for (i, g) in got.iter().enumerate() {
            let mut w = row[i.saturating_sub(hf)..(i + hf + odd).min(len)].to_vec();
            w.sort_by(f64::total_cmp);
            let want = score_at_percentile(&w, 10.0);
            assert_eq!(g.to_bits(), want.to_bits(), "len {len} point {i}");
        }
    }
}
