//! Scratch databases on the machine's MariaDB / PostgreSQL servers for daemon-level tests.
//!
//! `SKYLINE_TEST_MYSQL_URL` / `SKYLINE_TEST_POSTGRES_URL` name an admin URL (…/test). Unset:
//! the test says so and is not run on that backend, except under `CI`, where it fails. Set
//! but unreachable: it fails (the server is part of the test).

use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh database on a server, dropped (connections and all) when this drops.
pub struct ServerDb {
    admin_url: String,
    name: String,
    /// The scratch database's URL.
    pub url: String,
}

impl ServerDb {
    /// A database named after `tag` on the server `var` names, or `None` (outside CI only)
    /// when `var` is unset.
    pub fn create(var: &str, tag: &str) -> Option<ServerDb> {
        static N: AtomicU32 = AtomicU32::new(0);
        let Ok(base) = std::env::var(var) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{var} must be set in CI: the machine's server is part of the test"
            );
            eprintln!("{var} not set: this backend is not exercised here");
            return None;
        };
        let name = format!(
            "skyline_{tag}_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            super::now() % 100_000
        );
        let (head, _) = base.rsplit_once('/').expect("URL ends with /database");
        let url = format!("{head}/{name}");
        skyline::db::execute_batch(&base, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|err| panic!("{var}: CREATE DATABASE {name}: {err}"));
        Some(ServerDb {
            admin_url: base,
            name,
            url,
        })
    }
}

impl Drop for ServerDb {
    fn drop(&mut self) {
        // PostgreSQL refuses to drop a database with open connections unless forced.
        let force = if self.admin_url.starts_with("postgres") {
            " WITH (FORCE)"
        } else {
            ""
        };
        let _ = skyline::db::execute_batch(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {}{force}", self.name),
        );
    }
}
