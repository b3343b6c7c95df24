//! Criterion bench of Ionosphere's feature extraction: the 210 tsfresh features of a
//! 1,440-point series (a day at 60 s), the size every Analyzer-trained profile has.
//!
//! The budget it guards: ≤ 2 ms per series on one core (issue 11). `baseline/sum` (one pass
//! summing the same series) is measured in the same run so the figure can be quoted as a ratio.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use skyline::ionosphere::features::extract;

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

criterion_group!(benches, features);
criterion_main!(benches);
