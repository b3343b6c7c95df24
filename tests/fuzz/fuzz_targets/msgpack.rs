//! Skyline's msgpack: the UDP datagram decoder and the Redis series decoders never panic, and
//! a decoded series holds at most one point per two bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyline::model::msgpack::{decode_datagram, decode_series, decode_series_f64};

fuzz_target!(|data: &[u8]| {
    let _ = decode_datagram(data);
    if let Ok(points) = decode_series(data) {
        assert!(points.len() <= data.len() / 2 + 1);
    }
    let mut out = Vec::new();
    let _ = decode_series_f64(data, &mut out);
    assert!(out.len() <= data.len() / 2 + 1);
});
