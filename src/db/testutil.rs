//! Test support shared by the `db` and `panorama` tests: throw-away databases on each backend
//! and a private PostgreSQL server that can be stopped and started.
//!
//! Server-backed tests read `SKYLINE_TEST_MYSQL_URL` / `SKYLINE_TEST_POSTGRES_URL` (an admin
//! URL; each test creates and drops its own `skyline_test_*` database). When a variable is
//! unset the test prints a SKIP line and returns, unless `CI` is set, in which case it fails.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{connect_with, execute_batch, Backend, Pool, PoolOptions};
use crate::model::Anomaly;

/// Environment variable naming the MySQL/MariaDB admin URL for tests.
pub(crate) const MYSQL_ENV: &str = "SKYLINE_TEST_MYSQL_URL";
/// Environment variable naming the PostgreSQL admin URL for tests.
pub(crate) const POSTGRES_ENV: &str = "SKYLINE_TEST_POSTGRES_URL";

/// Returns the variable's value, or `None` after printing a SKIP line; panics under `CI`.
pub(crate) fn env_url(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: {var} is not set but CI is: this test must run in CI");
            }
            skip(&format!(
                "SKIP {test}: set {var} to run it against a real server"
            ));
            None
        }
    }
}

/// Prints a SKIP line past the test harness's output capture (which only intercepts the
/// `print!` family), so a skipped server test is visible in a plain `cargo test` run.
fn skip(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `url` with its database (path) replaced by `db`, keeping any query string.
pub(crate) fn with_database(url: &str, db: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..host_end])
}

fn unique_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "skyline_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Short timeouts so failure paths run quickly in tests.
pub(crate) fn test_options() -> PoolOptions {
    PoolOptions {
        max_size: 4,
        connection_timeout: Duration::from_secs(3),
        statement_timeout: Some(Duration::from_secs(30)),
        busy_timeout: Duration::from_millis(500),
        op_timeout: Duration::from_secs(10),
    }
}

/// A fresh database on a server, dropped (with its connections) when this guard drops.
pub(crate) struct TestDb {
    pub pool: Pool,
    #[allow(dead_code)]
    pub url: String,
    // Declared last so the pool's connections close before the database is dropped.
    _drop: DropDatabase,
}

impl TestDb {
    /// A fresh MySQL/MariaDB database, or `None` (SKIP) when the variable is unset.
    pub fn mysql(test: &str) -> Option<TestDb> {
        let admin = env_url(MYSQL_ENV, test)?;
        Some(Self::create(admin, Backend::Mysql, |_| {}))
    }

    /// A fresh PostgreSQL database, or `None` (SKIP) when the variable is unset.
    pub fn postgres(test: &str) -> Option<TestDb> {
        let admin = env_url(POSTGRES_ENV, test)?;
        Some(Self::create(admin, Backend::Postgres, |_| {}))
    }

    /// A fresh MySQL database into which `fixture` SQL is loaded before the pool is built.
    pub fn mysql_with_fixture(test: &str, fixture: &str) -> Option<TestDb> {
        let admin = env_url(MYSQL_ENV, test)?;
        let fixture = fixture.to_string();
        Some(Self::create(admin, Backend::Mysql, move |url| {
            execute_batch(url, &fixture).expect("load fixture");
        }))
    }

    fn create(admin: String, backend: Backend, prepare: impl FnOnce(&str)) -> TestDb {
        let name = unique_name();
        let url = with_database(&admin, &name);
        match backend {
            Backend::Mysql => execute_batch(&admin, &format!("CREATE DATABASE `{name}`"))
                .expect("create a test database on SKYLINE_TEST_MYSQL_URL"),
            Backend::Postgres => execute_batch(&admin, &format!("CREATE DATABASE \"{name}\""))
                .expect("create a test database on SKYLINE_TEST_POSTGRES_URL"),
            Backend::Sqlite => unreachable!("sqlite test databases are files"),
        }
        // From here on a panic (e.g. a fixture that fails to load) still drops the database.
        let drop = DropDatabase {
            admin_url: admin,
            name,
            backend,
        };
        prepare(&mysql_scheme(&url));
        let pool = connect_with(&url, &test_options()).expect("connect to the test database");
        TestDb {
            pool,
            url,
            _drop: drop,
        }
    }
}

fn mysql_scheme(url: &str) -> String {
    url.replacen("mariadb://", "mysql://", 1)
}

/// Drops a test database.
struct DropDatabase {
    admin_url: String,
    name: String,
    backend: Backend,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let result = match self.backend {
            Backend::Mysql => execute_batch(
                &self.admin_url,
                &format!("DROP DATABASE IF EXISTS `{}`", self.name),
            ),
            Backend::Postgres => execute_batch(
                &self.admin_url,
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ),
            Backend::Sqlite => Ok(()),
        };
        if let Err(e) = result {
            skip(&format!(
                "warning: could not drop test database {}: {e}",
                self.name
            ));
        }
    }
}

/// A fresh SQLite database file in a temporary directory (kept alive by the returned guard).
pub(crate) fn sqlite_db() -> (tempfile::TempDir, Pool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/sub/panorama.sqlite", dir.path().display());
    let pool = connect_with(&url, &test_options()).expect("open sqlite");
    (dir, pool)
}

/// An anomaly with Skyline's nine algorithms run and the given ones triggered.
pub(crate) fn anomaly(metric: &str, ts: i64, app: &str, triggered: &[&str]) -> Anomaly {
    Anomaly {
        metric: metric.to_string(),
        timestamp: ts,
        datapoint: 1.5,
        from_timestamp: ts - 86_400 + 60,
        full_duration: 86_400 - 60,
        algorithms_run: crate::analyze::config::ALGORITHM_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        triggered_algorithms: triggered.iter().map(|s| s.to_string()).collect(),
        app: app.to_string(),
        source: "graphite".to_string(),
        host: "skyline-test-1".to_string(),
        added_at: ts + 5,
    }
}

/// Current epoch seconds.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A private PostgreSQL server in a temporary directory, on a free port, that tests can stop
/// and start to simulate an outage. Runs as the `postgres` user when the tests run as root
/// (PostgreSQL refuses to run as root).
pub(crate) struct PrivatePg {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    run_as: Option<String>,
    pub port: u16,
}

impl PrivatePg {
    /// Initialises a cluster, or returns `None` (SKIP; a failure under `CI`) when the
    /// PostgreSQL server binaries are missing.
    pub fn init(test: &str) -> Option<PrivatePg> {
        let bindir = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string()))
            .filter(|p| p.join("initdb").exists())
            .or_else(|| {
                std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                    .find(|p| p.join("initdb").exists())
            });
        let Some(bindir) = bindir else {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: PostgreSQL server binaries (initdb, pg_ctl) not found");
            }
            skip(&format!(
                "SKIP {test}: PostgreSQL server binaries (initdb, pg_ctl) not found"
            ));
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let run_as = is_root.then(|| "postgres".to_string());
        if is_root {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the private cluster dir failed");
        }
        let port = free_port();
        let pg = PrivatePg {
            dir,
            bindir,
            run_as,
            port,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        Some(pg)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bindir.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("pg.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server (fast shutdown: open connections are cut).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Freezes the server (SIGSTOP to the postmaster and every backend): connections stay
    /// open and the kernel keeps accepting, but nothing answers — a hung database.
    pub fn pause(&self) {
        self.signal("-STOP")
            .expect("SIGSTOP the private PostgreSQL");
    }

    /// Thaws a [`PrivatePg::pause`]d server.
    pub fn resume(&self) {
        self.signal("-CONT")
            .expect("SIGCONT the private PostgreSQL");
    }

    fn signal(&self, sig: &str) -> Result<(), String> {
        let pidfile = self.dir.path().join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&pidfile).map_err(|e| e.to_string())?;
        let master: u32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("no pid in postmaster.pid")?;
        let mut pids = vec![master.to_string()];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …; comm may contain spaces, so split after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(master) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let status = Command::new("kill")
            .arg(sig)
            .args(&pids)
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {sig} {pids:?} failed"))
        }
    }

    /// The URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        // A paused server cannot shut down (and may already be gone: then this fails).
        let _ = self.signal("-CONT");
        // Best effort: the server may already be down.
        let exe = self.bindir.join("pg_ctl");
        let data = self.data_dir();
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A TCP port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}
