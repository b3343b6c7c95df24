//! Graphite plaintext lines: every line of the input parses or is refused, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyline::listen::plaintext::parse_line;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        if let Ok(dp) = parse_line(line, 1_700_000_000.0) {
            assert!(dp.metric.len() <= line.len());
            assert!(dp.point.timestamp.is_finite() && dp.point.value.is_finite());
        }
    }
});
