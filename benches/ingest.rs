//! Ingest hot paths, each beside a baseline measured in the same run:
//! - pickle decode of a carbon-relay frame (500 float pairs, protocol 2): our plain-data
//!   decoder vs serde-pickle's general decoder;
//! - msgpack encoding of the same 500 points: our encoder vs rmp-serde.

#![allow(clippy::unwrap_used)] // reason: a benchmark fails loudly on bad fixtures

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use skyline::listen::pickle::decode_datapoints;
use skyline::model::msgpack::encode_point;
use skyline::model::{Number, Point};

fn carbon_frame(n: usize) -> Vec<u8> {
    let items: Vec<(String, (f64, f64))> = (0..n)
        .map(|i| {
            (
                format!("carbon.agents.host-{}.cpu.{}", i % 20, i % 50),
                (1.7e9 + i as f64, i as f64 * 0.25),
            )
        })
        .collect();
    serde_pickle::to_vec(&items, serde_pickle::SerOptions::new().proto_v2()).unwrap()
}

fn pickle(c: &mut Criterion) {
    let frame = carbon_frame(500);
    let mut g = c.benchmark_group("pickle_decode_500");
    g.throughput(Throughput::Elements(500));
    g.bench_function(BenchmarkId::new("skyline", "plain_data"), |b| {
        b.iter(|| {
            decode_datapoints(std::hint::black_box(&frame))
                .unwrap()
                .points
                .len()
        })
    });
    g.bench_function(BenchmarkId::new("baseline", "serde_pickle"), |b| {
        b.iter(|| {
            let v: Vec<(String, (f64, f64))> =
                serde_pickle::from_slice(std::hint::black_box(&frame), Default::default()).unwrap();
            v.len()
        })
    });
    g.finish();
}

fn msgpack(c: &mut Criterion) {
    let points: Vec<Point> = (0..500)
        .map(|i| Point {
            timestamp: Number::Float(1.7e9 + i as f64),
            value: Number::Float(i as f64),
        })
        .collect();
    let pairs: Vec<(f64, f64)> = (0..500).map(|i| (1.7e9 + i as f64, i as f64)).collect();
    let mut g = c.benchmark_group("msgpack_encode_500");
    g.throughput(Throughput::Elements(500));
    g.bench_function(BenchmarkId::new("skyline", "encode_point"), |b| {
        let mut buf = Vec::with_capacity(500 * 19);
        b.iter(|| {
            buf.clear();
            for p in &points {
                encode_point(&mut buf, p);
            }
            buf.len()
        })
    });
    g.bench_function(BenchmarkId::new("baseline", "rmp_serde"), |b| {
        let mut buf = Vec::with_capacity(500 * 19);
        b.iter(|| {
            buf.clear();
            for p in &pairs {
                rmp_serde::encode::write(&mut buf, p).unwrap();
            }
            buf.len()
        })
    });
    g.finish();
}

criterion_group!(benches, pickle, msgpack);
criterion_main!(benches);
