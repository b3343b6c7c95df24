//! Pure-Rust MySQL/MariaDB and PostgreSQL connections for the r2d2 pools: diesel-async's
//! [`AsyncConnectionWrapper`] over `AsyncMysqlConnection` (mysql_async) and
//! `AsyncPgConnection` (tokio-postgres), so the binary needs neither libmysqlclient nor libpq.
//! SQLite stays diesel's own sync connection (bundled library).
//!
//! * [`OwnRuntime`]: each wrapped connection drives its driver on a private current-thread
//!   tokio runtime (never the caller's: a connection outlives the thread or actix worker that
//!   opened it). Such a runtime cannot be entered from a thread that is running async code, so
//!   every public `db` function that touches a MySQL/PostgreSQL connection goes through
//!   [`off_runtime`], which moves the work to a scoped helper thread when called from inside a
//!   tokio runtime (actix handlers, `#[actix_rt::test]`s). Dropping a connection anywhere is
//!   safe (the runtime shuts down in the background).
//! * [`AsyncManager`]: the r2d2 `ManageConnection`, whose connect is bounded by the pool's
//!   connection timeout (a server that accepts TCP but never answers — stopped, overloaded —
//!   fails the attempt instead of occupying r2d2's connector thread indefinitely).
//! * TLS: none (the drivers are built without it). A server that requires TLS refuses the
//!   connection with its own message; `sslmode=prefer` (the PostgreSQL default) connects in
//!   clear text.
//!
//! Backpressure: none here; callers bound their waits (see `db::Bounded`).

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use diesel::ConnectionError;
use diesel_async::async_connection_wrapper::{AsyncConnectionWrapper, BlockOn};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, AsyncPgConnection};

/// A MySQL/MariaDB connection with diesel's sync API.
pub type MysqlConn = AsyncConnectionWrapper<AsyncMysqlConnection, OwnRuntime>;
/// A PostgreSQL connection with diesel's sync API.
pub type PgConn = AsyncConnectionWrapper<AsyncPgConnection, OwnRuntime>;

thread_local! {
    /// The runtime a connection was established on, handed to the wrapper being built on
    /// this thread (the wrapper asks for its runtime through a constructor without
    /// arguments; the driver's background task lives on the establishing runtime, so the
    /// wrapper must use that one).
    static HANDOFF: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// The private runtime of one connection. See the module documentation.
pub struct OwnRuntime(Option<tokio::runtime::Runtime>);

fn new_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

impl BlockOn for OwnRuntime {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        match &self.0 {
            Some(rt) => rt.block_on(f),
            // Only `Drop` takes the runtime.
            None => unreachable!("a connection's runtime is present until it is dropped"),
        }
    }

    fn get_runtime() -> Self {
        match HANDOFF.with(|h| h.borrow_mut().take()) {
            Some(rt) => OwnRuntime(Some(rt)),
            // Not reached through this crate ([`establish`] always hands one over); diesel's
            // `Connection::establish` on the wrapper lands here.
            None => OwnRuntime(Some(new_runtime().unwrap_or_else(|e| {
                panic!("cannot start a runtime for a database connection: {e}")
            }))),
        }
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        // A plain drop blocks, which tokio forbids inside async code (a pool dropped by an
        // actix worker at shutdown).
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Opens one MySQL/MariaDB connection, giving up after `timeout`.
pub(crate) fn establish_mysql(url: &str, timeout: Duration) -> Result<MysqlConn, ConnectionError> {
    establish_with(timeout, || AsyncMysqlConnection::establish(url))
}

/// Opens one PostgreSQL connection, giving up after `timeout`. Connects through
/// tokio-postgres directly (rather than `AsyncPgConnection::establish`) so a failure keeps
/// its cause ("Connection refused", "password authentication failed …").
pub(crate) fn establish_pg(url: &str, timeout: Duration) -> Result<PgConn, ConnectionError> {
    establish_with(timeout, || async move {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| ConnectionError::BadConnection(with_causes(&e)))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection).await
    })
}

/// `e` followed by its chain of causes, each once.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

fn establish_with<C, F, Fut>(
    timeout: Duration,
    connect: F,
) -> Result<AsyncConnectionWrapper<C, OwnRuntime>, ConnectionError>
where
    C: AsyncConnection + Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<C, ConnectionError>>,
{
    off_runtime(|| {
        let rt = new_runtime().map_err(|e| {
            ConnectionError::BadConnection(format!("cannot start the driver's runtime: {e}"))
        })?;
        let conn = rt
            .block_on(async { tokio::time::timeout(timeout, connect()).await })
            .map_err(|_| {
                ConnectionError::BadConnection(format!(
                    "no connection within {:.1} s (the server accepts nothing or does not answer)",
                    timeout.as_secs_f64()
                ))
            })??;
        HANDOFF.with(|h| *h.borrow_mut() = Some(rt));
        let wrapped = AsyncConnectionWrapper::from(conn);
        HANDOFF.with(|h| h.borrow_mut().take());
        Ok(wrapped)
    })
}

/// Runs `f` here, or on a scoped helper thread when this thread is inside a tokio runtime
/// (where a connection's own runtime cannot be entered). Use it around direct use of a
/// [`MysqlConn`] / [`PgConn`] (e.g. `PoolKind::Postgres(p) => off_runtime(|| p.get() …)`).
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The r2d2 manager for [`MysqlConn`] (`AsyncManager<AsyncMysqlConnection>`) and [`PgConn`]
/// (`AsyncManager<AsyncPgConnection>`).
pub struct AsyncManager<C> {
    url: String,
    connect_timeout: Duration,
    _conn: PhantomData<fn() -> C>,
}

impl<C> AsyncManager<C> {
    /// A manager connecting to `url`, each attempt bounded by `connect_timeout`.
    pub fn new(url: String, connect_timeout: Duration) -> Self {
        AsyncManager {
            url,
            connect_timeout,
            _conn: PhantomData,
        }
    }
}

impl<C> std::fmt::Debug for AsyncManager<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the password.
        f.write_str("AsyncManager")
    }
}

/// How [`AsyncManager`] opens a connection of each driver.
pub trait Establish: AsyncConnection + Send + Sized + 'static {
    /// Opens one connection, giving up after `timeout`.
    fn open(
        url: &str,
        timeout: Duration,
    ) -> Result<AsyncConnectionWrapper<Self, OwnRuntime>, ConnectionError>;
}

impl Establish for AsyncMysqlConnection {
    fn open(url: &str, timeout: Duration) -> Result<MysqlConn, ConnectionError> {
        establish_mysql(url, timeout)
    }
}

impl Establish for AsyncPgConnection {
    fn open(url: &str, timeout: Duration) -> Result<PgConn, ConnectionError> {
        establish_pg(url, timeout)
    }
}

impl<C> r2d2::ManageConnection for AsyncManager<C>
where
    C: Establish,
    AsyncConnectionWrapper<C, OwnRuntime>: R2D2Connection + Send + 'static,
{
    type Connection = AsyncConnectionWrapper<C, OwnRuntime>;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Self::Connection, Self::Error> {
        C::open(&self.url, self.connect_timeout).map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}
