//! The Panorama database: owns the tables (Skyline's `anomalies`, `metrics`, `apps`, `hosts`,
//! `sources`, `algorithms`, with the `algorithm_groups` and `users` seeds; and this port's
//! `panorama_metric_counts` / `panorama_state`, a per-metric count summary; the endpoint
//! monitor's `monitor_request_blocks` / `monitor_outliers`, queried in [`monitor`]), the connection
//! pool, and the embedded migrations for SQLite, MySQL/MariaDB and PostgreSQL. No actors live
//! here.
//!
//! Schema decisions (details in the migrations): column-compatible with earthgecko Skyline's
//! `skyline.sql`; no `tenant_id` (HEAD's panorama writes one that skyline.sql lacks; nothing
//! reads it, and adding it means an ALTER of a user's large live table); extra indexes for the
//! searches, every one ending in `anomaly_timestamp` because results are ordered by it.
//!
//! * [`connect`] / [`connect_with`] parse `[panorama] database_url` (see [`url`]), open one
//!   connection with the concrete backend type first, so a failure carries the real cause
//!   ("Access denied for user …", "Connection refused", …), then build an r2d2 pool.
//!   [`connect_lazy`] builds the pool without connecting, for a daemon that must start (and
//!   spool anomalies) while its database is down.
//! * [`migrate`] applies the embedded migrations of the pool's backend and returns the names it
//!   applied (none when the schema is current). The MySQL set is idempotent on a database
//!   created by Skyline's own `skyline.sql`.
//! * [`queries`] holds every query, all parameterised diesel DSL. They are plain blocking
//!   functions taking `&Pool`: call them from actix-web through `web::block`, or from a
//!   `SyncArbiter` actor (Panorama).
//!
//! * Drivers (`conn`): SQLite is diesel's own; MySQL/MariaDB and PostgreSQL are pure Rust
//!   (diesel-async's sync wrapper over mysql_async / tokio-postgres), callable from any thread
//!   ([`off_runtime`]).
//!
//! Backpressure: a pool checkout waits at most [`PoolOptions::connection_timeout`], statements
//! are capped by [`PoolOptions::statement_timeout`] (PostgreSQL `statement_timeout`, MariaDB
//! `max_statement_time`) and SQLite waits on locks for [`PoolOptions::busy_timeout`]. Those
//! need a server that answers; against one that hangs (stopped, wedged) only a client-side
//! limit helps: [`Bounded`] runs an operation on a helper thread and gives up waiting after
//! [`PoolOptions::op_timeout`] ([`DbError::Timeout`]), which Panorama and the webapp use.
//!
//! Credentials never reach logs or errors: [`Pool::target`] and every error use the redacted
//! URL.

mod conn;
pub mod ionosphere;
pub mod monitor;
pub mod queries;
mod schema;
pub mod url;

#[cfg(test)]
pub(crate) mod testutil;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, HandleError};
use diesel::{Connection, SqliteConnection};
use diesel_async::{AsyncMysqlConnection, AsyncPgConnection};

pub use conn::off_runtime;
pub use conn::{AsyncManager, Establish, MysqlConn, OwnRuntime, PgConn};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use queries::{AnomalyQuery, AnomalyRow, IdCache, Lookup, Order, DEFAULT_LIMIT, MAX_LIMIT};
pub use url::{redact, Backend, DbUrl, SqliteTarget};

/// SQLite migrations (`migrations/sqlite`).
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// MySQL/MariaDB migrations (`migrations/mysql`), idempotent on a Skyline `skyline` database.
pub const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
/// PostgreSQL migrations (`migrations/postgres`).
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Errors from the database layer. Every variant names its target with the password redacted.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `database_url` could not be parsed.
    #[error("invalid database_url: {0}")]
    Url(String),
    /// The first connection failed; `source` is the driver's own message.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// Redacted URL.
        target: String,
        /// The driver error (e.g. "Access denied for user", "Connection refused").
        #[source]
        source: diesel::ConnectionError,
    },
    /// The SQLite file's directory could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No pooled connection within the checkout timeout (server down, pool exhausted).
    #[error("database {target} unavailable: {source}")]
    Unavailable {
        /// Redacted URL.
        target: String,
        /// r2d2's error, which carries the last connection error.
        #[source]
        source: r2d2::Error,
    },
    /// A statement failed.
    #[error("query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("migrations failed on {target}: {message}")]
    Migration {
        /// Redacted URL.
        target: String,
        /// The migration harness error.
        message: String,
    },
    /// A [`Bounded`] operation got no answer in time (the server hangs or is overloaded).
    /// The operation itself may still complete later.
    #[error("database {target} did not answer within {:.1} s", after.as_secs_f64())]
    Timeout {
        /// Redacted URL.
        target: String,
        /// The limit that expired.
        after: Duration,
    },
    /// An earlier [`Bounded`] operation is still waiting for the server, so no new one was
    /// started (its outcome is unknown until it finishes).
    #[error("database {target} is still working on an earlier statement that timed out")]
    Stalled {
        /// Redacted URL.
        target: String,
    },
    /// The helper thread of a [`Bounded`] operation could not be started or died.
    #[error("database worker thread for {target}: {message}")]
    Worker {
        /// Redacted URL.
        target: String,
        /// What went wrong.
        message: String,
    },
}

impl DbError {
    /// True when the failure says the server is unreachable or not answering (as opposed to
    /// refusing a statement): the webapp answers 503 for these.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Unavailable { .. }
                | DbError::Connect { .. }
                | DbError::Timeout { .. }
                | DbError::Stalled { .. }
        )
    }
}

/// Pool settings beyond the URL.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Maximum pooled connections (forced to 1 for an in-memory SQLite database, which is
    /// private to its connection).
    pub max_size: u32,
    /// How long a checkout waits for a connection before failing (a down server fails here).
    pub connection_timeout: Duration,
    /// Per-statement cap on PostgreSQL (`statement_timeout`) and MariaDB
    /// (`max_statement_time`); `None` leaves the server default. Migrations run without it.
    pub statement_timeout: Option<Duration>,
    /// SQLite `busy_timeout`: how long a statement waits for another connection's lock.
    pub busy_timeout: Duration,
    /// Client-side limit for one whole operation (checkout and statements) run through
    /// [`Bounded`] or awaited by the webapp: past it the caller stops waiting (Panorama
    /// spools, the webapp answers 503) whatever the server does (`[panorama] db_timeout_secs`).
    pub op_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 4,
            connection_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(30)),
            busy_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(10),
        }
    }
}

/// The r2d2 pool of one concrete backend.
#[derive(Clone)]
pub enum PoolKind {
    /// SQLite.
    Sqlite(r2d2::Pool<ConnectionManager<SqliteConnection>>),
    /// MySQL / MariaDB (mysql_async).
    Mysql(r2d2::Pool<AsyncManager<AsyncMysqlConnection>>),
    /// PostgreSQL (tokio-postgres).
    Postgres(r2d2::Pool<AsyncManager<AsyncPgConnection>>),
}

/// A connection pool for whichever backend `database_url` named. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    kind: PoolKind,
    target: Arc<str>,
    // Kept so `migrate` can lift the cap for its own statements and then restore it.
    statement_timeout: Option<Duration>,
    op_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({})", self.target)
    }
}

impl Pool {
    /// The backend-specific pool.
    pub fn kind(&self) -> &PoolKind {
        &self.kind
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self.kind {
            PoolKind::Sqlite(_) => Backend::Sqlite,
            PoolKind::Mysql(_) => Backend::Mysql,
            PoolKind::Postgres(_) => Backend::Postgres,
        }
    }

    /// The database URL with its password redacted, for logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// [`PoolOptions::op_timeout`].
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// Checks a connection out of `pool`, naming the (redacted) target on failure.
    pub(crate) fn checkout<M: r2d2::ManageConnection>(
        &self,
        pool: &r2d2::Pool<M>,
    ) -> Result<r2d2::PooledConnection<M>, DbError> {
        pool.get().map_err(|source| DbError::Unavailable {
            target: self.target.to_string(),
            source,
        })
    }
}

/// Runs database operations on a helper thread and waits at most a fixed time for each, so
/// a server that stops answering (SIGSTOPped, a full disk, a lock held for minutes) cannot
/// block the caller: past the limit the caller gets [`DbError::Timeout`] while the operation
/// carries on in the background until the server answers or the connection dies.
///
/// An operation that overran may still commit afterwards. [`Bounded::running`] tells whether
/// one is still in flight, so a caller that retries writes (Panorama's spool replay) can wait
/// for it to finish before checking which rows exist. Clones share the count.
#[derive(Debug, Clone)]
pub struct Bounded {
    limit: Duration,
    running: Arc<AtomicUsize>,
}

impl Bounded {
    /// Operations bounded by `limit`.
    pub fn new(limit: Duration) -> Bounded {
        Bounded {
            limit,
            running: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Operations started through this value (or a clone) that have not finished yet; after
    /// a [`DbError::Timeout`] this stays above zero until the overrunning one ends.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Runs `f(pool)` on a helper thread; returns its result, or [`DbError::Timeout`] when it
    /// has not finished within the limit.
    pub fn run<T, F>(&self, pool: &Pool, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Pool) -> Result<T, DbError> + Send + 'static,
    {
        /// Decrements the count when the operation ends, panicking included.
        struct Done(Arc<AtomicUsize>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let worker_pool = pool.clone();
        self.running.fetch_add(1, Ordering::SeqCst);
        let done = Done(Arc::clone(&self.running));
        let spawned = std::thread::Builder::new()
            .name("skyline-db".into())
            .spawn(move || {
                let result = f(&worker_pool);
                // Count it finished before the caller can see the result.
                drop(done);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Err(DbError::Worker {
                target: pool.target().to_string(),
                message: format!("cannot start a thread: {e}"),
            });
        }
        match rx.recv_timeout(self.limit) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(DbError::Timeout {
                target: pool.target().to_string(),
                after: self.limit,
            }),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(DbError::Worker {
                target: pool.target().to_string(),
                message: "the operation panicked".to_string(),
            }),
        }
    }
}

/// Parses `url`, connects once (reporting the real cause on failure) and builds a pool of
/// `pool_size` connections with default [`PoolOptions`].
pub fn connect(url: &str, pool_size: u32) -> Result<Pool, DbError> {
    connect_with(
        url,
        &PoolOptions {
            max_size: pool_size,
            ..PoolOptions::default()
        },
    )
}

/// [`connect`] with explicit options.
pub fn connect_with(url: &str, opts: &PoolOptions) -> Result<Pool, DbError> {
    let parsed = DbUrl::parse(url)?;
    let target = parsed.redacted();
    let setup = SessionSetup::for_url(&parsed, opts);
    let connect_err = |source| DbError::Connect {
        target: target.clone(),
        source,
    };
    // Establish with the concrete type first: the pool would only report a timeout.
    match &parsed {
        DbUrl::Sqlite(t) => {
            let path = sqlite_path(t)?;
            let mut c = SqliteConnection::establish(&path).map_err(connect_err)?;
            c.batch_execute(&setup.sql)
                .map_err(|e| connect_err(diesel::ConnectionError::CouldntSetupConfiguration(e)))?;
        }
        DbUrl::Mysql(u) => off_runtime(|| {
            let mut c = conn::establish_mysql(u, opts.connection_timeout).map_err(connect_err)?;
            c.batch_execute(&setup.sql)
                .map_err(|e| connect_err(diesel::ConnectionError::CouldntSetupConfiguration(e)))
        })?,
        DbUrl::Postgres(u) => off_runtime(|| {
            let mut c = conn::establish_pg(&pg_url_with_timeout(u, opts), opts.connection_timeout)
                .map_err(connect_err)?;
            c.batch_execute(&setup.sql)
                .map_err(|e| connect_err(diesel::ConnectionError::CouldntSetupConfiguration(e)))
        })?,
    }
    build_pool(&parsed, opts, setup)
}

/// Parses `url` and builds the pool without connecting: checkouts fail (after
/// [`PoolOptions::connection_timeout`]) until the server is reachable. For SQLite the parent
/// directory is still created.
pub fn connect_lazy(url: &str, opts: &PoolOptions) -> Result<Pool, DbError> {
    let parsed = DbUrl::parse(url)?;
    let setup = SessionSetup::for_url(&parsed, opts);
    if let DbUrl::Sqlite(t) = &parsed {
        sqlite_path(t)?;
    }
    build_pool(&parsed, opts, setup)
}

/// Applies the pending embedded migrations for the pool's backend and returns the names of
/// those applied (empty when the schema was already current).
pub fn migrate(pool: &Pool) -> Result<Vec<String>, DbError> {
    let target = pool.target().to_string();
    let fail = |message: String| DbError::Migration {
        target: target.clone(),
        message,
    };
    let applied = match pool.kind() {
        PoolKind::Sqlite(p) => {
            let mut c = pool.checkout(p)?;
            run_migrations(&mut *c, SQLITE_MIGRATIONS).map_err(fail)?
        }
        PoolKind::Mysql(p) => off_runtime(|| -> Result<_, DbError> {
            let mut c = pool.checkout(p)?;
            // Index builds on a large existing table may outlast the statement cap.
            c.batch_execute(&mysql_statement_cap(None))?;
            let r = run_migrations(&mut *c, MYSQL_MIGRATIONS).map_err(fail);
            // Put the pooled connection back as the pool configured it.
            c.batch_execute(&mysql_statement_cap(pool.statement_timeout))?;
            r
        })?,
        PoolKind::Postgres(p) => off_runtime(|| -> Result<_, DbError> {
            let mut c = pool.checkout(p)?;
            c.batch_execute("SET statement_timeout = 0")?;
            let r = run_migrations(&mut *c, POSTGRES_MIGRATIONS).map_err(fail);
            c.batch_execute(&pg_statement_cap(pool.statement_timeout))?;
            r
        })?,
    };
    if !applied.is_empty() {
        log::info!(
            "panorama :: applied migrations {} on {}",
            applied.join(", "),
            pool.target()
        );
    }
    Ok(applied)
}

/// Runs a trivial statement to check the database answers.
pub fn ping(pool: &Pool) -> Result<(), DbError> {
    match pool.kind() {
        PoolKind::Sqlite(p) => pool.checkout(p)?.batch_execute("SELECT 1")?,
        PoolKind::Mysql(p) => off_runtime(|| -> Result<_, DbError> {
            Ok(pool.checkout(p)?.batch_execute("SELECT 1")?)
        })?,
        PoolKind::Postgres(p) => off_runtime(|| -> Result<_, DbError> {
            Ok(pool.checkout(p)?.batch_execute("SELECT 1")?)
        })?,
    }
    Ok(())
}

/// Connects once to `url` (any backend), runs `sql` (one or more statements, no results) and
/// disconnects. For administration and tests (creating/dropping a database, loading a
/// fixture); callable from async code.
pub fn execute_batch(url: &str, sql: &str) -> Result<(), DbError> {
    let parsed = DbUrl::parse(url)?;
    let connect_err = |source| DbError::Connect {
        target: parsed.redacted(),
        source,
    };
    let timeout = PoolOptions::default().connection_timeout;
    off_runtime(|| -> Result<(), DbError> {
        match &parsed {
            DbUrl::Sqlite(t) => {
                let mut c = SqliteConnection::establish(&sqlite_path(t)?).map_err(connect_err)?;
                Ok(c.batch_execute(sql)?)
            }
            DbUrl::Mysql(u) => {
                let mut c = conn::establish_mysql(u, timeout).map_err(connect_err)?;
                Ok(c.batch_execute(sql)?)
            }
            DbUrl::Postgres(u) => {
                let mut c = conn::establish_pg(u, timeout).map_err(connect_err)?;
                Ok(c.batch_execute(sql)?)
            }
        }
    })
}

fn run_migrations<C, DB>(conn: &mut C, set: EmbeddedMigrations) -> Result<Vec<String>, String>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let names: Vec<(String, String)> = MigrationSource::<DB>::migrations(&set)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect();
    let applied = conn
        .run_pending_migrations(set)
        .map_err(|e| e.to_string())?;
    Ok(applied
        .iter()
        .map(|v| {
            let v = v.to_string();
            names
                .iter()
                .find(|(version, _)| *version == v)
                .map_or(v.clone(), |(_, name)| name.clone())
        })
        .collect())
}

/// SQL run on every new connection.
#[derive(Debug, Clone)]
struct SessionSetup {
    sql: String,
}

impl SessionSetup {
    fn for_url(url: &DbUrl, opts: &PoolOptions) -> SessionSetup {
        let sql = match url {
            // WAL lets the webapp read while Panorama writes; synchronous=FULL makes a commit
            // durable across power loss, which "nothing lost" needs. journal_mode is a no-op
            // for :memory: (it stays "memory").
            DbUrl::Sqlite(_) => format!(
                "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
                opts.busy_timeout.as_millis()
            ),
            DbUrl::Mysql(_) => mysql_statement_cap(opts.statement_timeout),
            DbUrl::Postgres(_) => pg_statement_cap(opts.statement_timeout),
        };
        SessionSetup { sql }
    }
}

/// `max_statement_time` exists on MariaDB only, so it sits in a MariaDB executable comment
/// (`/*M! … */`) that MySQL ignores; the leading user-variable assignment keeps the statement
/// non-empty on MySQL.
fn mysql_statement_cap(cap: Option<Duration>) -> String {
    let secs = cap.map_or(0.0, |d| d.as_secs_f64());
    format!("SET @skyline_panorama = 1 /*M!100108 , SESSION max_statement_time = {secs:.3} */")
}

fn pg_statement_cap(cap: Option<Duration>) -> String {
    format!(
        "SET statement_timeout = {}",
        cap.map_or(0, |d| d.as_millis())
    )
}

impl<C: SimpleConnection> CustomizeConnection<C, diesel::r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut C) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&self.sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// r2d2 logs every failed background connection attempt at `error!` by default; the callers
/// already report failures with context, so the pool's own reports go to `debug!`.
#[derive(Debug)]
struct QuietErrors;

impl HandleError<diesel::r2d2::Error> for QuietErrors {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        log::debug!("panorama :: database pool: {error}");
    }
}

fn sqlite_path(t: &SqliteTarget) -> Result<String, DbError> {
    match t {
        SqliteTarget::Memory => Ok(":memory:".to_string()),
        SqliteTarget::File(p) => {
            create_parent(p)?;
            Ok(p.to_string_lossy().into_owned())
        }
    }
}

fn create_parent(path: &Path) -> Result<(), DbError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| DbError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// tokio-postgres waits for the OS TCP timeout (minutes) on an unreachable host unless told
/// otherwise (the whole connect is also bounded by [`AsyncManager`]).
fn pg_url_with_timeout(url: &str, opts: &PoolOptions) -> String {
    if url.contains("connect_timeout=") {
        return url.to_string();
    }
    let secs = opts.connection_timeout.as_secs().max(2);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={secs}")
}

fn build_pool(url: &DbUrl, opts: &PoolOptions, setup: SessionSetup) -> Result<Pool, DbError> {
    fn builder<M: r2d2::ManageConnection<Error = diesel::r2d2::Error>>(
        opts: &PoolOptions,
        setup: SessionSetup,
    ) -> r2d2::Builder<M>
    where
        SessionSetup: CustomizeConnection<M::Connection, diesel::r2d2::Error>,
    {
        r2d2::Pool::builder()
            .max_size(opts.max_size.max(1))
            // Connections are made on demand, so a down server costs nothing until used.
            .min_idle(Some(0))
            .connection_timeout(opts.connection_timeout)
            .test_on_check_out(true)
            .error_handler(Box::new(QuietErrors))
            .connection_customizer(Box::new(setup))
    }
    let target: Arc<str> = Arc::from(url.redacted());
    let kind = match url {
        DbUrl::Sqlite(t) => {
            let path = sqlite_path(t)?;
            let b = builder::<ConnectionManager<SqliteConnection>>(opts, setup);
            let b = if *t == SqliteTarget::Memory {
                // One connection that never expires: closing it would drop the database.
                b.max_size(1).idle_timeout(None).max_lifetime(None)
            } else {
                b
            };
            PoolKind::Sqlite(b.build_unchecked(ConnectionManager::new(path)))
        }
        DbUrl::Mysql(u) => PoolKind::Mysql(
            builder(opts, setup)
                .build_unchecked(AsyncManager::new(u.clone(), opts.connection_timeout)),
        ),
        DbUrl::Postgres(u) => PoolKind::Postgres(builder(opts, setup).build_unchecked(
            AsyncManager::new(pg_url_with_timeout(u, opts), opts.connection_timeout),
        )),
    };
    Ok(Pool {
        kind,
        target,
        statement_timeout: opts.statement_timeout,
        op_timeout: opts.op_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::queries::{self, IdCache, Lookup};
    use super::testutil::{anomaly, free_port, sqlite_db, test_options, TestDb};
    use super::*;
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    use diesel::RunQueryDsl;

    /// The names of every migration directory of `pool`'s backend, in order (what a first
    /// `migrate` on a fresh database applies).
    fn all_migrations(pool: &Pool) -> Vec<String> {
        let dir = match pool.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
            Backend::Postgres => "postgres",
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().join("up.sql").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.len() >= 2, "{names:?}");
        names
    }

    /// Evaluates a fixed integer SQL expression (test-only; no values are interpolated).
    fn scalar(pool: &Pool, expr: &str) -> i64 {
        let q = diesel::select(sql::<BigInt>(expr));
        match pool.kind() {
            PoolKind::Sqlite(p) => q.get_result(&mut *p.get().unwrap()).unwrap(),
            PoolKind::Mysql(p) => q.get_result(&mut *p.get().unwrap()).unwrap(),
            PoolKind::Postgres(p) => q.get_result(&mut *p.get().unwrap()).unwrap(),
        }
    }

    fn id_of(pool: &Pool, kind: Lookup, name: &str) -> i32 {
        queries::resolve_id(pool, &mut IdCache::new(), kind, name).unwrap()
    }

    /// Seeds present once each, with skyline.sql's ids on a fresh database.
    fn check_fresh_seeds(pool: &Pool) {
        for (i, app) in [
            "analyzer",
            "mirage",
            "boundary",
            "ionosphere",
            "analyzer_batch",
            "webapp",
            "snab",
            "vortex",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(id_of(pool, Lookup::App, app), i as i32 + 1, "{app}");
        }
        for (i, s) in ["graphite", "redis", "redistimeseries", "victoriametrics"]
            .iter()
            .enumerate()
        {
            assert_eq!(id_of(pool, Lookup::Source, s), i as i32 + 1, "{s}");
        }
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM apps)"), 8);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM sources)"), 4);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM users)"), 2);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM algorithm_groups)"), 2);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM algorithms)"), 0);
        assert_eq!(
            scalar(
                pool,
                "(SELECT COUNT(*) FROM panorama_state WHERE value = 0)"
            ),
            1
        );
    }

    fn migrate_twice(pool: &Pool) {
        assert_eq!(migrate(pool).unwrap(), all_migrations(pool));
        assert_eq!(migrate(pool).unwrap(), Vec::<String>::new());
        check_fresh_seeds(pool);
        // A third run after data exists changes nothing either.
        let mut c = IdCache::new();
        queries::insert_anomaly(
            pool,
            &mut c,
            &anomaly("a.b", 1_700_000_000, "analyzer", &["grubbs"]),
            1,
        )
        .unwrap();
        assert!(migrate(pool).unwrap().is_empty());
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM anomalies)"), 1);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM apps)"), 8);
    }

    #[test]
    fn sqlite_migrate_is_idempotent_and_uses_wal() {
        let (dir, pool) = sqlite_db();
        assert!(dir.path().join("sub").is_dir(), "parent directory created");
        migrate_twice(&pool);
        let PoolKind::Sqlite(p) = pool.kind() else {
            panic!("not sqlite")
        };
        #[derive(diesel::QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
            .get_result(&mut *p.get().unwrap())
            .unwrap();
        assert_eq!(mode.journal_mode, "wal");
    }

    #[test]
    fn mysql_migrate_is_idempotent() {
        let Some(db) = TestDb::mysql("mysql_migrate_is_idempotent") else {
            return;
        };
        migrate_twice(&db.pool);
        for index in [
            "metric_id_anomaly_timestamp",
            "anomaly_timestamp",
            "anomaly_timestamp_metric_id",
            "app_id_anomaly_timestamp",
            "source_id_anomaly_timestamp",
            "host_id_anomaly_timestamp",
            "anomaly",
            "alert",
        ] {
            assert_eq!(
                scalar(
                    &db.pool,
                    &format!(
                        "(SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS \
                         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'anomalies' \
                         AND INDEX_NAME = '{index}')"
                    )
                ),
                1,
                "{index}"
            );
        }
    }

    #[test]
    fn postgres_migrate_is_idempotent() {
        let Some(db) = TestDb::postgres("postgres_migrate_is_idempotent") else {
            return;
        };
        migrate_twice(&db.pool);
        assert_eq!(
            scalar(
                &db.pool,
                "(SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'anomalies' \
                 AND indexname IN ('anomalies_metric_id_anomaly_timestamp', \
                 'anomalies_anomaly_timestamp'))"
            ),
            2
        );
    }

    fn index_count(pool: &Pool, table: &str, index: &str) -> i64 {
        scalar(
            pool,
            &format!(
                "(SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' \
                 AND INDEX_NAME = '{index}')"
            ),
        )
    }

    #[test]
    fn mysql_migrate_on_a_skyline_database() {
        let Some(db) = TestDb::mysql_with_fixture(
            "mysql_migrate_on_a_skyline_database",
            include_str!("testdata/skyline_head_mysql.sql"),
        ) else {
            return;
        };
        let pool = &db.pool;
        let before_apps = scalar(pool, "(SELECT COUNT(*) FROM apps)");
        assert_eq!(migrate(pool).unwrap(), all_migrations(pool));
        assert!(migrate(pool).unwrap().is_empty());
        // Nothing duplicated or renumbered.
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM apps)"), before_apps);
        check_ids_unchanged(pool);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM users)"), 2);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM algorithm_groups)"), 2);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM sql_versions)"), 1);
        assert_eq!(
            index_count(pool, "anomalies", "metric_id_anomaly_timestamp"),
            1
        );
        assert_eq!(index_count(pool, "metrics", "metric_name"), 1);

        // Python Skyline's row reads back with its names.
        let rows = queries::search(
            pool,
            &AnomalyQuery {
                metric: Some("stats.legacy.metric".into()),
                ..AnomalyQuery::default()
            },
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.app.as_str(), r.source.as_str()), ("mirage", "graphite"));
        assert_eq!(r.host, "skyline-python-1");
        assert_eq!(r.datapoint, 12_345.678_901);
        assert_eq!(r.anomaly_timestamp, 1_700_000_000);
        assert_eq!(r.anomaly_end_timestamp, Some(1_700_000_600));
        assert_eq!(r.full_duration, 604_800);
        assert_eq!(
            r.triggered_algorithms,
            vec!["grubbs", "median_absolute_deviation", "least_squares"]
        );
        assert_eq!(r.algorithms_run.len(), 9);
        // Python Skyline's rows count, before and after folding them into the summary.
        let all = AnomalyQuery::default();
        assert_eq!(
            queries::count_by_metric(pool, &all).unwrap(),
            vec![("stats.legacy.metric".to_string(), 1)]
        );
        assert_eq!(queries::refresh_metric_counts(pool, 1).unwrap(), 1);
        assert_eq!(
            queries::count_by_metric(pool, &all).unwrap(),
            vec![("stats.legacy.metric".to_string(), 1)]
        );

        // New anomalies reuse Skyline's ids.
        let mut c = IdCache::new();
        let a = anomaly("stats.legacy.metric", 1_700_100_000, "mirage", &["grubbs"]);
        let id = queries::insert_anomaly(pool, &mut c, &a, 1).unwrap();
        assert_eq!(c.get(Lookup::Metric, "stats.legacy.metric"), Some(1));
        assert_eq!(c.get(Lookup::Algorithm, "least_squares"), Some(9));
        let row = queries::anomaly_by_id(pool, id).unwrap().unwrap();
        assert_eq!(row.triggered_algorithms, vec!["grubbs"]);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM algorithms)"), 9);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM metrics)"), 1);
    }

    fn check_ids_unchanged(pool: &Pool) {
        assert_eq!(id_of(pool, Lookup::App, "analyzer"), 1);
        assert_eq!(id_of(pool, Lookup::App, "vortex"), 8);
        assert_eq!(id_of(pool, Lookup::Source, "graphite"), 1);
        assert_eq!(id_of(pool, Lookup::Host, "skyline-python-1"), 1);
    }

    #[test]
    fn mysql_migrate_on_a_legacy_skyline_database() {
        let Some(db) = TestDb::mysql_with_fixture(
            "mysql_migrate_on_a_legacy_skyline_database",
            include_str!("testdata/skyline_legacy_mysql.sql"),
        ) else {
            return;
        };
        let pool = &db.pool;
        assert_eq!(migrate(pool).unwrap(), all_migrations(pool));
        assert!(migrate(pool).unwrap().is_empty());
        // Existing ids kept; the missing seed apps appended after them.
        assert_eq!(id_of(pool, Lookup::App, "crucible"), 4);
        assert_eq!(id_of(pool, Lookup::App, "ionosphere"), 5);
        assert_eq!(scalar(pool, "(SELECT COUNT(*) FROM apps)"), 9);
        assert_eq!(index_count(pool, "anomalies", "anomaly_timestamp"), 1);
        assert_eq!(
            index_count(pool, "anomalies", "metric_id_anomaly_timestamp"),
            1
        );
        assert_eq!(
            index_count(pool, "anomalies", "anomaly_timestamp_metric_id"),
            1
        );
        assert_eq!(
            scalar(
                pool,
                "(SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = 'anomalies' AND COLUMN_NAME IN ('anomaly_end_timestamp', 'user_id'))"
            ),
            2
        );
        let old = queries::latest(pool, 10).unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].metric, "stats.old.metric");
        assert_eq!(old[0].anomaly_end_timestamp, None);
        assert_eq!(old[0].triggered_algorithms, vec!["grubbs"]);
        let mut c = IdCache::new();
        let a = anomaly(
            "stats.old.metric",
            1_700_000_000,
            "analyzer",
            &["histogram_bins"],
        );
        queries::insert_anomaly(pool, &mut c, &a, 1).unwrap();
        let rows = queries::latest(pool, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].algorithms_run.len(), 9);
        assert_eq!(rows[0].triggered_algorithms, vec!["histogram_bins"]);
    }

    #[test]
    fn connect_errors_carry_the_real_cause_without_the_password() {
        let port = free_port();
        let e = connect(&format!("postgres://u:hunter2@127.0.0.1:{port}/x"), 1).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DbError::Connect { .. }), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
        assert!(!msg.contains("hunter2") && msg.contains("u:***@"), "{msg}");

        let e = connect(&format!("mariadb://u:hunter2@127.0.0.1:{port}/x"), 1).unwrap_err();
        let msg = e.to_string();
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");

        let e = connect("sqlite:///proc/definitely/not/here.sqlite", 1).unwrap_err();
        assert!(
            matches!(e, DbError::Io { .. } | DbError::Connect { .. }),
            "{e}"
        );
        assert!(matches!(connect("ftp://x", 1), Err(DbError::Url(_))));
    }

    #[test]
    fn lazy_pool_fails_fast_while_the_server_is_down() {
        let port = free_port();
        let opts = PoolOptions {
            connection_timeout: Duration::from_millis(500),
            ..test_options()
        };
        let pool =
            connect_lazy(&format!("postgres://u:hunter2@127.0.0.1:{port}/x"), &opts).unwrap();
        let started = std::time::Instant::now();
        let e = queries::latest(&pool, 1).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let msg = e.to_string();
        assert!(matches!(e, DbError::Unavailable { .. }), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(ping(&pool).is_err());
    }

    #[test]
    fn mysql_wrong_password_says_access_denied() {
        let Some(admin) = testutil::env_url(testutil::MYSQL_ENV, "mysql_wrong_password") else {
            return;
        };
        let rest = admin.split_once("://").map_or("", |(_, r)| r);
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let url = format!("mysql://skyline_nobody:hunter2@{host}");
        let msg = connect(&url, 1).unwrap_err().to_string();
        assert!(msg.contains("Access denied for user"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
