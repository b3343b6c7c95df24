//! Process CPU and resident memory, sampled when an outlier is recorded (Linux `/proc`; 0
//! elsewhere). [`sample`] reads `/proc` at most once per [`MIN_INTERVAL`] and otherwise
//! returns the last reading: a loaded daemon can see hundreds of outliers a second, and two
//! file reads each would make the overload worse (the CPU figure is a rate over the interval
//! anyway; `USER_HZ` ticks make shorter intervals meaningless).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// `/proc` is read at most this often by [`sample`].
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

static LAST: Mutex<Option<(Instant, f64)>> = Mutex::new(None);

/// The last [`sample`]: when, CPU %, RSS bytes.
static SAMPLE: Mutex<Option<(Instant, f64, u64)>> = Mutex::new(None);

/// (CPU %, RSS bytes) now, or as read less than [`MIN_INTERVAL`] ago.
pub fn sample() -> (f64, u64) {
    let now = Instant::now();
    let Ok(mut last) = SAMPLE.lock() else {
        return (0.0, 0);
    };
    if let Some((at, cpu, rss)) = *last {
        if now.saturating_duration_since(at) < MIN_INTERVAL {
            return (cpu, rss);
        }
    }
    let (cpu, rss) = (cpu_percent(), rss_bytes());
    *last = Some((now, cpu, rss));
    (cpu, rss)
}

/// Process CPU time (user + system, all threads, children not included), seconds; 0 where
/// `/proc` is missing. `skyline bench webapp` divides it by the requests served.
pub fn cpu_seconds() -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / USER_HZ
}

/// CPU use of the process since the previous call, in percent of one core (0 on the first
/// call).
pub fn cpu_percent() -> f64 {
    let now = Instant::now();
    let cpu = cpu_seconds();
    let Ok(mut last) = LAST.lock() else {
        return 0.0;
    };
    let pct = match *last {
        Some((t, c)) if now > t => {
            let wall = (now - t).as_secs_f64();
            if wall > 0.0 {
                ((cpu - c) / wall * 100.0).max(0.0)
            } else {
                0.0
            }
        }
        _ => 0.0,
    };
    *last = Some((now, cpu));
    pct
}

/// Resident set size, bytes (`VmRSS` of `/proc/self/status`; 0 where it is missing).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_are_plausible() {
        let _ = super::cpu_percent();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let p = super::cpu_percent();
        assert!((0.0..=100.0 * 64.0).contains(&p), "{p}");
        #[cfg(target_os = "linux")]
        {
            assert!(super::cpu_seconds() > 0.0);
            assert!(super::rss_bytes() > 1 << 20);
            // Cached within the interval.
            let a = super::sample();
            assert!(a.1 > 1 << 20, "{a:?}");
            assert_eq!(super::sample(), a);
        }
    }
}
