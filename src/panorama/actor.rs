//! The Panorama actor: dedups anomalies, inserts them, spools them while the database is
//! unavailable, and replays the spool in order when it returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Handler, MessageResult, SyncArbiter, SyncContext, WeakAddr};

use super::dedup::Dedup;
use super::messages::{Flush, GetStats, KeepTrainingData, PanoramaStats, RecordAnomaly, Retry};
use super::spool::{Spool, SpoolItem, SpoolRecord};
use crate::db::{self, queries, Bounded, DbError, IdCache, Pool};
use crate::model::Anomaly;

/// Settings the lead maps from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PanoramaSettings {
    /// Spool directory (`[data] dir`/panorama-spool); created when absent.
    pub spool_dir: PathBuf,
    /// Skyline's `PANORAMA_EXPIRY_TIME`: one anomaly per metric per app per this many seconds,
    /// measured from the anomaly timestamp (900).
    pub expiry_secs: i64,
    /// Skyline's `PANORAMA_CHECK_MAX_AGE`: anomalies older than this on arrival are dropped;
    /// 0 disables the check (300).
    pub check_max_age_secs: i64,
    /// Apps never deduplicated and exempt from the max-age check (`webapp`, `crucible`).
    pub bypass_apps: Vec<String>,
    /// Apps exempt from the max-age check only (`analyzer_batch`: batch metrics are
    /// analysed late by design).
    pub max_age_exempt_apps: Vec<String>,
    /// `anomalies.user_id` written (1, Skyline's `Skyline` user).
    pub user_id: i32,
    /// Spooled anomalies inserted per transaction (500).
    pub batch_size: usize,
    /// First retry delay after a database failure (1 s); doubles per failure.
    pub retry_initial: Duration,
    /// Longest retry delay (60 s).
    pub retry_max: Duration,
    /// How often [`Panorama::start`]'s timer sends [`Retry`] (1 s); zero disables the timer.
    pub retry_tick: Duration,
    /// Run the embedded migrations on first contact with the database (true).
    pub auto_migrate: bool,
    /// Failed attempts, with the database reachable, after which a spooled anomaly is moved
    /// to `rejected.jsonl` instead of blocking the spool (3).
    pub max_attempts: u32,
    /// How long an operation that overran `op_timeout` may keep the actor from starting new
    /// ones (and from replaying the spool, whose duplicate check must see that operation's
    /// rows if it commits late) before the actor stops waiting for it (10 min).
    pub stall_give_up: Duration,
    /// How often (on [`Retry`] ticks) the per-metric count summary behind an unfiltered
    /// `count_by_metric` is brought up to date (10 s). Each refresh folds the rows up to the
    /// highest id seen at the previous one, so a concurrent writer's late commit is not missed.
    pub counts_refresh: Duration,
    /// Training data ([`KeepTrainingData`]) older than this is deleted
    /// (`[ionosphere] keep_training_secs`, Skyline's IONOSPHERE_KEEP_TRAINING_TIMESERIES_FOR,
    /// 3 days); 0 keeps it forever.
    pub training_keep_secs: i64,
}

impl PanoramaSettings {
    /// Skyline's defaults with the given spool directory.
    pub fn new(spool_dir: impl Into<PathBuf>) -> Self {
        PanoramaSettings {
            spool_dir: spool_dir.into(),
            expiry_secs: 900,
            check_max_age_secs: 300,
            bypass_apps: vec!["webapp".into(), "crucible".into()],
            max_age_exempt_apps: vec!["analyzer_batch".into()],
            user_id: 1,
            batch_size: 500,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            retry_tick: Duration::from_secs(1),
            auto_migrate: true,
            max_attempts: 3,
            counts_refresh: Duration::from_secs(10),
            stall_give_up: Duration::from_secs(600),
            training_keep_secs: 259_200,
        }
    }
}

impl Default for PanoramaSettings {
    fn default() -> Self {
        Self::new("data/panorama-spool")
    }
}

/// Errors inside the actor (logged and counted; nothing is returned to senders).
#[derive(Debug, thiserror::Error)]
pub enum PanoramaError {
    /// A database operation failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A spool operation failed.
    #[error(transparent)]
    Spool(#[from] super::spool::SpoolError),
    /// The spool directory could not be opened earlier and is still unavailable.
    #[error("panorama spool {0} is not open")]
    SpoolClosed(String),
}

/// The Panorama actor. Run it on a `SyncArbiter` with one thread (see [`Panorama::start`]):
/// diesel blocks, and one writer keeps inserts in order.
pub struct Panorama {
    pool: Pool,
    /// Every database operation runs through this, so none blocks the actor for longer than
    /// the pool's `op_timeout` (the database hanging means spooling, not waiting).
    bounded: Bounded,
    /// Timed-out operations still running that the actor no longer waits for (see
    /// [`Panorama::db_op`]), and since when the oldest one has kept it waiting.
    stalled_ignored: usize,
    stalled_since: Option<Instant>,
    settings: PanoramaSettings,
    dedup: Dedup,
    ids: IdCache,
    spool: Option<Spool>,
    stats: PanoramaStats,
    /// Migrated (when `auto_migrate`) and dedup seeded from the database.
    db_ready: bool,
    /// Newest anomaly per (metric, app) in the database when it was first reached; used to
    /// recheck spooled anomalies accepted before that.
    db_history: HashMap<(String, String), i64>,
    backoff: Duration,
    next_attempt: Instant,
    /// The next spool batch must skip anomalies already in the database: set at start and
    /// after any failed insert, whose commit may have happened without us hearing of it.
    verify_next: bool,
    /// Failed attempts for the spool's head record (its end offset, count).
    head_failures: Option<(u64, u32)>,
    /// Whether the last outage was already logged at `error!` (logs stay quiet after that).
    outage_logged: bool,
    /// Accepted anomalies waiting for the next [`Flush`] (group commit).
    pending: Vec<SpoolRecord>,
    /// A [`Flush`] is in the mailbox.
    flush_scheduled: bool,
    /// Set by the retry timer when it queues a [`Retry`], cleared when one is handled, so a
    /// blocked actor does not accumulate ticks (which would keep it busy after it is
    /// abandoned).
    retry_queued: Arc<AtomicBool>,
    /// When the count summary was last refreshed, and the highest anomaly id seen then.
    counts_refreshed_at: Instant,
    counts_seen_max: Option<i64>,
    /// The stats last added to the process-wide self-metrics (for deltas).
    published: PanoramaStats,
    /// Training data: last prune, and the last failure logged (once a minute).
    training_pruned_at: Option<Instant>,
    training_logged_at: Option<Instant>,
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Panorama {
    /// A Panorama writing through `pool`. Never fails: the spool is opened in `started` (and
    /// retried on every [`Retry`] if that fails), the database is reached lazily.
    pub fn new(pool: Pool, settings: PanoramaSettings) -> Panorama {
        Panorama {
            dedup: Dedup::new(settings.expiry_secs, &settings.bypass_apps),
            bounded: Bounded::new(pool.op_timeout()),
            stalled_ignored: 0,
            stalled_since: None,
            pool,
            settings,
            ids: IdCache::new(),
            spool: None,
            stats: PanoramaStats::default(),
            db_ready: false,
            db_history: HashMap::new(),
            backoff: Duration::ZERO,
            next_attempt: Instant::now(),
            verify_next: true,
            head_failures: None,
            outage_logged: false,
            pending: Vec::new(),
            flush_scheduled: false,
            retry_queued: Arc::new(AtomicBool::new(false)),
            counts_refreshed_at: Instant::now(),
            counts_seen_max: None,
            published: PanoramaStats::default(),
            training_pruned_at: None,
            training_logged_at: None,
        }
    }

    /// Starts Panorama on a one-thread `SyncArbiter` and, unless `settings.retry_tick` is
    /// zero, a timer on the current arbiter sending it [`Retry`] every tick (SyncContext has
    /// no `run_later`). The timer holds only a weak address and ends with the actor. Call
    /// from within a running actix `System`.
    pub fn start(pool: Pool, settings: PanoramaSettings) -> Addr<Panorama> {
        let tick = settings.retry_tick;
        let queued = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&queued);
        let addr = SyncArbiter::start(1, move || {
            let mut p = Panorama::new(pool.clone(), settings.clone());
            p.retry_queued = Arc::clone(&flag);
            p
        });
        if !tick.is_zero() {
            spawn_retry_timer(addr.downgrade(), tick, queued);
        }
        addr
    }

    fn due(&self) -> bool {
        Instant::now() >= self.next_attempt
    }

    fn backlog(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::depth)
    }

    fn open_spool(&mut self) {
        if self.spool.is_some() {
            return;
        }
        match Spool::open(&self.settings.spool_dir) {
            Ok(spool) => {
                let now = now_epoch();
                match spool.pending() {
                    Ok(pending) => {
                        // Spooled anomalies were accepted: their windows stay closed.
                        for r in &pending {
                            self.dedup.record(
                                &r.anomaly.metric,
                                &r.anomaly.app,
                                r.anomaly.timestamp,
                                r.received_at,
                            );
                        }
                        if !pending.is_empty() {
                            log::info!(
                                "panorama :: {} anomalies pending in spool {}, replaying",
                                pending.len(),
                                spool.dir().display()
                            );
                        }
                    }
                    Err(e) => log::error!("panorama :: reading spool: {e}"),
                }
                self.dedup.purge(now);
                self.spool = Some(spool);
            }
            Err(e @ super::spool::SpoolError::InUse(_)) => {
                // A previous Panorama in this process is still winding down; retried on the
                // next anomaly or tick.
                log::warn!("panorama :: {e}, retrying");
                self.stats.last_error = Some(e.to_string());
            }
            Err(e) => {
                log::error!(
                    "panorama :: cannot open spool {}: {e} - anomalies are lost while the database is down",
                    self.settings.spool_dir.display()
                );
                self.stats.last_error = Some(e.to_string());
            }
        }
    }

    /// Migrates and seeds the dedup state on first contact with the database.
    fn ensure_db_ready(&mut self) -> Result<(), DbError> {
        if self.db_ready {
            return Ok(());
        }
        let now = now_epoch();
        let since = now - self.settings.expiry_secs;
        let migrate = self.settings.auto_migrate;
        let recent = self.db_op(move |pool, _| {
            if migrate {
                db::migrate(pool)?;
            }
            queries::latest_per_metric_app(pool, since)
        })?;
        for (metric, app, ts) in recent {
            self.dedup.seed(&metric, &app, ts, now);
            self.db_history.insert((metric, app), ts);
        }
        self.db_ready = true;
        Ok(())
    }

    fn on_db_success(&mut self) {
        if !self.stats.db_available && self.outage_logged {
            log::info!(
                "panorama :: database {} available again",
                self.pool.target()
            );
        }
        self.stats.db_available = true;
        self.outage_logged = false;
        self.backoff = Duration::ZERO;
        self.next_attempt = Instant::now();
    }

    fn on_db_failure(&mut self, e: &DbError, what: &str) {
        self.stats.db_available = false;
        self.stats.last_error = Some(e.to_string());
        self.backoff = if self.backoff.is_zero() {
            self.settings.retry_initial
        } else {
            (self.backoff * 2).min(self.settings.retry_max)
        };
        self.next_attempt = Instant::now() + self.backoff;
        if self.outage_logged {
            log::warn!("panorama :: {what}: {e} - retrying in {:?}", self.backoff);
        } else {
            self.outage_logged = true;
            log::error!(
                "panorama :: {what}: {e} - spooling anomalies, retrying in {:?}",
                self.backoff
            );
        }
    }

    fn accept(&mut self, anomaly: Anomaly, ctx: &mut SyncContext<Self>) {
        self.stats.received += 1;
        let now = now_epoch();
        if anomaly.metric.is_empty() || !anomaly.datapoint.is_finite() {
            self.stats.invalid += 1;
            log::error!(
                "panorama :: dropping invalid anomaly for metric {:?}: datapoint {}",
                anomaly.metric,
                anomaly.datapoint
            );
            return;
        }
        let bypass = self.dedup.bypasses(&anomaly.app);
        let age_exempt = bypass || self.settings.max_age_exempt_apps.contains(&anomaly.app);
        let max_age = self.settings.check_max_age_secs;
        // The age when the anomaly was found (`added_at`), not when it reached us: time spent
        // queued behind a slow database must not turn a fresh anomaly into a stale one.
        let detected = if anomaly.added_at > 0 {
            anomaly.added_at.min(now)
        } else {
            now
        };
        if !age_exempt && max_age > 0 && detected - anomaly.timestamp > max_age {
            self.stats.too_old += 1;
            log::info!(
                "panorama :: dropping anomaly for {} from {}: its data was {} s old when it was detected (max {max_age})",
                anomaly.metric,
                anomaly.app,
                detected - anomaly.timestamp
            );
            return;
        }
        if self.dedup.is_recorded(&anomaly.metric, &anomaly.app, now) {
            self.stats.dedup_skipped += 1;
            log::debug!(
                "panorama :: {} from {} already recorded within {} s, skipping",
                anomaly.metric,
                anomaly.app,
                self.settings.expiry_secs
            );
            return;
        }
        // The window closes on acceptance, not insert: a spooled anomaly will be inserted.
        self.dedup
            .record(&anomaly.metric, &anomaly.app, anomaly.timestamp, now);
        self.pending.push(SpoolRecord {
            received_at: now,
            dedup_checked: self.db_ready,
            anomaly,
        });
        if self.pending.len() >= self.settings.batch_size.max(1) {
            self.flush();
        } else if !self.flush_scheduled {
            // Group commit: the Flush queues behind every message already in the mailbox,
            // so a burst is inserted in one transaction and a lone anomaly right away.
            self.flush_scheduled = true;
            ctx.address().do_send(Flush);
        }
    }

    /// Inserts the accepted anomalies in one transaction, or spools them (behind any
    /// backlog, or when the database fails).
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        if self.backlog() == 0 && self.due() {
            match self.insert_direct(&batch) {
                Ok(()) => return,
                Err(e) => {
                    self.stats.insert_failures += 1;
                    // The commit may have happened anyway: replay with an existence check.
                    self.verify_next = true;
                    let names: Vec<&str> =
                        batch.iter().map(|r| r.anomaly.metric.as_str()).collect();
                    let what = format!("inserting anomalies for {} failed", names.join(", "));
                    self.on_db_failure(&e, &what);
                }
            }
        }
        for mut record in batch {
            record.dedup_checked = record.dedup_checked || self.db_ready;
            self.spool_or_lose(record);
        }
        if self.backlog() > 0 && self.due() {
            self.drain();
        }
    }

    fn insert_direct(&mut self, batch: &[SpoolRecord]) -> Result<(), DbError> {
        self.ensure_db_ready()?;
        // Accepted before the database's recent anomalies were known: recheck them now.
        let keep: Vec<bool> = batch.iter().map(|r| !self.blocked_by_history(r)).collect();
        let anomalies: Vec<Anomaly> = batch
            .iter()
            .zip(&keep)
            .filter(|(_, keep)| **keep)
            .map(|(r, _)| r.anomaly.clone())
            .collect();
        self.stats.dedup_skipped += (batch.len() - anomalies.len()) as u64;
        let user_id = self.settings.user_id;
        if let [a] = anomalies.as_slice() {
            let one = a.clone();
            let id =
                self.db_op(move |pool, ids| queries::insert_anomaly(pool, ids, &one, user_id))?;
            log::info!(
                "panorama :: recorded anomaly id {id} for {} from {} at {}",
                a.metric,
                a.app,
                a.timestamp
            );
        } else {
            let batch = anomalies.clone();
            self.db_op(move |pool, ids| queries::insert_anomalies(pool, ids, &batch, user_id))?;
            for a in &anomalies {
                log::info!(
                    "panorama :: recorded anomaly for {} from {} at {}",
                    a.metric,
                    a.app,
                    a.timestamp
                );
            }
        }
        self.stats.inserted += anomalies.len() as u64;
        self.on_db_success();
        Ok(())
    }

    fn spool_or_lose(&mut self, record: SpoolRecord) {
        self.open_spool();
        let result = match self.spool.as_mut() {
            Some(spool) => spool.push(&record).map_err(PanoramaError::from),
            None => Err(PanoramaError::SpoolClosed(
                self.settings.spool_dir.display().to_string(),
            )),
        };
        match result {
            Ok(()) => {
                self.stats.spooled += 1;
                log::info!(
                    "panorama :: spooled anomaly for {} from {} at {} (spool depth {})",
                    record.anomaly.metric,
                    record.anomaly.app,
                    record.anomaly.timestamp,
                    self.backlog()
                );
            }
            Err(e) => {
                self.stats.lost += 1;
                self.stats.last_error = Some(e.to_string());
                // Never recorded: the metric, if still anomalous, must get through next time.
                self.dedup
                    .forget(&record.anomaly.metric, &record.anomaly.app);
                log::error!(
                    "panorama :: LOST anomaly for {} from {} at {}: cannot spool it: {e}",
                    record.anomaly.metric,
                    record.anomaly.app,
                    record.anomaly.timestamp
                );
            }
        }
    }

    /// True when a spooled anomaly accepted before the database was reached would have been
    /// dropped by the dedup window of an anomaly already in the database.
    fn blocked_by_history(&self, r: &SpoolRecord) -> bool {
        if r.dedup_checked || self.dedup.bypasses(&r.anomaly.app) {
            return false;
        }
        self.db_history
            .get(&(r.anomaly.metric.clone(), r.anomaly.app.clone()))
            .is_some_and(|&ts| r.received_at < ts + self.settings.expiry_secs)
    }

    /// Inserts spooled anomalies in order, a batch per transaction, until the spool is empty
    /// or the database fails.
    fn drain(&mut self) {
        if let Err(e) = self.ensure_db_ready() {
            self.stats.insert_failures += 1;
            self.on_db_failure(&e, "database unavailable");
            return;
        }
        loop {
            match self.drain_batch() {
                Ok(true) => continue,
                Ok(false) => break,
                Err(PanoramaError::Db(e)) => {
                    self.on_db_failure(&e, "replaying the spool failed");
                    break;
                }
                Err(e) => {
                    self.stats.last_error = Some(e.to_string());
                    log::error!("panorama :: replaying the spool failed: {e}");
                    break;
                }
            }
        }
        if self.backlog() == 0 {
            // Every pre-contact anomaly is inserted; the history is no longer needed.
            self.db_history.clear();
        }
    }

    /// One batch. `Ok(true)` when something was consumed and more may follow.
    fn drain_batch(&mut self) -> Result<bool, PanoramaError> {
        let now = now_epoch();
        let Some(spool) = self.spool.as_mut() else {
            return Ok(false);
        };
        let entries = spool.peek(self.settings.batch_size.max(1))?;
        if entries.is_empty() {
            return Ok(false);
        }
        // Unparsable lines at the head go to rejected.jsonl; a batch stops before the next.
        if let SpoolItem::Corrupt(raw) = &entries[0].item {
            log::error!("panorama :: unparsable spool line moved to rejected.jsonl: {raw:?}");
            spool.reject(&entries[0].item, "unparsable spool line", now)?;
            spool.commit(entries[0].end_offset, 1)?;
            self.stats.rejected += 1;
            return Ok(true);
        }
        let mut records = Vec::new();
        let mut end = 0;
        for e in &entries {
            match &e.item {
                SpoolItem::Record(r) => {
                    records.push(r.clone());
                    end = e.end_offset;
                }
                SpoolItem::Corrupt(_) => break,
            }
        }
        let consumed = records.len() as u64;
        let mut anomalies = Vec::with_capacity(records.len());
        let mut skipped = 0;
        for r in &records {
            if self.blocked_by_history(r) {
                skipped += 1;
                log::info!(
                    "panorama :: {} from {} was recorded within {} s before the restart, skipping the spooled one",
                    r.anomaly.metric,
                    r.anomaly.app,
                    self.settings.expiry_secs
                );
            } else {
                anomalies.push(r.anomaly.clone());
            }
        }
        let user_id = self.settings.user_id;
        let batch = anomalies.clone();
        let result = if self.verify_next {
            self.db_op(move |pool, ids| {
                queries::insert_anomalies_if_absent(pool, ids, &batch, user_id)
            })
        } else {
            self.db_op(move |pool, ids| {
                queries::insert_anomalies(pool, ids, &batch, user_id).map(|n| (n, 0))
            })
        };
        match result {
            Ok((inserted, present)) => {
                let spool = self.spool.as_mut().ok_or_else(|| {
                    PanoramaError::SpoolClosed(self.settings.spool_dir.display().to_string())
                })?;
                // If this commit fails the batch is replayed, with verification.
                self.verify_next = true;
                spool.commit(end, consumed)?;
                self.verify_next = false;
                self.head_failures = None;
                self.stats.inserted += inserted as u64;
                self.stats.replayed += inserted as u64;
                self.stats.replay_duplicates += present as u64;
                self.stats.dedup_skipped += skipped;
                self.on_db_success();
                log::info!(
                    "panorama :: inserted {inserted} spooled anomalies ({present} already recorded), spool depth {}",
                    self.backlog()
                );
                Ok(true)
            }
            Err(e) => {
                self.stats.insert_failures += 1;
                self.verify_next = true;
                if !self.db_answers(&e) {
                    return Err(e.into());
                }
                // The database answers but refuses the batch: find the record it refuses.
                log::error!(
                    "panorama :: inserting {} spooled anomalies (first {}) failed with the database up: {e}",
                    anomalies.len(),
                    records[0].anomaly.metric
                );
                self.isolate(&entries)
            }
        }
    }

    /// Inserts the batch one record at a time (the database is up but refused the batch).
    /// A record refused `max_attempts` times in a row is moved to `rejected.jsonl`.
    fn isolate(&mut self, entries: &[super::spool::SpoolEntry]) -> Result<bool, PanoramaError> {
        for entry in entries {
            let SpoolItem::Record(r) = &entry.item else {
                return Ok(true);
            };
            let result = if self.blocked_by_history(r) {
                self.stats.dedup_skipped += 1;
                Ok((0, 0))
            } else {
                let (one, user_id) = (r.anomaly.clone(), self.settings.user_id);
                self.db_op(move |pool, ids| {
                    queries::insert_anomalies_if_absent(
                        pool,
                        ids,
                        std::slice::from_ref(&one),
                        user_id,
                    )
                })
            };
            // Asked before the spool is borrowed: does the database answer, refusing the row?
            let refused = match &result {
                Err(e) => self.db_answers(e),
                Ok(_) => false,
            };
            let spool = self.spool.as_mut().ok_or_else(|| {
                PanoramaError::SpoolClosed(self.settings.spool_dir.display().to_string())
            })?;
            match result {
                Ok((inserted, present)) => {
                    spool.commit(entry.end_offset, 1)?;
                    self.head_failures = None;
                    self.stats.inserted += inserted as u64;
                    self.stats.replayed += inserted as u64;
                    self.stats.replay_duplicates += present as u64;
                    self.on_db_success();
                }
                Err(e) => {
                    if !refused {
                        return Err(e.into());
                    }
                    let attempts = match self.head_failures {
                        Some((offset, n)) if offset == entry.end_offset => n + 1,
                        _ => 1,
                    };
                    if attempts >= self.settings.max_attempts {
                        log::error!(
                            "panorama :: anomaly for {} at {} refused {attempts} times by the database ({e}), moved to {}/rejected.jsonl",
                            r.anomaly.metric,
                            r.anomaly.timestamp,
                            spool.dir().display()
                        );
                        spool.reject(&entry.item, &e.to_string(), now_epoch())?;
                        spool.commit(entry.end_offset, 1)?;
                        self.stats.rejected += 1;
                        self.head_failures = None;
                        continue;
                    }
                    self.head_failures = Some((entry.end_offset, attempts));
                    return Err(e.into());
                }
            }
        }
        Ok(true)
    }

    /// Runs `f` through [`Bounded`] with the id cache, so the actor waits at most the pool's
    /// `op_timeout`. While an earlier operation that timed out is still running, nothing new
    /// is started ([`DbError::Stalled`]): it may still commit, and a replay must see its rows
    /// to skip them. Past `stall_give_up` the actor stops waiting for it (and says so at
    /// `error!`); a late commit of that operation could then duplicate rows, never lose any.
    fn db_op<T, F>(&mut self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Pool, &mut IdCache) -> Result<T, DbError> + Send + 'static,
    {
        let running = self.bounded.running();
        self.stalled_ignored = self.stalled_ignored.min(running);
        if running > self.stalled_ignored {
            let since = *self.stalled_since.get_or_insert_with(Instant::now);
            if since.elapsed() < self.settings.stall_give_up {
                return Err(DbError::Stalled {
                    target: self.pool.target().to_string(),
                });
            }
            log::error!(
                "panorama :: {} statement(s) on {} still unanswered after {:?}; no longer waiting for them (a late commit may duplicate those anomalies)",
                running - self.stalled_ignored,
                self.pool.target(),
                self.settings.stall_give_up
            );
            self.stalled_ignored = running;
        }
        self.stalled_since = None;
        let mut ids = std::mem::replace(&mut self.ids, IdCache::new());
        let result = self.bounded.run(&self.pool, move |pool| {
            let r = f(pool, &mut ids);
            Ok((ids, r))
        });
        match result {
            Ok((ids, r)) => {
                self.ids = ids;
                r
            }
            // The cache went with the abandoned operation; a fresh one refills on demand.
            Err(e) => Err(e),
        }
    }

    /// After a failed insert: does the database answer (so it refused the rows) rather than
    /// being down or hanging?
    fn db_answers(&mut self, e: &DbError) -> bool {
        !e.is_unavailable() && self.db_op(|pool, _| db::ping(pool)).is_ok()
    }

    /// Keeps the per-metric count summary current (cheap when nothing changed: one indexed
    /// `MAX(id)`). Failures only delay it; counts stay exact either way.
    fn refresh_counts(&mut self) {
        if !self.db_ready
            || self.backlog() > 0
            || self.counts_refreshed_at.elapsed() < self.settings.counts_refresh
        {
            return;
        }
        self.counts_refreshed_at = Instant::now();
        if let Some(through) = self.counts_seen_max {
            match self.db_op(move |pool, _| queries::refresh_metric_counts(pool, through)) {
                Ok(0) => {}
                Ok(n) => log::debug!("panorama :: folded {n} anomalies into the metric counts"),
                Err(e) => {
                    log::warn!("panorama :: refreshing the metric counts failed: {e}");
                    return;
                }
            }
        }
        match self.db_op(|pool, _| queries::max_anomaly_id(pool)) {
            Ok(id) => self.counts_seen_max = Some(id),
            Err(e) => log::warn!("panorama :: refreshing the metric counts failed: {e}"),
        }
    }

    /// Adds what changed since the last call to the self-metrics (`telemetry::metrics`):
    /// counters by their increase, the spool depth and database state as gauges. Observes
    /// only; called at the end of every handler.
    fn publish(&mut self) {
        use crate::telemetry::metrics as m;
        let now = self.snapshot();
        let p = &self.published;
        for (c, new, old) in [
            (&m::PANORAMA_RECEIVED, now.received, p.received),
            (&m::PANORAMA_INSERTED, now.inserted, p.inserted),
            (&m::PANORAMA_SPOOLED, now.spooled, p.spooled),
            (
                &m::PANORAMA_DEDUPLICATED,
                now.dedup_skipped,
                p.dedup_skipped,
            ),
            (&m::PANORAMA_TOO_OLD, now.too_old, p.too_old),
            (&m::PANORAMA_INVALID, now.invalid, p.invalid),
            (
                &m::PANORAMA_INSERT_FAILURES,
                now.insert_failures,
                p.insert_failures,
            ),
            (&m::PANORAMA_REJECTED, now.rejected, p.rejected),
            (&m::PANORAMA_LOST, now.lost, p.lost),
        ] {
            c.add(new.saturating_sub(old));
        }
        m::PANORAMA_SPOOL_DEPTH.set(now.spool_depth as i64);
        m::PANORAMA_DB_AVAILABLE.set(i64::from(now.db_available));
        self.published = now;
    }

    fn snapshot(&self) -> PanoramaStats {
        let mut s = self.stats.clone();
        s.spool_depth = self.backlog();
        s.dedup_windows = self.dedup.len() as u64;
        s
    }
}

/// Sends [`Retry`] to `addr` every `every` until the actor is gone, skipping ticks while a
/// previous `Retry` is still queued (`queued`, shared with the actor).
fn spawn_retry_timer(addr: WeakAddr<Panorama>, every: Duration, queued: Arc<AtomicBool>) {
    actix_rt::spawn(async move {
        let mut interval = actix_rt::time::interval(every);
        loop {
            interval.tick().await;
            let Some(a) = addr.upgrade() else {
                break;
            };
            if !queued.swap(true, Ordering::AcqRel) {
                a.do_send(Retry);
            }
        }
    });
}

impl Actor for Panorama {
    type Context = SyncContext<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        log::info!(
            "panorama :: started, database {}, spool {}",
            self.pool.target(),
            self.settings.spool_dir.display()
        );
        self.open_spool();
        self.verify_next = true;
        if self.backlog() > 0 {
            self.drain();
        } else {
            match self.ensure_db_ready() {
                Ok(()) => self.on_db_success(),
                Err(e) => self.on_db_failure(&e, "database unavailable at start"),
            }
        }
        self.publish();
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.flush();
        log::info!(
            "panorama :: stopped with {} anomalies in the spool",
            self.backlog()
        );
    }
}

impl Handler<RecordAnomaly> for Panorama {
    type Result = ();

    fn handle(&mut self, msg: RecordAnomaly, ctx: &mut Self::Context) {
        self.accept(msg.0, ctx);
        self.publish();
    }
}

impl Handler<Retry> for Panorama {
    type Result = ();

    fn handle(&mut self, _msg: Retry, _ctx: &mut Self::Context) {
        self.handle_retry();
        self.publish();
    }
}

impl Panorama {
    fn handle_retry(&mut self) {
        self.retry_queued.store(false, Ordering::Release);
        self.flush();
        self.open_spool();
        self.dedup.purge(now_epoch());
        if !self.due() {
            return;
        }
        self.refresh_counts();
        self.prune_training();
        if self.backlog() > 0 {
            self.drain();
        } else if !self.db_ready {
            if let Err(e) = self.ensure_db_ready() {
                self.on_db_failure(&e, "database unavailable");
            } else {
                self.on_db_success();
            }
        }
    }
}

impl Panorama {
    /// Deletes expired training data, at most every 10 minutes (failures only delay it).
    fn prune_training(&mut self) {
        let keep = self.settings.training_keep_secs;
        if keep <= 0
            || !self.db_ready
            || self.backlog() > 0
            || self
                .training_pruned_at
                .is_some_and(|t| t.elapsed() < Duration::from_secs(600))
        {
            return;
        }
        self.training_pruned_at = Some(Instant::now());
        let before = now_epoch() - keep;
        match self.db_op(move |pool, _| db::ionosphere::prune_training(pool, before)) {
            Ok(0) => {}
            Ok(n) => log::info!("panorama :: deleted {n} expired ionosphere training series"),
            Err(e) => log::warn!("panorama :: deleting expired training data failed: {e}"),
        }
    }

    fn keep_training(&mut self, td: db::ionosphere::TrainingData) {
        use crate::telemetry::metrics as m;
        let what = format!("{} at {} ({})", td.metric, td.metric_timestamp, td.app);
        let result = self.ensure_db_ready().and_then(|()| {
            self.db_op(move |pool, ids| db::ionosphere::store_training(pool, ids, &td))
        });
        match result {
            Ok(_) => m::PANORAMA_TRAINING_KEPT.inc(),
            Err(e) => {
                // Not an anomaly: the anomaly itself is recorded (or spooled) as ever; only
                // training on it will answer 409. Counted, logged once a minute.
                m::PANORAMA_TRAINING_FAILED.inc();
                if self
                    .training_logged_at
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    self.training_logged_at = Some(Instant::now());
                    log::error!(
                        "panorama :: keeping the training series of {what} failed: {e} (logged once a minute)"
                    );
                }
            }
        }
    }
}

impl Handler<KeepTrainingData> for Panorama {
    type Result = ();

    fn handle(&mut self, msg: KeepTrainingData, _ctx: &mut Self::Context) {
        // Anomalies first: their insert must not wait behind a series.
        self.flush();
        self.keep_training(msg.0);
        self.publish();
    }
}

impl Handler<Flush> for Panorama {
    type Result = ();

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) {
        self.flush_scheduled = false;
        self.flush();
        self.publish();
    }
}

impl Handler<GetStats> for Panorama {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _msg: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        // Report what was accepted before this request as inserted or spooled.
        self.flush();
        self.publish();
        MessageResult(self.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    use super::*;
    use crate::db::testutil::{anomaly, now, test_options, PrivatePg};
    use crate::db::{connect_lazy, connect_with, AnomalyQuery, PoolOptions, MAX_LIMIT};

    fn settings(dir: &Path) -> PanoramaSettings {
        PanoramaSettings {
            retry_initial: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            retry_tick: Duration::ZERO,
            ..PanoramaSettings::new(dir.join("spool"))
        }
    }

    fn sqlite_url(dir: &Path) -> String {
        format!("sqlite://{}/panorama.sqlite", dir.display())
    }

    fn sqlite_pool(dir: &Path) -> Pool {
        let opts = PoolOptions {
            busy_timeout: Duration::from_millis(100),
            connection_timeout: Duration::from_secs(1),
            ..test_options()
        };
        connect_with(&sqlite_url(dir), &opts).unwrap()
    }

    /// All recorded anomalies in insertion (id) order, as (metric, timestamp, app).
    fn rows(pool: &Pool) -> Vec<(String, i64, String)> {
        let mut rows = queries::search(
            pool,
            &AnomalyQuery {
                limit: MAX_LIMIT,
                ..AnomalyQuery::default()
            },
        )
        .unwrap();
        rows.sort_by_key(|r| r.id);
        rows.into_iter()
            .map(|r| (r.metric, r.anomaly_timestamp, r.app))
            .collect()
    }

    fn key(a: &Anomaly) -> (String, i64, String) {
        (a.metric.clone(), a.timestamp, a.app.clone())
    }

    async fn stats(addr: &Addr<Panorama>) -> PanoramaStats {
        addr.send(GetStats).await.unwrap()
    }

    fn start(pool: &Pool, settings: &PanoramaSettings) -> Addr<Panorama> {
        let (pool, settings) = (pool.clone(), settings.clone());
        SyncArbiter::start(1, move || Panorama::new(pool.clone(), settings.clone()))
    }

    /// Waits until an abandoned actor has released the spool (it finishes its queued messages
    /// first), as a restarted daemon process would find it.
    async fn wait_for_release(cfg: &PanoramaSettings) {
        for _ in 0..200 {
            if Spool::open(&cfg.spool_dir).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the previous Panorama never released its spool");
    }

    /// Holds SQLite's write lock from another connection: Panorama's inserts time out.
    fn lock_sqlite(dir: &Path) -> SqliteConnection {
        let path = format!("{}/panorama.sqlite", dir.display());
        let mut c = SqliteConnection::establish(&path).unwrap();
        // Waits for the lock when Panorama holds it at that moment (a write under way on a
        // loaded machine), instead of failing at once with "database is locked".
        c.batch_execute("PRAGMA busy_timeout = 30000; BEGIN IMMEDIATE")
            .unwrap();
        c
    }

    /// An anomaly whose data was already `t - ts` seconds old when it was detected at `t`.
    fn stale(metric: &str, ts: i64, t: i64) -> Anomaly {
        let mut a = anomaly(metric, ts, "analyzer", &[]);
        a.added_at = t;
        a
    }

    #[test]
    fn age_is_measured_when_the_anomaly_was_detected_not_when_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let sys = actix::System::new();
        sys.block_on(async {
            let pool = sqlite_pool(dir.path());
            let addr = start(&pool, &settings(dir.path()));
            let t = now();
            // Detected 5 s after its last point, delivered 400 s later (a slow database kept
            // Panorama busy): recorded.
            addr.do_send(RecordAnomaly(anomaly("m.late", t - 405, "analyzer", &[])));
            // Data 400 s old when detected: dropped, as Skyline does.
            addr.do_send(RecordAnomaly(stale("m.old", t - 400, t)));
            let s = stats(&addr).await;
            assert_eq!((s.inserted, s.too_old), (1, 1), "{s:?}");
        });
    }

    #[actix_rt::test]
    async fn records_dedups_and_drops_like_skyline() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        let addr = start(&pool, &settings(dir.path()));
        let t = now();
        let mut nan = anomaly("m.nan", t, "analyzer", &[]);
        nan.datapoint = f64::NAN;
        let sent = [
            anomaly("m.1", t - 10, "analyzer", &["grubbs"]), // recorded
            anomaly("m.1", t - 5, "analyzer", &["grubbs"]),  // same window: skipped
            anomaly("m.1", t - 5, "mirage", &["grubbs"]),    // other app: recorded
            anomaly("m.1", t - 4, "webapp", &["grubbs"]),    // bypass: recorded
            anomaly("m.1", t - 3, "webapp", &["grubbs"]),    // bypass again: recorded
            stale("m.2", t - 400, t),                        // too old when detected
            anomaly("m.3", t - 400, "crucible", &[]),        // bypass skips max age
            anomaly("m.4", t - 400, "analyzer_batch", &[]),  // exempt from max age
            nan,                                             // invalid
            anomaly("m.5", t - 1, "analyzer", &["ks_test"]), // recorded
        ];
        for a in &sent {
            addr.do_send(RecordAnomaly(a.clone()));
        }
        let s = stats(&addr).await;
        assert_eq!(s.received, 10);
        assert_eq!(s.inserted, 7);
        assert_eq!(s.dedup_skipped, 1);
        assert_eq!(s.too_old, 1);
        assert_eq!(s.invalid, 1);
        assert_eq!((s.spooled, s.spool_depth, s.lost), (0, 0, 0));
        assert!(s.db_available);
        let expected: Vec<_> = [0, 2, 3, 4, 6, 7, 9]
            .iter()
            .map(|&i| key(&sent[i]))
            .collect();
        assert_eq!(rows(&pool), expected);
    }

    #[actix_rt::test]
    async fn dedup_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        let t = now();
        let first = start(&pool, &settings(dir.path()));
        first.do_send(RecordAnomaly(anomaly("m.1", t - 10, "analyzer", &[])));
        assert_eq!(stats(&first).await.inserted, 1);
        drop(first);
        wait_for_release(&settings(dir.path())).await;

        let second = start(&pool, &settings(dir.path()));
        second.do_send(RecordAnomaly(anomaly("m.1", t - 5, "analyzer", &[])));
        second.do_send(RecordAnomaly(anomaly("m.1", t - 5, "mirage", &[])));
        let s = stats(&second).await;
        assert_eq!((s.inserted, s.dedup_skipped), (1, 1));
        assert_eq!(rows(&pool).len(), 2);
    }

    #[actix_rt::test]
    async fn outage_spools_in_order_and_replays_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        let cfg = settings(dir.path());
        let t = now();
        let a: Vec<Anomaly> = (0..6)
            .map(|i| anomaly(&format!("m.{i}"), t - 60 + i, "analyzer", &["grubbs"]))
            .collect();

        let first = start(&pool, &cfg);
        first.do_send(RecordAnomaly(a[0].clone()));
        assert_eq!(stats(&first).await.inserted, 1);

        // The database stops taking writes: everything spools, in order.
        let lock = lock_sqlite(dir.path());
        for x in &a[1..4] {
            first.do_send(RecordAnomaly(x.clone()));
        }
        let s = stats(&first).await;
        assert_eq!((s.inserted, s.spooled, s.spool_depth), (1, 3, 3));
        assert!(s.insert_failures >= 1 && !s.db_available, "{s:?}");
        assert!(s.last_error.unwrap().contains("locked"));
        drop(first);
        wait_for_release(&cfg).await;

        // The daemon restarts while the database is still locked.
        let second = start(&pool, &cfg);
        second.do_send(RecordAnomaly(a[4].clone()));
        // Same metric and app as a spooled anomaly: the spool keeps its window closed.
        second.do_send(RecordAnomaly(anomaly("m.2", t - 30, "analyzer", &[])));
        let s = stats(&second).await;
        assert_eq!(
            (s.spool_depth, s.dedup_skipped, s.inserted),
            (4, 1, 0),
            "{s:?}"
        );

        drop(lock);
        tokio::time::sleep(Duration::from_millis(150)).await;
        second.do_send(Retry);
        second.do_send(RecordAnomaly(a[5].clone()));
        let s = stats(&second).await;
        assert_eq!((s.spool_depth, s.inserted, s.replayed), (0, 5, 4), "{s:?}");
        assert!(s.db_available);
        let expected: Vec<_> = a.iter().map(key).collect();
        assert_eq!(rows(&pool), expected, "every anomaly once, in order");
        drop(second);
        wait_for_release(&cfg).await;

        // A further restart replays nothing.
        let third = start(&pool, &cfg);
        let s = stats(&third).await;
        assert_eq!((s.inserted, s.spool_depth), (0, 0));
        assert_eq!(rows(&pool).len(), 6);
    }

    #[actix_rt::test]
    async fn replay_after_a_crash_between_insert_and_checkpoint_is_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        db::migrate(&pool).unwrap();
        let cfg = settings(dir.path());
        let t = now();
        let a: Vec<Anomaly> = (0..3)
            .map(|i| anomaly(&format!("m.{i}"), t - 60 + i, "analyzer", &["grubbs"]))
            .collect();
        let mut spool = Spool::open(&cfg.spool_dir).unwrap();
        for x in &a {
            spool
                .push(&SpoolRecord {
                    received_at: t - 50,
                    dedup_checked: true,
                    anomaly: x.clone(),
                })
                .unwrap();
        }
        drop(spool);
        // The first one made it into the database before the crash.
        queries::insert_anomaly(&pool, &mut IdCache::new(), &a[0], 1).unwrap();

        let addr = start(&pool, &cfg);
        let s = stats(&addr).await;
        assert_eq!(
            (s.replayed, s.replay_duplicates, s.spool_depth),
            (2, 1, 0),
            "{s:?}"
        );
        let expected: Vec<_> = a.iter().map(key).collect();
        assert_eq!(rows(&pool), expected);
    }

    #[actix_rt::test]
    async fn spooled_before_first_contact_is_rechecked_against_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        db::migrate(&pool).unwrap();
        let cfg = settings(dir.path());
        let t = now();
        // Recorded by the previous run; then the daemon restarted with the database down
        // and accepted the same metric again without knowing.
        queries::insert_anomaly(
            &pool,
            &mut IdCache::new(),
            &anomaly("m.1", t - 100, "analyzer", &[]),
            1,
        )
        .unwrap();
        let mut spool = Spool::open(&cfg.spool_dir).unwrap();
        for (m, ts) in [("m.1", t - 20), ("m.2", t - 20)] {
            spool
                .push(&SpoolRecord {
                    received_at: t - 10,
                    dedup_checked: false,
                    anomaly: anomaly(m, ts, "analyzer", &[]),
                })
                .unwrap();
        }
        drop(spool);
        let addr = start(&pool, &cfg);
        let s = stats(&addr).await;
        assert_eq!(
            (s.replayed, s.dedup_skipped, s.spool_depth),
            (1, 1, 0),
            "{s:?}"
        );
        let metrics: Vec<String> = rows(&pool).into_iter().map(|r| r.0).collect();
        assert_eq!(metrics, ["m.1", "m.2"]);
    }

    #[actix_rt::test]
    async fn accepted_while_the_database_was_unreachable_is_rechecked_on_first_contact() {
        let dir = tempfile::tempdir().unwrap();
        let t = now();
        {
            // The previous run recorded m.1.
            let pool = sqlite_pool(dir.path());
            db::migrate(&pool).unwrap();
            queries::insert_anomaly(
                &pool,
                &mut IdCache::new(),
                &anomaly("m.1", t - 100, "analyzer", &[]),
                1,
            )
            .unwrap();
        }
        // This run reaches the database through a symlink that first points nowhere (the
        // open fails), then is switched atomically to the real file, so no connection
        // attempt in between can create a stray empty database.
        let link = dir.path().join("link.sqlite");
        std::os::unix::fs::symlink(dir.path().join("missing/x.sqlite"), &link).unwrap();
        let opts = PoolOptions {
            connection_timeout: Duration::from_millis(300),
            ..test_options()
        };
        let pool = connect_lazy(&format!("sqlite://{}", link.display()), &opts).unwrap();
        let addr = start(&pool, &settings(dir.path()));
        let s = stats(&addr).await;
        assert!(!s.db_available && s.last_error.is_some(), "{s:?}");
        // It comes back; the next anomalies reach it directly.
        let tmp = dir.path().join("link.tmp");
        std::os::unix::fs::symlink(dir.path().join("panorama.sqlite"), &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        addr.do_send(RecordAnomaly(anomaly("m.1", t - 10, "analyzer", &[])));
        addr.do_send(RecordAnomaly(anomaly("m.2", t - 10, "analyzer", &[])));
        let s = stats(&addr).await;
        assert_eq!((s.inserted, s.dedup_skipped, s.spooled), (1, 1, 0), "{s:?}");
        let metrics: Vec<(String, i64)> = rows(&pool).into_iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(
            metrics,
            [("m.1".to_string(), t - 100), ("m.2".to_string(), t - 10)]
        );
    }

    #[actix_rt::test]
    async fn a_record_the_database_refuses_is_rejected_not_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        db::migrate(&pool).unwrap();
        let PoolKindRef::Sqlite(p) = kind(&pool) else {
            unreachable!()
        };
        p.get()
            .unwrap()
            .batch_execute(
                "CREATE TRIGGER poison BEFORE INSERT ON anomalies WHEN NEW.anomaly_timestamp = 42 \
                 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
            )
            .unwrap();
        let cfg = PanoramaSettings {
            check_max_age_secs: 0,
            max_attempts: 2,
            ..settings(dir.path())
        };
        let addr = start(&pool, &cfg);
        let t = now();
        addr.do_send(RecordAnomaly(anomaly("m.good1", t - 3, "analyzer", &[])));
        addr.do_send(RecordAnomaly(anomaly("m.poison", 42, "analyzer", &[])));
        addr.do_send(RecordAnomaly(anomaly("m.good2", t - 2, "analyzer", &[])));
        let mut s = stats(&addr).await;
        for _ in 0..50 {
            if s.spool_depth == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            addr.do_send(Retry);
            s = stats(&addr).await;
        }
        assert_eq!(
            (s.inserted, s.rejected, s.spool_depth, s.lost),
            (2, 1, 0, 0),
            "{s:?}"
        );
        let metrics: Vec<String> = rows(&pool).into_iter().map(|r| r.0).collect();
        assert_eq!(metrics, ["m.good1", "m.good2"]);
        let rejected = std::fs::read_to_string(cfg.spool_dir.join("rejected.jsonl")).unwrap();
        assert!(
            rejected.contains("m.poison") && rejected.contains("poisoned row"),
            "{rejected}"
        );
    }

    enum PoolKindRef<'a> {
        Sqlite(&'a r2d2::Pool<diesel::r2d2::ConnectionManager<SqliteConnection>>),
        Other,
    }

    fn kind(pool: &Pool) -> PoolKindRef<'_> {
        match pool.kind() {
            db::PoolKind::Sqlite(p) => PoolKindRef::Sqlite(p),
            _ => PoolKindRef::Other,
        }
    }

    #[actix_rt::test]
    async fn retry_ticks_keep_the_metric_count_summary_current() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        let cfg = PanoramaSettings {
            counts_refresh: Duration::ZERO,
            ..settings(dir.path())
        };
        let addr = start(&pool, &cfg);
        let t = now();
        for (m, app) in [("m.1", "analyzer"), ("m.2", "analyzer"), ("m.1", "mirage")] {
            addr.do_send(RecordAnomaly(anomaly(m, t - 5, app, &[])));
        }
        stats(&addr).await;
        let all = AnomalyQuery::default();
        let expected = vec![("m.1".to_string(), 2), ("m.2".to_string(), 1)];
        assert_eq!(queries::count_by_metric(&pool, &all).unwrap(), expected);
        // First tick notes the max id, the second folds up to it.
        addr.do_send(Retry);
        addr.do_send(Retry);
        stats(&addr).await;
        let PoolKindRef::Sqlite(p) = kind(&pool) else {
            unreachable!()
        };
        #[derive(diesel::QueryableByName)]
        struct Through {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            value: i64,
        }
        let through: Through = diesel::sql_query("SELECT value FROM panorama_state")
            .get_result(&mut *p.get().unwrap())
            .unwrap();
        assert_eq!(through.value, 3);
        assert_eq!(queries::count_by_metric(&pool, &all).unwrap(), expected);
    }

    #[actix_rt::test]
    async fn start_drives_retries_with_its_own_timer() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        let cfg = PanoramaSettings {
            retry_tick: Duration::from_millis(20),
            ..settings(dir.path())
        };
        let addr = Panorama::start(pool.clone(), cfg);
        assert!(stats(&addr).await.db_available);
        let lock = lock_sqlite(dir.path());
        addr.do_send(RecordAnomaly(anomaly("m.1", now() - 1, "analyzer", &[])));
        assert_eq!(stats(&addr).await.spool_depth, 1);
        drop(lock);
        let mut s = stats(&addr).await;
        for _ in 0..100 {
            if s.spool_depth == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            s = stats(&addr).await;
        }
        assert_eq!((s.spool_depth, s.inserted), (0, 1), "{s:?}");
    }

    #[actix_rt::test]
    async fn unusable_spool_directory_still_inserts_and_counts_losses() {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite_pool(dir.path());
        // A file where the spool directory should be.
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let cfg = PanoramaSettings {
            spool_dir: blocker.join("spool"),
            ..settings(dir.path())
        };
        let addr = start(&pool, &cfg);
        addr.do_send(RecordAnomaly(anomaly("m.1", now() - 1, "analyzer", &[])));
        assert_eq!(stats(&addr).await.inserted, 1);
        let lock = lock_sqlite(dir.path());
        addr.do_send(RecordAnomaly(anomaly("m.2", now() - 1, "analyzer", &[])));
        let s = stats(&addr).await;
        drop(lock);
        assert_eq!((s.inserted, s.lost), (1, 1), "{s:?}");
        // The lost anomaly was never recorded: its window must not suppress the metric.
        tokio::time::sleep(cfg.retry_max * 2).await;
        addr.do_send(RecordAnomaly(anomaly("m.2", now(), "analyzer", &[])));
        let s = stats(&addr).await;
        assert_eq!((s.inserted, s.dedup_skipped, s.lost), (2, 0, 1), "{s:?}");
    }

    /// The real thing: a PostgreSQL server stopped and started under a running Panorama,
    /// with a Panorama restart in the middle of the outage.
    #[actix_rt::test]
    async fn postgres_outage_and_daemon_restart_lose_nothing() {
        let _ = env_logger::builder().is_test(true).try_init();
        let Some(pg) = PrivatePg::init("postgres_outage_and_daemon_restart_lose_nothing") else {
            return;
        };
        pg.start();
        let dir = tempfile::tempdir().unwrap();
        let opts = PoolOptions {
            connection_timeout: Duration::from_secs(1),
            ..test_options()
        };
        let pool = connect_lazy(&pg.url(), &opts).unwrap();
        let cfg = PanoramaSettings {
            retry_tick: Duration::from_millis(50),
            ..settings(dir.path())
        };
        let t = now();
        let a: Vec<Anomaly> = (0..8)
            .map(|i| anomaly(&format!("stats.m{i}"), t - 100 + i, "analyzer", &["grubbs"]))
            .collect();

        let first = Panorama::start(pool.clone(), cfg.clone());
        for x in &a[..3] {
            first.do_send(RecordAnomaly(x.clone()));
        }
        let s = stats(&first).await;
        assert_eq!((s.inserted, s.spool_depth), (3, 0), "{s:?}");

        pg.stop();
        for x in &a[3..6] {
            first.do_send(RecordAnomaly(x.clone()));
        }
        first.do_send(RecordAnomaly(anomaly("stats.m3", t - 50, "analyzer", &[])));
        let s = stats(&first).await;
        assert_eq!(
            (s.inserted, s.spooled, s.spool_depth, s.dedup_skipped),
            (3, 3, 3, 1),
            "{s:?}"
        );
        assert!(!s.db_available);
        drop(first);
        wait_for_release(&cfg).await;

        // Restarted daemon, database still down.
        let second = Panorama::start(pool.clone(), cfg.clone());
        second.do_send(RecordAnomaly(a[6].clone()));
        second.do_send(RecordAnomaly(anomaly("stats.m4", t - 40, "analyzer", &[])));
        let s = stats(&second).await;
        assert_eq!((s.spool_depth, s.dedup_skipped, s.lost), (4, 1, 0), "{s:?}");

        pg.start();
        let mut s = stats(&second).await;
        for _ in 0..200 {
            if s.spool_depth == 0 && s.db_available {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            s = stats(&second).await;
        }
        assert_eq!((s.spool_depth, s.replayed), (0, 4), "{s:?}");
        second.do_send(RecordAnomaly(a[7].clone()));
        assert_eq!(stats(&second).await.inserted, 5);
        let expected: Vec<_> = a.iter().map(key).collect();
        assert_eq!(
            rows(&pool),
            expected,
            "every anomaly exactly once, in order"
        );
        drop(second);
        wait_for_release(&cfg).await;

        let third = Panorama::start(pool.clone(), cfg);
        let s = stats(&third).await;
        assert_eq!((s.inserted, s.spool_depth), (0, 0));
        assert_eq!(rows(&pool).len(), 8);
    }

    /// A database that hangs (PostgreSQL SIGSTOPped) for longer than `check_max_age_secs`:
    /// every anomaly accepted meanwhile is in the spool within seconds, none is lost or
    /// dropped as too old, each is recorded exactly once after the database thaws (the
    /// insert that was in flight when it froze commits late; the replay must not repeat it),
    /// and `/api/anomalies` answers 503 within its timeout during the hang.
    #[actix_rt::test]
    async fn a_hung_database_loses_nothing_and_the_api_answers_503() {
        let _ = env_logger::builder().is_test(true).try_init();
        let test = "a_hung_database_loses_nothing_and_the_api_answers_503";
        let Some(pg) = PrivatePg::init(test) else {
            return;
        };
        pg.start();
        let dir = tempfile::tempdir().unwrap();
        let op_timeout = Duration::from_secs(2);
        let opts = PoolOptions {
            connection_timeout: Duration::from_secs(1),
            op_timeout,
            ..test_options()
        };
        let pool = connect_lazy(&pg.url(), &opts).unwrap();
        let cfg = PanoramaSettings {
            retry_tick: Duration::from_millis(50),
            check_max_age_secs: 3,
            ..settings(dir.path())
        };

        // The daemon's webapp on the same database.
        let redis = crate::testkit::TestRedis::start().unwrap();
        let mut conf = crate::config::Config::default();
        conf.data.dir = dir.path().join("daemon");
        conf.redis.url = redis.url();
        conf.horizon.pickle_bind = "127.0.0.1:0".into();
        conf.horizon.udp_bind = "127.0.0.1:0".into();
        conf.horizon.plaintext_bind = "127.0.0.1:0".into();
        conf.webapp.bind = "127.0.0.1:0".into();
        conf.webapp.auth_password = "test-password-0123".into();
        conf.analyzer.enabled = false;
        conf.flux.carbon_pickle_addr = String::new();
        conf.panorama.database_url = pg.url();
        conf.panorama.db_timeout_secs = 2;
        let running = crate::app::start(&conf).await.unwrap();
        let api = format!(
            "http://{}/api/anomalies?limit=10",
            running.http_addr.unwrap()
        );
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        let get = || async {
            let started = Instant::now();
            let res = client
                .get(&api)
                .basic_auth("admin", "test-password-0123")
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), started.elapsed())
        };
        assert_eq!(get().await.0, 200);

        let addr = Panorama::start(pool.clone(), cfg.clone());
        let fresh = |name: String| {
            let t = now();
            let mut a = anomaly(&name, t - 1, "analyzer", &["grubbs"]);
            a.added_at = t;
            a
        };
        let mut sent = vec![fresh("stats.hang.0".into())];
        addr.do_send(RecordAnomaly(sent[0].clone()));
        assert_eq!(stats(&addr).await.inserted, 1);

        pg.pause();
        let frozen = Instant::now();
        for i in 1..=3 {
            let a = fresh(format!("stats.hang.{i}"));
            addr.do_send(RecordAnomaly(a.clone()));
            sent.push(a);
        }
        let s = stats(&addr).await;
        assert_eq!((s.spooled, s.spool_depth, s.lost), (3, 3, 0), "{s:?}");
        // In the spool within the operation timeout (plus slack), not when the database wakes.
        assert!(frozen.elapsed() < op_timeout * 3, "{:?}", frozen.elapsed());

        // The API answers 503 within its timeout, twice (the second with the first request's
        // statement still stuck on a pooled connection).
        for _ in 0..2 {
            let (status, took) = get().await;
            assert_eq!(status, 503);
            assert!(took < op_timeout * 3, "{took:?}");
        }

        // Longer than check_max_age_secs, with anomalies arriving all along.
        for i in 4..=6 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let a = fresh(format!("stats.hang.{i}"));
            addr.do_send(RecordAnomaly(a.clone()));
            sent.push(a);
        }
        let s = stats(&addr).await;
        assert!(frozen.elapsed() > Duration::from_secs(cfg.check_max_age_secs as u64));
        assert_eq!(
            (s.spooled, s.spool_depth, s.lost, s.too_old),
            (6, 6, 0, 0),
            "{s:?}"
        );
        assert!(!s.db_available);

        pg.resume();
        let mut s = stats(&addr).await;
        for _ in 0..400 {
            if s.spool_depth == 0 && s.db_available {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            s = stats(&addr).await;
        }
        assert_eq!((s.spool_depth, s.lost, s.too_old), (0, 0, 0), "{s:?}");
        assert_eq!(s.replayed + s.replay_duplicates, 6, "{s:?}");
        let expected: Vec<_> = sent.iter().map(key).collect();
        assert_eq!(
            rows(&pool),
            expected,
            "every anomaly exactly once, in order"
        );
        assert_eq!(get().await.0, 200);
        running.shutdown().await;
    }
}
