//! Deployment: `--version`, log reopening on SIGHUP (what logrotate relies on) and the
//! shipped systemd, logrotate and nginx examples.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_skyline");

#[test]
fn version_flag_prints_name_and_version() {
    for flag in ["--version", "-V"] {
        let out = Command::new(BIN).arg(flag).output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("skyline {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// Kills the daemon if the test fails half-way (a panicking test must not leave it running).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Polls `path` until it contains `needle` (10 s at most).
fn wait_for(path: &std::path::Path, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[allow(unsafe_code)]
fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// logrotate's `create` + `postrotate kill -HUP`: the old file is renamed, SIGHUP makes the
/// daemon open a new file at the configured path, and every later line lands there.
#[test]
fn sighup_reopens_the_log_file() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("sighup");
    let log = dir.0.join("skyline.log");
    let rotated = dir.0.join("skyline.log.1");
    let cfg = dir.0.join("skyline.toml");
    std::fs::write(
        &cfg,
        format!(
            "[redis]\nurl = \"{}\"\n[horizon]\npickle_bind = \"127.0.0.1:0\"\nudp_bind = \"\"\n\
             [logging]\nfile = \"{}\"\n[data]\ndir = \"{}\"\n[webapp]\nbind = \"127.0.0.1:0\"\n\
             [analyzer]\nenabled = false\n",
            redis.url(),
            log.display(),
            dir.0.join("data").display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = false;
    while Instant::now() < deadline && !ready {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            ready = line.contains("running:");
        }
    }
    assert!(ready, "daemon did not report running");
    // stderr gets each line a moment before the file does.
    assert!(wait_for(&log, "running:"), "start-up lines in the log file");

    std::fs::rename(&log, &rotated).unwrap();
    signal(daemon.0.id(), libc::SIGHUP);
    assert!(
        wait_for(&log, "SIGHUP: log file reopened"),
        "a new log file at the configured path"
    );

    signal(daemon.0.id(), libc::SIGTERM);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "shutdown under 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let new = std::fs::read_to_string(&log).unwrap();
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        new.contains("SIGTERM received") && new.contains("stopped"),
        "{new}"
    );
    assert!(
        !new.contains("running:"),
        "start-up lines stay in the rotated file"
    );
    assert!(old.contains("running:"), "{old}");
    assert!(
        !old.contains("SIGHUP: log file reopened") && !old.contains("SIGTERM received"),
        "nothing written to the rotated file after SIGHUP: {old}"
    );
}

#[test]
fn deployment_examples_are_consistent() {
    let conf = |name: &str| {
        std::fs::read_to_string(format!("{}/conf/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("conf/{name}: {e}"))
    };
    let unit = conf("skyline.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/skyline run --config /etc/skyline/skyline.toml")
    );
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("KillSignal=SIGTERM"));
    let rotate = conf("logrotate.conf");
    assert!(rotate.contains("/var/log/skyline/skyline.log"));
    assert!(rotate.contains("systemctl kill -s HUP skyline.service"));
    assert!(
        !rotate.lines().any(|l| l.trim() == "copytruncate"),
        "the daemon reopens; no copytruncate"
    );
    let nginx = conf("nginx-skyline.conf");
    assert!(nginx.contains("proxy_pass http://127.0.0.1:1500"));
    assert!(nginx.contains("ssl_certificate"));
    assert!(nginx.contains("proxy_set_header Authorization $http_authorization"));
}
