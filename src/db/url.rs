//! Parsing and redacting `[panorama] database_url`.
//!
//! Accepted forms (the scheme picks the backend; nothing is guessed from the rest of the URL):
//!
//! | URL | backend | target |
//! |---|---|---|
//! | `sqlite://data/panorama.sqlite` | SQLite | relative path, resolved against the working directory |
//! | `sqlite:///var/lib/skyline/panorama.sqlite` | SQLite | absolute path |
//! | `sqlite://:memory:`, `sqlite::memory:`, `:memory:` | SQLite | private in-memory database (tests) |
//! | `mysql://user:pass@host:3306/skyline`, `mariadb://…` | MySQL / MariaDB | passed to mysql_async as `mysql://…` |
//! | `postgres://…`, `postgresql://…` | PostgreSQL | passed to tokio-postgres (plus `connect_timeout`) |
//!
//! Picking the backend ourselves (instead of diesel's `MultiConnection`, which tries every
//! backend in turn) is what lets a failed connection report its real cause.

use std::fmt;
use std::path::PathBuf;

use super::DbError;

/// Which database server (or library) a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite through the bundled library.
    Sqlite,
    /// MySQL or MariaDB through mysql_async (pure Rust).
    Mysql,
    /// PostgreSQL through tokio-postgres (pure Rust).
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
            Backend::Postgres => "postgres",
        })
    }
}

/// Where an SQLite database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// A private in-memory database; it lives as long as its (single) pooled connection.
    Memory,
    /// A database file (created, with its parent directory, when absent).
    File(PathBuf),
}

/// A parsed `database_url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// `sqlite://…` or `:memory:`.
    Sqlite(SqliteTarget),
    /// `mysql://…` or `mariadb://…`, normalised to the `mysql://` scheme diesel requires.
    Mysql(String),
    /// `postgres://…` or `postgresql://…`, unchanged.
    Postgres(String),
}

// Debug must not leak passwords into logs or panic messages.
impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

impl DbUrl {
    /// Parses a `database_url`; see the module documentation for the accepted forms.
    pub fn parse(url: &str) -> Result<DbUrl, DbError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(DbError::Url("empty database_url".into()));
        }
        if url == ":memory:" || url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(DbUrl::Sqlite(SqliteTarget::Memory));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(DbError::Url(format!(
                "{}: expected sqlite://PATH, mysql://…, mariadb://…, postgres://… or :memory:",
                redact(url)
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                if rest.is_empty() {
                    return Err(DbError::Url("sqlite:// needs a file path".into()));
                }
                // `sqlite:///abs` leaves `/abs` in `rest`; `sqlite://rel/x` leaves `rel/x`.
                Ok(DbUrl::Sqlite(SqliteTarget::File(PathBuf::from(rest))))
            }
            "mysql" | "mariadb" => {
                if rest.is_empty() {
                    return Err(DbError::Url(format!("{scheme}:// needs a host")));
                }
                Ok(DbUrl::Mysql(format!("mysql://{rest}")))
            }
            "postgres" | "postgresql" => {
                if rest.is_empty() {
                    return Err(DbError::Url(format!("{scheme}:// needs a host")));
                }
                Ok(DbUrl::Postgres(url.to_string()))
            }
            other => Err(DbError::Url(format!(
                "unsupported scheme {other}:// in {} (use sqlite, mysql, mariadb, postgres or \
                 postgresql)",
                redact(url)
            ))),
        }
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        match self {
            DbUrl::Sqlite(_) => Backend::Sqlite,
            DbUrl::Mysql(_) => Backend::Mysql,
            DbUrl::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL with any password replaced by `***`, safe for logs and error messages.
    pub fn redacted(&self) -> String {
        match self {
            DbUrl::Sqlite(SqliteTarget::Memory) => "sqlite://:memory:".to_string(),
            DbUrl::Sqlite(SqliteTarget::File(p)) => format!("sqlite://{}", p.display()),
            DbUrl::Mysql(u) | DbUrl::Postgres(u) => redact(u),
        }
    }
}

/// Replaces the password of `scheme://user:password@host/…` and any `password=` query
/// parameter with `***`. Anything that does not look like a URL is returned unchanged.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let auth_start = scheme_end + 3;
    // The authority ends at the first '/', '?' or '#' after the scheme.
    let auth_end = url[auth_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| auth_start + i);
    let authority = &url[auth_start..auth_end];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..auth_start]);
    // Passwords may contain '@', so the user info ends at the *last* '@'.
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &url[auth_end..];
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let redacted: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&redacted.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_relative_absolute_and_memory() {
        assert_eq!(
            DbUrl::parse("sqlite://data/panorama.sqlite").unwrap(),
            DbUrl::Sqlite(SqliteTarget::File(PathBuf::from("data/panorama.sqlite")))
        );
        assert_eq!(
            DbUrl::parse("sqlite:///abs/path.sqlite").unwrap(),
            DbUrl::Sqlite(SqliteTarget::File(PathBuf::from("/abs/path.sqlite")))
        );
        for m in [":memory:", "sqlite::memory:", "sqlite://:memory:"] {
            assert_eq!(
                DbUrl::parse(m).unwrap(),
                DbUrl::Sqlite(SqliteTarget::Memory)
            );
        }
        assert!(DbUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn server_schemes() {
        assert_eq!(
            DbUrl::parse("mariadb://u:p@h:3306/skyline").unwrap(),
            DbUrl::Mysql("mysql://u:p@h:3306/skyline".into())
        );
        assert_eq!(
            DbUrl::parse("mysql://u@h/skyline").unwrap().backend(),
            Backend::Mysql
        );
        assert_eq!(
            DbUrl::parse("postgresql://u@h/skyline").unwrap(),
            DbUrl::Postgres("postgresql://u@h/skyline".into())
        );
        assert_eq!(
            DbUrl::parse("postgres://u@h/skyline").unwrap().backend(),
            Backend::Postgres
        );
    }

    #[test]
    fn rejects_unknown_and_bare_paths_without_leaking_password() {
        let e = DbUrl::parse("redis://u:secret@h/0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("redis"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        assert!(DbUrl::parse("data/panorama.sqlite").is_err());
        assert!(DbUrl::parse("").is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("mysql://root:pw@127.0.0.1:3306/db"),
            "mysql://root:***@127.0.0.1:3306/db"
        );
        assert_eq!(
            redact("postgres://u:p@ss@h/db?sslmode=disable"),
            "postgres://u:***@h/db?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://u@h/db?password=x&a=b"),
            "postgres://u@h/db?password=***&a=b"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("mysql://user@h"), "mysql://user@h");
        let u = DbUrl::parse("mariadb://a:topsecret@h/x").unwrap();
        assert!(!format!("{u:?}").contains("topsecret"));
        assert_eq!(u.redacted(), "mysql://a:***@h/x");
    }
}
