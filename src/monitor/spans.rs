//! The per-request span recorder: a task-local set of four counters (Redis, SQL, Graphite,
//! template rendering) that the HTTP middleware installs around each request and the calls
//! add their time to. Outside a monitored request (actors, tests) the helpers just run the
//! call. Cost: one task-local lookup and two `Instant::now()` per timed call.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use super::messages::Breakdown;

/// What a span timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Redis command or pipeline.
    Redis = 0,
    /// A Panorama database operation.
    Sql = 1,
    /// A graphite-web request.
    Graphite = 2,
    /// Rendering a template.
    Template = 3,
}

/// The counters of one request, µs.
#[derive(Debug, Default)]
pub struct Spans {
    parts: [Cell<u64>; 4],
}

impl Spans {
    fn add(&self, kind: Kind, us: u64) {
        let c = &self.parts[kind as usize];
        c.set(c.get().saturating_add(us));
    }

    /// The totals so far.
    pub fn breakdown(&self) -> Breakdown {
        Breakdown {
            redis_us: self.parts[0].get(),
            sql_us: self.parts[1].get(),
            graphite_us: self.parts[2].get(),
            template_us: self.parts[3].get(),
        }
    }
}

tokio::task_local! {
    static SPANS: Rc<Spans>;
}

/// Runs `f` with `spans` as the current request's recorder.
pub fn scope<F: Future>(spans: Rc<Spans>, f: F) -> impl Future<Output = F::Output> {
    SPANS.scope(spans, f)
}

fn add(kind: Kind, started: Instant) {
    let us = started.elapsed().as_micros() as u64;
    let _ = SPANS.try_with(|s| s.add(kind, us));
}

/// Awaits `f`, adding its time to the current request's `kind` counter.
pub async fn timed<F: Future>(kind: Kind, f: F) -> F::Output {
    let started = Instant::now();
    let out = f.await;
    add(kind, started);
    out
}

/// Runs `f`, adding its time to the current request's `kind` counter.
pub fn time_sync<T>(kind: Kind, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    add(kind, started);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn spans_add_up_inside_a_scope_only() {
        // Outside a scope: just runs.
        assert_eq!(timed(Kind::Redis, async { 7 }).await, 7);
        let spans = Rc::new(Spans::default());
        scope(spans.clone(), async {
            timed(
                Kind::Sql,
                actix_rt::time::sleep(std::time::Duration::from_millis(20)),
            )
            .await;
            time_sync(Kind::Template, || {
                std::thread::sleep(std::time::Duration::from_millis(5))
            });
        })
        .await;
        let b = spans.breakdown();
        assert!(b.sql_us >= 20_000, "{b:?}");
        assert!(b.template_us >= 5_000 && b.template_us < 20_000, "{b:?}");
        assert_eq!(b.redis_us, 0);
        assert_eq!(b.dominant(40_000), "sql");
        assert_eq!(b.other_us(b.sql_us + b.template_us + 3), 3);
    }
}
