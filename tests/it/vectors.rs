//! The reference vectors in ../shared/vectors: real carbon pickle frames (including hostile
//! ones that must be refused) and the exact bytes Skyline's Horizon writes to Redis.

use serde_json::Value as Json;
use skyline::listen::pickle::{decode_datapoints, PickleError};
use skyline::model::msgpack::{decode_series, encode_point};
use skyline::model::{Number, Point};

use crate::support::shared;

fn json(path: &std::path::Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn num(v: &Json) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| v.as_str().unwrap().parse().unwrap())
}

/// Splits a byte stream into frames by the 4-byte big-endian header.
fn frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + n {
            out.push(&rest[4..]); // truncated: hand over what there is
            break;
        }
        out.push(&rest[4..4 + n]);
        rest = &rest[4 + n..];
    }
    out
}

#[test]
fn every_pickle_vector() {
    let dir = shared("vectors/pickles");
    let index = json(&dir.join("index.json"));
    let entries = index.as_array().unwrap();
    assert!(entries.len() >= 20, "expected the full vector set");
    let mut accepted = 0;
    let mut rejected = 0;
    for entry in entries {
        let file = entry["file"].as_str().unwrap();
        let must_reject = entry["must_reject"].as_bool().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let meta = json(&dir.join(file.replace(".bin", ".json")));
        let header = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if must_reject {
            // Either the header is over carbon's 1 MiB cap, or the payload is refused.
            if header > 1 << 20 {
                rejected += 1;
                continue;
            }
            let results: Vec<_> = frames(&bytes).into_iter().map(decode_datapoints).collect();
            let refused = results.iter().any(|r| r.is_err())
                || results
                    .iter()
                    .all(|r| r.as_ref().map(|d| d.points.is_empty()).unwrap_or(true));
            assert!(refused, "{file} must be rejected, got {results:?}");
            rejected += 1;
            continue;
        }
        let mut got = Vec::new();
        let (mut bad_shape, mut bad_name) = (0, 0);
        for f in frames(&bytes) {
            let d = decode_datapoints(f).unwrap_or_else(|e| panic!("{file}: {e}"));
            bad_shape += d.bad_shape;
            bad_name += d.bad_name;
            got.extend(d.points);
        }
        let want = meta["datapoints"].as_array().unwrap();
        // Our policy on top of Skyline's: ints beyond 64 bits (2**64) decode but cannot be
        // stored (Skyline's worker drops them too), and names with control characters
        // (e.g. a newline) are dropped and counted, where Skyline would store them.
        let too_big = |d: &Json| d[1][1].as_f64().is_some_and(|v| v.abs() >= 1.8e19);
        let control = |d: &Json| d[0].as_str().unwrap().chars().any(char::is_control);
        let storable: Vec<&Json> = want.iter().filter(|d| !too_big(d) && !control(d)).collect();
        assert_eq!(
            bad_shape,
            want.iter().filter(|d| too_big(d)).count() as u64,
            "{file}"
        );
        assert_eq!(
            bad_name,
            want.iter().filter(|d| control(d)).count() as u64,
            "{file}"
        );
        assert_eq!(got.len(), storable.len(), "{file}");
        // Multi-frame vectors carry no per-item types; infer them from the JSON numbers.
        let inferred: Vec<Json> = want
            .iter()
            .map(|d| {
                let kind = |v: &Json| {
                    if v.is_i64() || v.is_u64() {
                        "int"
                    } else {
                        "float"
                    }
                };
                serde_json::json!(["str", [kind(&d[1][0]), kind(&d[1][1])]])
            })
            .collect();
        let types = meta["types"].as_array().unwrap_or(&inferred);
        let kept_types: Vec<&Json> = want
            .iter()
            .zip(types)
            .filter(|(d, _)| !too_big(d) && !control(d))
            .map(|(_, t)| t)
            .collect();
        for ((g, w), t) in got.iter().zip(storable).zip(kept_types) {
            assert_eq!(g.metric, w[0].as_str().unwrap(), "{file}");
            assert_eq!(g.point.timestamp.as_f64(), num(&w[1][0]), "{file}");
            assert_eq!(
                g.point.value.as_f64().to_bits(),
                num(&w[1][1]).to_bits(),
                "{file} {g:?}"
            );
            // The wire type is kept (int stays int, float stays float): it decides the bytes.
            let is_int = |n: Number| !matches!(n, Number::Float(_));
            assert_eq!(is_int(g.point.timestamp), t[1][0] == "int", "{file} {g:?}");
            assert_eq!(is_int(g.point.value), t[1][1] == "int", "{file} {g:?}");
        }
        accepted += 1;
    }
    assert!(
        accepted >= 10 && rejected >= 8,
        "accepted {accepted} rejected {rejected}"
    );
}

#[test]
fn hostile_pickles_name_the_forbidden_opcode() {
    let dir = shared("vectors/pickles");
    for (file, opcode) in [
        ("mal_global_reduce_p2.bin", "GLOBAL"),
        ("mal_global_reduce_p0.bin", "GLOBAL"),
        ("mal_stack_global_p4.bin", "STACK_GLOBAL"),
        ("mal_inst_p0.bin", "INST"),
        ("mal_builtins_eval_p2.bin", "GLOBAL"),
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        match decode_datapoints(&bytes[4..]) {
            Err(PickleError::Forbidden { name, .. }) => assert_eq!(name, opcode, "{file}"),
            other => panic!("{file}: {other:?}"),
        }
    }
}

#[test]
fn msgpack_appends_are_byte_identical() {
    let dir = shared("vectors/msgpack");
    let index = json(&dir.join("index.json"));
    for entry in index.as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let meta = json(&dir.join(file.replace(".bin", ".json")));
        let want = std::fs::read(dir.join(file)).unwrap();
        let types = meta["types"].as_array().unwrap();
        let reprs = meta["datapoints_repr"].as_array().unwrap();
        let mut got = Vec::new();
        for (i, dp) in meta["datapoints"].as_array().unwrap().iter().enumerate() {
            let n = |v: &Json, t: &str, which: usize| -> Number {
                if t == "int" {
                    // exact ints from the repr, as JSON floats would round above 2**53
                    let r = reprs[i]
                        .as_str()
                        .unwrap()
                        .trim_matches(|c| c == '(' || c == ')');
                    let field = r.split(", ").nth(which).unwrap().trim();
                    field
                        .parse::<i64>()
                        .map(Number::Int)
                        .unwrap_or_else(|_| Number::UInt(field.parse().unwrap()))
                } else {
                    Number::Float(v.as_f64().unwrap())
                }
            };
            let t = &types[i];
            let point = Point {
                timestamp: n(&dp[0], t[0].as_str().unwrap(), 0),
                value: n(&dp[1], t[1].as_str().unwrap(), 1),
            };
            encode_point(&mut got, &point);
        }
        assert_eq!(got, want, "{file}");
        let decoded = decode_series(&want).unwrap();
        assert_eq!(
            decoded.len(),
            meta["datapoints"].as_array().unwrap().len(),
            "{file}"
        );
    }
}

/// Every truncation and thousands of byte mutations of every vector frame: the decoder
/// returns (Ok or Err) and never panics, loops or allocates without bound.
#[test]
fn mutated_frames_never_panic() {
    let dir = shared("vectors/pickles");
    let mut state: u64 = 0x5EED_1234_ABCD_0001;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut checked = 0usize;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let payload = &bytes[4.min(bytes.len())..];
        for cut in 0..payload.len() {
            let _ = decode_datapoints(&payload[..cut]);
            checked += 1;
        }
        for _ in 0..2000 {
            let mut m = payload.to_vec();
            if m.is_empty() {
                break;
            }
            for _ in 0..(1 + next() % 4) {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            let _ = decode_datapoints(&m);
            checked += 1;
        }
    }
    assert!(checked > 20_000, "{checked}");
}
