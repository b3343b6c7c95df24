//! Replays the fuzzing corpus (tests/fuzz/corpus/<target>, seeds and any crash reproducers)
//! through the same decoders the cargo-fuzz targets drive, on the stable toolchain, in every
//! `cargo test`: no panic, output bounded by the input, and each file decoded in bounded time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use skyline::flux::validate::{
    parse_populate, parse_post, validate_items, validate_populate, Limits,
};
use skyline::listen::pickle::{decode_datapoints, decode_value};
use skyline::listen::plaintext::parse_line;
use skyline::model::msgpack::{decode_datagram, decode_series, decode_series_f64};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "corpus {target} is missing or nearly empty"
    );
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Replays one corpus through `f`, each file within a generous time bound (linear decoders
/// take microseconds to milliseconds; the old quadratic memo took minutes).
fn replay(target: &str, f: impl Fn(&[u8])) {
    for (path, data) in corpus(target) {
        let started = Instant::now();
        f(&data);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} took {:?}",
            path.display(),
            started.elapsed()
        );
    }
}

#[test]
fn pickle_corpus_replays() {
    replay("pickle", |data| {
        let _ = decode_value(data);
        if let Ok(d) = decode_datapoints(data) {
            let items = d.points.len() as u64 + d.bad_shape + d.bad_name + d.non_finite;
            assert!(items <= data.len() as u64);
        }
    });
    // The seeds include the memo bombs: they must be refused, not decoded.
    let bomb = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus/pickle/bomb_memoize_8k"),
    )
    .unwrap();
    assert!(decode_value(&bomb).is_err());
}

#[test]
fn msgpack_corpus_replays() {
    replay("msgpack", |data| {
        let _ = decode_datagram(data);
        if let Ok(points) = decode_series(data) {
            assert!(points.len() <= data.len() / 2 + 1);
        }
        let mut out = Vec::new();
        let _ = decode_series_f64(data, &mut out);
        assert!(out.len() <= data.len() / 2 + 1);
    });
}

#[test]
fn plaintext_corpus_replays() {
    replay("plaintext", |data| {
        for line in data.split(|&b| b == b'\n') {
            if let Ok(dp) = parse_line(line, 1_700_000_000.0) {
                assert!(dp.metric.len() <= line.len());
                assert!(dp.point.timestamp.is_finite() && dp.point.value.is_finite());
            }
        }
    });
}

#[test]
fn flux_json_corpus_replays() {
    let limits = Limits {
        now: 1_700_000_000,
        max_age_secs: 86_400,
        max_future_skew_secs: 300,
        backfill: false,
        stored_back_secs: None,
    };
    replay("flux_json", |data| {
        if let Ok(req) = parse_post(data) {
            if let Ok(points) = validate_items(&req.items, "prefix.", &limits, req.batch) {
                assert!(points.len() <= data.len());
            }
        }
        if let Ok(req) = parse_populate(data) {
            if let Some(metric) = req.metric.as_deref() {
                let backfill = Limits {
                    backfill: true,
                    ..limits
                };
                if let Ok(points) = validate_populate(metric, &req.datapoints, "", &backfill) {
                    assert!(points.len() <= data.len());
                }
            }
        }
    });
}
