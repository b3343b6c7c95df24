//! A private `redis-server` for tests and benchmarks: a free port on 127.0.0.1, no
//! persistence, its own temp dir; killed and reaped when the guard drops. Not used by the
//! daemon itself (that is `store::managed`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private redis-server.
pub struct TestRedis {
    child: Child,
    /// Its TCP port.
    pub port: u16,
    dir: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl TestRedis {
    /// Starts redis-server from `PATH` and waits until it answers.
    pub fn start() -> std::io::Result<Self> {
        Self::start_on(free_port()?)
    }

    /// Starts redis-server on `port` (used to restart one on the same port).
    pub fn start_on(port: u16) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("skyline-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut r = TestRedis { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = r.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "redis-server exited: {status}"
                )));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(r);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = r.child.kill();
        Err(std::io::Error::other(
            "redis-server did not start within 10 s",
        ))
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server now (for outage tests); the port can be reused with [`Self::start_on`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
