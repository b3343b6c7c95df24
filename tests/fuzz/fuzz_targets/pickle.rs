//! The Graphite pickle decoder: never panics, and its output is bounded by its input (at most
//! one datapoint per byte; every item counted exactly once).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyline::listen::pickle::{decode_datapoints, decode_value};

fuzz_target!(|data: &[u8]| {
    let _ = decode_value(data);
    if let Ok(d) = decode_datapoints(data) {
        let items = d.points.len() as u64 + d.bad_shape + d.bad_name + d.non_finite;
        assert!(
            items <= data.len() as u64,
            "{items} items from {} bytes",
            data.len()
        );
    }
});
