//! The managed Redis (`[redis] managed = true`): a private `redis-server` on a unix socket
//! under `[data] dir/redis/`, with append-only persistence there, so the quick start needs no
//! Redis set-up and keeps its data across restarts.
//!
//! Supervision: a task waits on the child; if it exits while the daemon runs, it is logged at
//! ERROR and restarted with back-off (the metric actors keep buffering meanwhile). On
//! [`ManagedRedis::stop`] it gets SIGTERM (Redis writes its append-only file and exits), then
//! SIGKILL after 5 s. The child is also killed if this handle is dropped without `stop`, and
//! gets SIGTERM from the kernel if the daemon dies any other way (`PR_SET_PDEATHSIG`, even on
//! SIGKILL), so a crash never leaves an orphan holding the socket and append-only file. At
//! start, a live server already answering on the socket is refused with a clear message
//! (never a second server on the same files).
//! Never used when `managed = false`: then `[redis] url` is the only Redis, with no fallback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use log::{error, info, warn};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::StoreError;

/// Longest unix socket path Linux accepts (sun_path is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A running, supervised redis-server.
pub struct ManagedRedis {
    url: String,
    stop_tx: watch::Sender<bool>,
    done_rx: watch::Receiver<bool>,
}

/// Makes the child receive SIGTERM when this process dies, however it dies (SIGKILL, a
/// crash): `prctl(PR_SET_PDEATHSIG)` between fork and exec. If we died before that call, the
/// child exits at once instead of starting an orphan.
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    #[allow(unsafe_code)] // reason: pre_exec and prctl have no safe wrapper; see SAFETY.
    // SAFETY: the closure runs in the forked child before exec. It only calls prctl(2),
    // getppid(2) and _exit(2), which are async-signal-safe; it allocates nothing and takes no
    // lock, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(0);
            }
            Ok(())
        });
    }
}

fn spawn(binary: &str, dir: &Path, socket: &Path) -> Result<Child, StoreError> {
    let mut cmd = Command::new(binary);
    die_with_parent(&mut cmd);
    cmd.arg("--port")
        .arg("0")
        .arg("--unixsocket")
        .arg(socket)
        .arg("--unixsocketperm")
        .arg("700")
        .arg("--dir")
        .arg(dir)
        .arg("--appendonly")
        .arg("yes")
        .arg("--appendfsync")
        .arg("everysec")
        .arg("--save")
        .arg("3600 1 300 100 60 10000")
        .arg("--daemonize")
        .arg("no")
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| {
            StoreError::Managed(format!(
                "cannot start {binary}: {err} (install redis-server, or set [redis] managed = false and url)"
            ))
        })
}

/// Refuses to start a second server on a socket a live one answers on (another daemon using
/// this data dir, or a server left running by an older version): two servers on one
/// append-only file would corrupt it.
async fn refuse_if_live(socket: &Path) -> Result<(), StoreError> {
    let probe = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::UnixStream::connect(socket),
    )
    .await;
    if let Ok(Ok(_)) = probe {
        return Err(StoreError::Managed(format!(
            "a redis-server is already running on {}: another skyline daemon is using this [data] dir, or a server was left running; stop it (redis-cli -s {} shutdown) and start again (a second server on the same socket and append-only file is never started)",
            socket.display(),
            socket.display()
        )));
    }
    Ok(())
}

async fn wait_for_socket(socket: &Path, child: &mut Child) -> Result<(), StoreError> {
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StoreError::Managed(format!(
                "redis-server exited at start ({}); see its log under the data dir",
                exit_text(status)
            )));
        }
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(StoreError::Managed(
        "redis-server did not open its socket within 5 s".into(),
    ))
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SIGTERM lets Redis flush its append-only file.
        #[allow(unsafe_code)] // reason: libc::kill has no safe wrapper; pid is our own child.
        // SAFETY: sending a signal to a pid we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        warn!("managed redis-server did not stop within 5 s; killing it");
        let _ = child.kill().await;
    }
}

impl ManagedRedis {
    /// Starts redis-server under `data_dir/redis`, waits until it accepts connections, and
    /// supervises it.
    pub async fn start(binary: &str, data_dir: &Path) -> Result<Self, StoreError> {
        let dir = absolute(&data_dir.join("redis"))?;
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let socket = dir.join("redis.sock");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(StoreError::Managed(format!(
                "socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter [data] dir",
                socket.display()
            )));
        }
        refuse_if_live(&socket).await?;
        let _ = std::fs::remove_file(&socket);
        let mut child = spawn(binary, &dir, &socket)?;
        wait_for_socket(&socket, &mut child).await?;
        info!("managed redis-server running on {}", socket.display());

        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let binary = binary.to_string();
        let sock = socket.clone();
        actix_rt::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                tokio::select! {
                    status = child.wait() => {
                        if *stop_rx.borrow() { break; }
                        let why = match &status {
                            Ok(st) => exit_text(*st),
                            Err(err) => format!("its status could not be read: {err}"),
                        };
                        error!(
                            "managed redis-server exited unexpectedly ({why}); restarting in {} ms",
                            backoff.as_millis()
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        match spawn(&binary, &dir, &sock) {
                            Ok(mut c) => {
                                if let Err(err) = wait_for_socket(&sock, &mut c).await {
                                    error!("managed redis-server restart failed: {err}");
                                }
                                child = c;
                            }
                            Err(err) => error!("managed redis-server restart failed: {err}"),
                        }
                    }
                    _ = stop_rx.changed() => {
                        terminate(&mut child).await;
                        break;
                    }
                }
            }
            let _ = done_tx.send(true);
        });
        Ok(ManagedRedis {
            url: format!("unix://{}", socket.display()),
            stop_tx,
            done_rx,
        })
    }

    /// The URL to connect to (`unix:///…/redis.sock`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops redis-server (SIGTERM, then SIGKILL after 5 s) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(7), self.done_rx.wait_for(|d| *d)).await;
    }
}

/// "exited with status 1" / "killed by signal 9", never Rust's `ExitStatus` debug text.
fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "stopped".to_string(),
    }
}

fn absolute(p: &Path) -> Result<PathBuf, StoreError> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(p))
        .map_err(|source| StoreError::Io {
            path: p.display().to_string(),
            source,
        })
}
