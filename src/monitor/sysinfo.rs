//! Process CPU and resident memory, sampled when an outlier is recorded (Linux `/proc`; 0
//! elsewhere).

use std::sync::Mutex;
use std::time::Instant;

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

static LAST: Mutex<Option<(Instant, f64)>> = Mutex::new(None);

/// Process CPU time (user + system, all threads), seconds.
fn cpu_seconds() -> f64 {
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
        }
    }
}
