//! Criterion bench of Ionosphere's feature extraction: the 210 tsfresh features of a
//! 1,440-point series (a day at 60 s), the size every Analyzer-trained profile has.
//!
//! The budget it guards: ≤ 2 ms per series on one core (issue 11). `baseline/sum` (one pass
//! summing the same series) is measured in the same run so the figure can be quoted as a ratio.

#![allow(clippy::unwrap_used)] // reason: a benchmark fails loudly on bad fixtures

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use skyline::ionosphere::features::extract;
use skyline::ionosphere::matching::{
    match_features, match_features_scaled, minmax_of, minmax_scale, MatchSettings, Profile,
};

/// A deterministic noisy daily series (xorshift noise on a sine).
fn series(points: usize) -> Vec<f64> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    (0..points)
        .map(|i| {
            let daily = (i as f64 / points as f64 * std::f64::consts::TAU).sin();
            (1000.0 + 100.0 * daily + 40.0 * noise()).round()
        })
        .collect()
}

fn features(c: &mut Criterion) {
    let x = series(1440);
    let mut g = c.benchmark_group("ionosphere_features");
    g.bench_function("extract/1440", |b| b.iter(|| extract(black_box(&x))));
    g.bench_function("baseline/sum/1440", |b| {
        b.iter(|| black_box(&x).iter().sum::<f64>())
    });
    g.finish();
}

/// Matching one anomaly against 100 profiles of its metric (database read excluded: profiles
/// are cached in the matcher). `compare/100` is the features-sum pass alone (no profile
/// matches and none is in the anomaly's range, so no min-max retry); `with_minmax/100` has every
/// profile in range, so the retry runs (the anomaly's scaled features are computed once and
/// compared with each profile's stored min-max sum); `with_minmax_precomputed/100` is the same
/// with the anomaly's scaled features already computed (once per check, whatever the number of
/// profiles). The anomaly's own feature extraction is `ionosphere_features/extract/1440`
/// above, measured in the same run: a check costs one extraction (two with a min-max retry)
/// plus the per-profile comparison.
fn matching(c: &mut Criterion) {
    let base = series(1440);
    let far: Vec<Profile> = (0..100)
        .map(|i| {
            let x: Vec<f64> = base.iter().map(|v| v * (3.0 + i as f64 * 0.1)).collect();
            let f = extract(&x).unwrap();
            Profile {
                id: i,
                features: f
                    .stored()
                    .iter()
                    .map(|&(id, v)| (i32::from(id), v))
                    .collect(),
                minmax: minmax_of(&x),
            }
        })
        .collect();
    let near: Vec<Profile> = (0..100)
        .map(|i| {
            // Same range, different shape (reversed halves, shifted): the raw sums differ by
            // more than 1 %, the min-max retry runs and fails.
            let mut x: Vec<f64> = base
                .iter()
                .map(|v| v * (1.02 + i as f64 * 0.0005))
                .collect();
            x.rotate_left(300 + i as usize);
            let f = extract(&x).unwrap();
            Profile {
                id: i,
                features: f
                    .stored()
                    .iter()
                    .map(|&(id, v)| (i32::from(id), v * 1.05))
                    .collect(),
                minmax: minmax_of(&x).map(|mut m| {
                    m.features_sum *= 1.5;
                    m
                }),
            }
        })
        .collect();
    let anomaly = extract(&base).unwrap();
    let settings = MatchSettings::default();
    assert!(match_features(&far, &anomaly, &base, &settings).0.is_none());
    let mut g = c.benchmark_group("ionosphere_matching");
    g.bench_function("compare/100", |b| {
        b.iter(|| {
            match_features(
                black_box(&far),
                black_box(&anomaly),
                black_box(&base),
                &settings,
            )
        })
    });
    g.bench_function("with_minmax/100", |b| {
        b.iter(|| {
            match_features(
                black_box(&near),
                black_box(&anomaly),
                black_box(&base),
                &settings,
            )
        })
    });
    // The anomaly's min-max-scaled features depend on the anomaly alone: computed once per
    // check (here outside the loop), so this is the per-profile cost of the retry.
    let mut scaled = Some(extract(&minmax_scale(&base)).ok());
    g.bench_function("with_minmax_precomputed/100", |b| {
        b.iter(|| {
            match_features_scaled(
                black_box(&near),
                black_box(&anomaly),
                black_box(&base),
                &mut scaled,
                &settings,
            )
        })
    });
    g.bench_function("baseline/sum/1440", |b| {
        b.iter(|| black_box(&base).iter().sum::<f64>())
    });
    g.finish();
}

criterion_group!(benches, features, matching);
criterion_main!(benches);
