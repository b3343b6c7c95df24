//! Refusing datapoints stamped far in the future (pure). A timestamp like `1e12` or `1e300`
//! would be stored and never trimmed by Roomba (it trims by age), so every listener refuses
//! anything more than `[horizon] max_future_secs` ahead of the clock.

use crate::model::Datapoint;

/// Keeps the points stamped at most `max_future_secs` after `now` (in frame order) and
/// returns how many were refused.
pub fn refuse_future(points: &mut Vec<Datapoint>, now: f64, max_future_secs: u64) -> u64 {
    let limit = now + max_future_secs as f64;
    let before = points.len();
    points.retain(|p| p.point.timestamp.as_f64() <= limit);
    (before - points.len()) as u64
}

/// True when one point is stamped too far ahead.
pub fn is_future(point: &Datapoint, now: f64, max_future_secs: u64) -> bool {
    point.point.timestamp.as_f64() > now + max_future_secs as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_points_are_refused() {
        let now = 1_700_000_000.0;
        let mut v = vec![
            Datapoint::new("a", now, 1.0),
            Datapoint::new("b", now + 300.0, 1.0),
            Datapoint::new("c", now + 301.0, 1.0),
            Datapoint::new("d", 1e12, 1.0),
            Datapoint::new("e", 1e300, 1.0),
            Datapoint::new("f", now - 1e6, 1.0),
        ];
        assert_eq!(refuse_future(&mut v, now, 300), 3);
        let names: Vec<_> = v.iter().map(|d| d.metric.as_str()).collect();
        assert_eq!(names, ["a", "b", "f"]);
        assert!(is_future(&Datapoint::new("x", 1e12, 0.0), now, 300));
        assert!(!is_future(&Datapoint::new("x", now + 10.0, 0.0), now, 300));
    }
}
