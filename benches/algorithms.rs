//! Criterion benches of the analyzer algorithms: each of the nine alone, and
//! `run_selected_algorithm` with the short-circuit on and off, at 1,440 points (a day at
//! 60 s) and 8,640 points (a day at 10 s).
//!
//! The budget they guard: ≥ 35,000 series of 1,440 points per second per core with the
//! short-circuit on, i.e. about 28 µs per series.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use skyline::analyze::algorithms::{run_selected_algorithm, Algorithm, Settings};

const START: f64 = 1_700_000_000.0;

/// A deterministic noisy daily series (xorshift noise on a sine), ending at `now`.
fn series(points: usize, spike: bool) -> (Vec<(f64, f64)>, f64) {
    let step = 86_400.0 / points as f64;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut s: Vec<(f64, f64)> = (0..points)
        .map(|i| {
            let t = START + step * i as f64;
            let daily = (i as f64 / points as f64 * std::f64::consts::TAU).sin();
            (t, 100.0 + 10.0 * daily + 4.0 * noise())
        })
        .collect();
    if spike {
        let n = s.len();
        for p in &mut s[n - 3..] {
            p.1 += 80.0;
        }
    }
    let now = s[s.len() - 1].0 + 5.0;
    (s, now)
}

fn bench_each_algorithm(c: &mut Criterion) {
    let mut group = c.benchmark_group("algorithm");
    for points in [1440usize, 8640] {
        let (s, now) = series(points, false);
        for alg in Algorithm::ALL {
            group.bench_with_input(BenchmarkId::new(alg.name(), points), &s, |b, s| {
                b.iter(|| alg.run(black_box(s), now, 86_400))
            });
        }
    }
    group.finish();
}

fn bench_run_selected(c: &mut Criterion) {
    let mut group = c.benchmark_group("run_selected_algorithm");
    let on = Settings::default();
    let off = Settings {
        run_optimized_workflow: false,
        ..Settings::default()
    };
    for points in [1440usize, 8640] {
        for (label, spike) in [("normal", false), ("spike", true)] {
            let (s, now) = series(points, spike);
            for (mode, settings) in [("short_circuit_on", &on), ("short_circuit_off", &off)] {
                let id = BenchmarkId::new(format!("{label}/{mode}"), points);
                group.bench_with_input(id, &s, |b, s| {
                    b.iter(|| run_selected_algorithm(black_box(s), now, settings))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_each_algorithm, bench_run_selected);
criterion_main!(benches);
