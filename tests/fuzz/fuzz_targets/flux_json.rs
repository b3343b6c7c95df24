//! Flux's JSON bodies (`metric_data_post`, `populate_metric`): parsed and validated, never a
//! panic, at most one point per input byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyline::flux::validate::{
    parse_populate, parse_post, validate_items, validate_populate, Limits,
};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        now: 1_700_000_000,
        max_age_secs: 86_400,
        max_future_skew_secs: 300,
        backfill: false,
        stored_back_secs: None,
    };
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
