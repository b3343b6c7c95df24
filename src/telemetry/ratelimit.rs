//! Rate-limited logging for warnings an outsider can trigger (a refused connection, a bad
//! frame, a future timestamp…): the first event logs at once, later ones are counted and the
//! count is logged with the next event at least [`INTERVAL`] after the last line. So a flood
//! costs at most one line a minute per kind of event, and nothing goes unseen.
//!
//! Owns no actors, keys or tables; a [`LogLimiter`] is a `static` beside the code that logs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shortest time between two lines of one limiter.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// One kind of event's limiter.
#[derive(Debug)]
pub struct LogLimiter {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    /// Events since the last line (this one included once it is logged).
    pending: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimiter {
    /// A limiter that has logged nothing yet (usable in a `static`).
    pub const fn new() -> Self {
        LogLimiter {
            state: Mutex::new(State {
                last: None,
                pending: 0,
            }),
        }
    }

    /// Records one event. `Some(n)` when a line is due now: `n` events (this one included)
    /// since the previous line.
    pub fn event(&self) -> Option<u64> {
        self.event_at(Instant::now())
    }

    /// [`event`](Self::event) at a given instant.
    pub fn event_at(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update; the counts are
        // still usable.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.pending += 1;
        let due = s
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= INTERVAL);
        if !due {
            return None;
        }
        s.last = Some(now);
        Some(std::mem::take(&mut s.pending))
    }

    /// Logs `args` at `level` when due, followed by how many such events it stands for.
    pub fn log(&self, level: log::Level, args: std::fmt::Arguments<'_>) {
        if !log::log_enabled!(level) {
            // Still count, so the next enabled line is honest.
            self.event();
            return;
        }
        if let Some(n) = self.event() {
            if n > 1 {
                log::log!(level, "{args} ({n} such events since the last report)");
            } else {
                log::log!(level, "{args}");
            }
        }
    }

    /// [`log`](Self::log) at WARN.
    pub fn warn(&self, args: std::fmt::Arguments<'_>) {
        self.log(log::Level::Warn, args);
    }

    /// [`log`](Self::log) at ERROR.
    pub fn error(&self, args: std::fmt::Arguments<'_>) {
        self.log(log::Level::Error, args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_with_the_count() {
        let l = LogLimiter::new();
        let t0 = Instant::now();
        assert_eq!(l.event_at(t0), Some(1), "the first event logs at once");
        for i in 1..1000u64 {
            assert_eq!(l.event_at(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(l.event_at(t0 + Duration::from_secs(59)), None);
        assert_eq!(
            l.event_at(t0 + INTERVAL),
            Some(1001),
            "1,000 held back + this one"
        );
        assert_eq!(l.event_at(t0 + INTERVAL + Duration::from_secs(1)), None);
        assert_eq!(l.event_at(t0 + INTERVAL * 3), Some(2));
    }
}
