//! `MonitorWriter`: the actor that writes endpoint monitor records to the database in
//! batches, off the request path.
//!
//! The HTTP middleware keeps each request record in memory, in its [`HitSource`] (the
//! webapp's monitor, beside its per-route figures), and `try_send`s each outlier into a
//! bounded channel ([`RecordSender`]); both hold at most `[monitor] queue_max`, and when full
//! a record is dropped and counted (`skyline_monitor_dropped_total`), so a request never
//! waits for the database. Every `flush_ms` the writer takes the kept records, drains the
//! channel and inserts up to `batch_max` requests per
//! transaction through [`crate::db::Bounded`] (`[panorama] db_timeout_secs`), on its own
//! arbiter. A failed batch is kept and retried, unchanged and under the same batch id, at the
//! next tick (counted, logged at most once a minute): a retry of a batch whose first attempt
//! did commit (its answer lost to a timeout or a dropped connection) is recognised by that
//! id and not inserted twice ([`crate::db::monitor::insert_batch`]). A backlog over
//! `queue_max` drops its oldest records (counted). Every hour it deletes what is older than
//! `keep_days`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler};
use log::info;
use tokio::sync::mpsc;

use super::config::MonitorSettings;
use super::messages::{FlushMonitor, Hit, HitSource, OutlierRecord, Record};
use crate::db::monitor::Batch;
use crate::db::{Bounded, Pool};
use crate::telemetry::metrics as m;
use crate::telemetry::ratelimit::LogLimiter;

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The middleware's end of the bounded queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RecordSender(mpsc::Sender<Record>);

impl RecordSender {
    /// Queues `record`, or drops and counts it when the queue is full (never waits).
    pub fn send(&self, record: Record) {
        if self.0.try_send(record).is_err() {
            m::MONITOR_DROPPED.inc();
        }
    }
}

/// A bounded queue of `capacity` records: the middleware's sender and the writer's receiver.
pub fn channel(capacity: usize) -> (RecordSender, mpsc::Receiver<Record>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (RecordSender(tx), rx)
}

static WRITE_ERRORS: LogLimiter = LogLimiter::new();

/// The batch writer.
pub struct MonitorWriter {
    rx: mpsc::Receiver<Record>,
    /// Where request records are kept until taken ([`MonitorWriter::with_source`]).
    source: Option<Arc<dyn HitSource>>,
    pool: Pool,
    bounded: Bounded,
    requests: Vec<Hit>,
    outliers: Vec<OutlierRecord>,
    /// The batch being written: resent as it is until the database has it.
    pending: Option<Arc<Batch>>,
    keep_ms: i64,
    batch_max: usize,
    backlog_max: usize,
    flush_every: Duration,
    last_prune: Option<Instant>,
    nice: i32,
}

impl MonitorWriter {
    /// A writer reading `rx`, writing to `pool`, each operation bounded by `op_timeout`.
    pub fn new(
        rx: mpsc::Receiver<Record>,
        pool: Pool,
        settings: &MonitorSettings,
        op_timeout: Duration,
    ) -> Self {
        MonitorWriter {
            rx,
            source: None,
            pool,
            bounded: Bounded::new(op_timeout),
            requests: Vec::new(),
            outliers: Vec::new(),
            pending: None,
            keep_ms: (settings.keep_days.min(100_000) * 86_400_000) as i64,
            batch_max: settings.batch_max,
            backlog_max: settings.queue_max,
            flush_every: Duration::from_millis(settings.flush_ms),
            last_prune: None,
            nice: settings.writer_nice,
        }
    }

    /// Also takes the request records kept by `source` (the HTTP middleware's monitor).
    pub fn with_source(mut self, source: Arc<dyn HitSource>) -> Self {
        self.source = Some(source);
        self
    }

    fn drain(&mut self) {
        if let Some(source) = &self.source {
            source.take_hits(&mut self.requests);
        }
        while let Ok(r) = self.rx.try_recv() {
            match r {
                Record::Request(r) => self.requests.push(r),
                Record::Outlier(o) => self.outliers.push(*o),
            }
        }
        for backlog in [self.requests.len(), self.outliers.len()] {
            if backlog > self.backlog_max {
                m::MONITOR_DROPPED.add((backlog - self.backlog_max) as u64);
            }
        }
        if self.requests.len() > self.backlog_max {
            let over = self.requests.len() - self.backlog_max;
            self.requests.drain(..over);
        }
        if self.outliers.len() > self.backlog_max {
            let over = self.outliers.len() - self.backlog_max;
            self.outliers.drain(..over);
        }
    }

    fn prune(&mut self) {
        if self.last_prune.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let before = now_ms - self.keep_ms;
        match self
            .bounded
            .run(&self.pool, move |p| crate::db::monitor::prune(p, before))
        {
            Ok((a, b)) => {
                m::MONITOR_PRUNED.add((a + b) as u64);
                if a + b > 0 {
                    info!("monitor: pruned {a} records and {b} outliers older than keep_days");
                }
            }
            Err(err) => WRITE_ERRORS.error(format_args!(
                "monitor: pruning {} failed: {err}",
                self.pool.target()
            )),
        }
    }

    /// The next batch: the one still pending, or up to `batch_max` requests and outliers
    /// taken off the backlog; `None` when there is nothing to write.
    fn next_batch(&mut self) -> Option<Arc<Batch>> {
        if self.pending.is_none() && (!self.requests.is_empty() || !self.outliers.is_empty()) {
            let nr = self.requests.len().min(self.batch_max);
            let no = self.outliers.len().min(self.batch_max);
            let requests: Vec<Hit> = self.requests.drain(..nr).collect();
            let outliers: Vec<OutlierRecord> = self.outliers.drain(..no).collect();
            self.pending = Some(Arc::new(Batch::new(requests, outliers)));
        }
        self.pending.clone()
    }

    /// Drains the queue and writes everything pending; returns the requests written.
    fn flush(&mut self) -> Result<usize, String> {
        self.drain();
        if self.bounded.running() > 0 {
            // An earlier batch timed out and is still running: wait for its outcome.
            return Err("an earlier batch is still running".into());
        }
        let mut written = 0;
        while let Some(batch) = self.next_batch() {
            let b = batch.clone();
            match self
                .bounded
                .run(&self.pool, move |p| crate::db::monitor::insert_batch(p, &b))
            {
                Ok(done) => {
                    self.pending = None;
                    if done.already {
                        info!(
                            "monitor: a batch of {} records retried after an error was already in {} (not written twice)",
                            done.requests,
                            self.pool.target()
                        );
                    }
                    m::MONITOR_RECORDED.add(done.requests as u64);
                    m::MONITOR_OUTLIERS.add(batch.outliers.len() as u64);
                    written += done.requests;
                }
                Err(err) => {
                    m::MONITOR_WRITE_FAILURES.inc();
                    WRITE_ERRORS.error(format_args!(
                        "monitor: writing {} records to {} failed (kept, retried): {err}",
                        batch.requests.len() + batch.outliers.len(),
                        self.pool.target()
                    ));
                    return Err(err.to_string());
                }
            }
        }
        // Pruning only once everything is written (it would wait on the same database).
        self.prune();
        Ok(written)
    }
}

impl Actor for MonitorWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Its own arbiter's thread: the database threads `Bounded` starts inherit this.
        crate::telemetry::priority::lower_thread_priority(self.nice, "monitor writer");
        ctx.run_interval(self.flush_every, |w, _| {
            let _ = w.flush();
        });
    }
}

impl Handler<FlushMonitor> for MonitorWriter {
    type Result = Result<usize, String>;

    fn handle(&mut self, _: FlushMonitor, _: &mut Self::Context) -> Self::Result {
        self.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use diesel::{Connection, RunQueryDsl};

    use super::*;
    use crate::db::testutil::test_options;
    use crate::db::PoolOptions;

    fn rec(i: i64) -> Hit {
        Hit {
            time_ms: 1_800_000_000_000 + i,
            route: "/api".into(),
            method: "GET".into(),
            status: 200,
            duration_us: 1_000,
            version: "1.0".into(),
            ip: crate::monitor::ClientIp::Addr([127, 0, 0, 1].into()),
            user: Some("admin".into()),
            group: None,
            breakdown: None,
        }
    }

    /// Records kept by a source (here a plain vector standing in for the HTTP monitor).
    struct Kept(std::sync::Mutex<Vec<Hit>>);

    impl HitSource for Kept {
        fn take_hits(&self, out: &mut Vec<Hit>) {
            out.append(&mut self.0.lock().unwrap());
        }
    }

    #[test]
    fn a_flush_takes_the_sources_records_and_the_channels_outliers() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.sqlite").display());
        let pool = crate::db::connect_with(&url, &test_options()).unwrap();
        crate::db::migrate(&pool).unwrap();
        let settings = MonitorSettings {
            batch_max: 4,
            ..MonitorSettings::default()
        };
        let kept = Arc::new(Kept(std::sync::Mutex::new((0..10).map(rec).collect())));
        let (tx, rx) = channel(100);
        let mut writer = MonitorWriter::new(rx, pool.clone(), &settings, Duration::from_secs(30))
            .with_source(kept.clone());
        let outlier = OutlierRecord {
            request: rec(3).to_record(),
            route_mean_us: 100,
            query: String::new(),
            headers: String::new(),
            cpu_percent: 1.0,
            rss_bytes: 1,
            breakdown: Default::default(),
        };
        tx.send(Record::Outlier(Box::new(outlier)));
        assert_eq!(writer.flush(), Ok(10), "three batches of at most four");
        assert!(kept.0.lock().unwrap().is_empty());
        assert_eq!(crate::db::monitor::count(&pool).unwrap(), (10, 1));
        kept.0.lock().unwrap().push(rec(10));
        assert_eq!(writer.flush(), Ok(1));
        assert_eq!(writer.flush(), Ok(0));
        let stored = crate::db::monitor::requests(&pool, 0, i64::MAX, 100).unwrap();
        let times: Vec<i64> = stored
            .iter()
            .map(|r| r.time_ms - 1_800_000_000_000)
            .collect();
        assert_eq!(times, (0..11).collect::<Vec<_>>(), "each once, in order");
    }

    /// The first attempt of a batch commits only after the writer gave up waiting for it
    /// (SQLite's write lock held by another connection past the operation limit); the retry
    /// must not insert the batch a second time.
    #[test]
    fn a_batch_that_committed_late_is_not_written_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("monitor.sqlite");
        let url = format!("sqlite://{}", path.display());
        let pool = crate::db::connect_with(
            &url,
            &PoolOptions {
                busy_timeout: Duration::from_secs(120),
                ..test_options()
            },
        )
        .unwrap();
        crate::db::migrate(&pool).unwrap();
        let settings = MonitorSettings::default();
        let (tx, rx) = channel(100);
        let mut writer =
            MonitorWriter::new(rx, pool.clone(), &settings, Duration::from_millis(300));

        // Another connection holds the write lock.
        let mut holder = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
        diesel::sql_query("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .unwrap();
        for i in 0..25 {
            tx.send(Record::Request(rec(i)));
        }
        assert!(writer.flush().is_err(), "the insert waits for the lock");
        assert_eq!(writer.bounded.running(), 1, "and is still running");
        // Released: the first attempt goes on and commits, unbeknown to the writer.
        diesel::sql_query("COMMIT").execute(&mut holder).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while writer.bounded.running() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(writer.bounded.running(), 0);
        assert_eq!(crate::db::monitor::count(&pool).unwrap(), (25, 0));

        // The retry finds the batch there: still exactly 25 records.
        assert_eq!(writer.flush(), Ok(25));
        assert_eq!(crate::db::monitor::count(&pool).unwrap(), (25, 0));
        // Later records are written as usual.
        for i in 25..30 {
            tx.send(Record::Request(rec(i)));
        }
        assert_eq!(writer.flush(), Ok(5));
        assert_eq!(writer.flush(), Ok(0));
        assert_eq!(crate::db::monitor::count(&pool).unwrap(), (30, 0));
    }
}
