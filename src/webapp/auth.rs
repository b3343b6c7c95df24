//! HTTP basic auth for every webapp route except `/health` and `/monitor/export` (flux
//! authenticates by API key and is mounted outside this middleware).
//!
//! One user, `[webapp] auth_user`, with `[webapp] auth_password`, and optionally a read-only
//! guest (`[webapp] guest_user` / `guest_password`): the guest sees every page but every
//! request that could change state (any method but GET, HEAD and OPTIONS, so routes added
//! later are covered without a list) answers 403. The user name goes into the request's
//! extensions as a [`crate::monitor::Identity`] for the endpoint monitor. When no password is
//! configured, one is generated at first start (24 random bytes from the OS, base64url),
//! written to `<[data] dir>/webapp.password` with mode 0600 and logged once at INFO; later
//! starts reuse the file and never log it again. The comparison is constant-time in the
//! content of both the user and the password.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use base64::Engine;
use log::{info, warn};

use super::config::{WebappSettings, PASSWORD_FILE};
use super::error::WebError;
use crate::telemetry::metrics as m;

/// The `WWW-Authenticate` challenge of a 401.
pub const CHALLENGE: &str = "Basic realm=\"Skyline\", charset=\"UTF-8\"";

/// Who authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `[webapp] auth_user`: everything.
    Admin,
    /// `[webapp] guest_user`: read-only.
    Guest,
}

/// The users allowed in: the admin and the optional read-only guest.
#[derive(Clone)]
pub struct Credentials {
    user: Vec<u8>,
    password: Vec<u8>,
    guest: Option<(Vec<u8>, Vec<u8>)>,
    /// The names handed out by [`Credentials::role`] (shared: no copy per request).
    user_name: Arc<str>,
    guest_name: Arc<str>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &"***")
            .field(
                "guest",
                &self
                    .guest
                    .as_ref()
                    .map(|(u, _)| String::from_utf8_lossy(u).into_owned()),
            )
            .finish()
    }
}

impl Credentials {
    /// `user` with `password`.
    pub fn new(user: &str, password: &str) -> Self {
        Credentials {
            user: user.as_bytes().to_vec(),
            password: password.as_bytes().to_vec(),
            guest: None,
            user_name: user.into(),
            guest_name: "".into(),
        }
    }

    /// Adds the read-only guest (ignored when `user` is empty).
    pub fn with_guest(mut self, user: &str, password: &str) -> Self {
        if !user.is_empty() {
            self.guest = Some((user.as_bytes().to_vec(), password.as_bytes().to_vec()));
            self.guest_name = user.into();
        }
        self
    }

    /// True when the `Authorization` header value carries exactly the admin's credentials.
    pub fn check(&self, authorization: Option<&[u8]>) -> bool {
        self.role(authorization).map(|(r, _)| r) == Some(Role::Admin)
    }

    /// The role and user name the `Authorization` header value authenticates, if any. Both
    /// users are compared, always, in constant time.
    pub fn role(&self, authorization: Option<&[u8]>) -> Option<(Role, Arc<str>)> {
        let (user, password) = Self::decode(authorization?)?;
        let admin = ct_eq(&user, &self.user) & ct_eq(&password, &self.password);
        let guest = match &self.guest {
            Some((u, p)) => ct_eq(&user, u) & ct_eq(&password, p),
            None => {
                // Same work either way.
                let _ = ct_eq(&user, &self.user) & ct_eq(&password, &self.password);
                false
            }
        };
        if admin {
            Some((Role::Admin, self.user_name.clone()))
        } else if guest {
            Some((Role::Guest, self.guest_name.clone()))
        } else {
            None
        }
    }

    fn decode(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let encoded = value
            .strip_prefix(b"Basic ")
            .or_else(|| value.strip_prefix(b"basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim_ascii())
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        // Both parts compared by the caller, always (no early exit revealing which one was
        // wrong).
        Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= (x ^ y) as u64;
    }
    // Keep the optimiser from turning the loop into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// Where the password in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// `[webapp] auth_password`.
    Config,
    /// Read from the password file written at an earlier start.
    File(PathBuf),
    /// Generated now and written to the file.
    Generated(PathBuf),
}

/// The password to use: the configured one, else the one in `<data_dir>/webapp.password`,
/// else a new one written there with mode 0600. Logs (once, at INFO) a generated password;
/// never logs a configured or reused one.
pub fn resolve_password(
    settings: &WebappSettings,
    data_dir: &Path,
) -> std::io::Result<(String, PasswordSource)> {
    if !settings.auth_password.is_empty() {
        return Ok((settings.auth_password.clone(), PasswordSource::Config));
    }
    let path = data_dir.join(PASSWORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            restrict_mode(&path)?;
            info!(
                "webapp: user {:?} authenticates with the password stored in {}",
                settings.auth_user,
                path.display()
            );
            return Ok((text.trim().to_string(), PasswordSource::File(path)));
        }
        Ok(_) => warn!(
            "webapp: {} is empty; generating a new password",
            path.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(std::io::Error::new(
                err.kind(),
                format!("cannot read {}: {err}", path.display()),
            ))
        }
    }
    let password = generate_password()?;
    write_private(&path, &password)?;
    // Never the password itself: the log file may be readable by others.
    info!(
        "webapp: generated a password for user {:?}, stored in {} (mode 0600): read it there (`cat {}`)",
        settings.auth_user,
        path.display(),
        path.display()
    );
    Ok((password, PasswordSource::Generated(path)))
}

fn generate_password() -> std::io::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes)
        .map_err(|err| std::io::Error::other(format!("no OS randomness: {err}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// 32 random bytes, hex: a per-process secret (rebrow's CSRF token).
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|err| std::io::Error::other(format!("no OS randomness: {err}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Created 0600 from the start (never world-readable, not even briefly).
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| std::io::Error::new(err.kind(), format!("{}: {err}", path.display())))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{text}\n"))
}

#[cfg(unix)]
fn restrict_mode(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warn!(
            "webapp: {} was readable by others (mode {mode:o}); set to 0600",
            path.display()
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_mode(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// True for the methods a read-only user may use: they must not change state (every route
/// that changes state is a POST, so a cross-site form cannot forge it either).
pub fn is_read_only(method: &actix_web::http::Method) -> bool {
    use actix_web::http::Method;
    *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS
}

/// Middleware: 401 with a `WWW-Authenticate` challenge unless the request carries the
/// credentials (fails closed when they are not registered); 403 for the guest on anything
/// but a read-only method. Records the user as the request's [`crate::monitor::Identity`].
pub async fn require_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    use actix_web::HttpMessage;
    let role = req.app_data::<web::Data<Credentials>>().and_then(|c| {
        c.role(
            req.headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )
    });
    match role {
        Some((role, user)) => {
            let allowed = role == Role::Admin || is_read_only(req.method());
            req.extensions_mut().insert(crate::monitor::Identity(user));
            if allowed {
                return Ok(next.call(req).await?.map_into_left_body());
            }
            let res = WebError::Forbidden("the guest user is read-only".into()).error_response();
            Ok(req.into_response(res).map_into_right_body())
        }
        None => {
            m::HTTP_AUTH_FAILURES.inc();
            let res = WebError::Unauthorized.error_response();
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }

    #[test]
    fn checks_credentials() {
        let c = Credentials::new("admin", "s3cret-pass");
        assert!(c.check(Some(&basic("admin:s3cret-pass"))));
        assert!(!c.check(Some(&basic("admin:s3cret-pas"))));
        assert!(!c.check(Some(&basic("admin:s3cret-passX"))));
        assert!(!c.check(Some(&basic("Admin:s3cret-pass"))));
        assert!(!c.check(Some(&basic("admins3cret-pass"))));
        assert!(!c.check(Some(b"Bearer x")));
        assert!(!c.check(Some(b"Basic !!!")));
        assert!(!c.check(None));
        // A password containing ':' is fine (only the first ':' splits).
        let c = Credentials::new("u", "a:b:c-long");
        assert!(c.check(Some(&basic("u:a:b:c-long"))));
        assert!(!format!("{c:?}").contains("a:b:c-long"));
    }

    #[test]
    fn guest_role() {
        let c = Credentials::new("admin", "s3cret-pass").with_guest("viewer", "guest-pass-1");
        assert_eq!(
            c.role(Some(&basic("viewer:guest-pass-1"))),
            Some((Role::Guest, "viewer".into()))
        );
        assert_eq!(
            c.role(Some(&basic("admin:s3cret-pass"))),
            Some((Role::Admin, "admin".into()))
        );
        assert!(!c.check(Some(&basic("viewer:guest-pass-1"))));
        assert_eq!(c.role(Some(&basic("viewer:s3cret-pass"))), None);
        assert_eq!(c.role(Some(&basic("admin:guest-pass-1"))), None);
        // No guest configured: the guest's name gets nothing.
        let c = Credentials::new("admin", "s3cret-pass").with_guest("", "");
        assert_eq!(c.role(Some(&basic(":"))), None);
        assert!(!format!("{c:?}").contains("guest-pass"));
        use actix_web::http::Method;
        assert!(is_read_only(&Method::GET) && is_read_only(&Method::HEAD));
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(!is_read_only(&m));
        }
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"\xff"));
    }

    #[test]
    fn generated_password_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("skyline-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = WebappSettings::default();
        let (p1, src) = resolve_password(&s, &dir).unwrap();
        assert!(matches!(src, PasswordSource::Generated(_)));
        assert_eq!(p1.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(PASSWORD_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (p2, src) = resolve_password(&s, &dir).unwrap();
        assert_eq!(p1, p2);
        assert!(matches!(src, PasswordSource::File(_)));
        let configured = WebappSettings {
            auth_password: "configured-pw".into(),
            ..Default::default()
        };
        assert_eq!(
            resolve_password(&configured, &dir).unwrap(),
            ("configured-pw".to_string(), PasswordSource::Config)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
