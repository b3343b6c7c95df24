//! The `skyline` binary itself: config checking, seed against a running daemon, logs.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_skyline");

#[test]
fn check_config_reports_every_problem_with_exit_78() {
    let dir = TempDir::new("cfg");
    let path = dir.0.join("bad.toml");
    std::fs::write(
        &path,
        "[horizon]\npickle_bind = \"x\"\nmax_frame_bytes = \"big\"\n[nosuch]\na = 1\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pickle_bind"), "{err}");
    assert!(err.contains("max_frame_bytes"), "{err}");
    assert!(err.contains("[nosuch]"), "{err}");
}

#[test]
fn shipped_config_checks_out() {
    let out = Command::new(BIN)
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/conf/skyline.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It names the file it checked.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("conf/skyline.toml"), "{said}");
}

/// The whole quick start: `skyline run` with a managed Redis, then `skyline seed`, then
/// SIGTERM: exit 0 with everything flushed, and `skyline logs --errors` works.
#[test]
fn run_managed_seed_and_stop() {
    let dir = TempDir::new("run");
    let cfg = dir.0.join("skyline.toml");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let pickle = free();
    std::fs::write(
        &cfg,
        format!(
            "[redis]\nmanaged = true\n[horizon]\npickle_bind = \"127.0.0.1:{pickle}\"\nudp_bind = \"\"\n\
             [logging]\nfile = \"{log}\"\n[data]\ndir = \"{data}\"\n[webapp]\nbind = \"127.0.0.1:0\"\n",
            log = dir.0.join("skyline.log").display(),
            data = dir.0.join("data").display()
        ),
    )
    .unwrap();
    // The README's port override: the file says one port, the environment another; `seed`
    // given the same override finds the daemon.
    let overridden = format!("127.0.0.1:{}", free());
    let mut daemon = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("SKYLINE__HORIZON__PICKLE_BIND", &overridden)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = daemon.stderr.take().unwrap();
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
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("running:") {
                ready = true;
                break;
            }
        }
    }
    assert!(ready, "daemon did not report running");
    let seed = Command::new(BIN)
        .args(["seed", "--config"])
        .arg(&cfg)
        .env("SKYLINE__HORIZON__PICKLE_BIND", &overridden)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&seed.stdout);
    assert!(
        seed.status.success(),
        "seed failed: {out} {}",
        String::from_utf8_lossy(&seed.stderr)
    );
    assert!(out.contains("PASS"), "{out}");

    let pid = daemon.id() as i32;
    #[allow(unsafe_code)]
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let started = Instant::now();
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "shutdown must take under 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(dir.0.join("skyline.log")).unwrap();
    assert!(log.contains("all datapoints written to Redis"), "{log}");
    // The generated password is in its 0600 file, never in the (world-readable) log.
    let password = std::fs::read_to_string(dir.0.join("data/webapp.password")).unwrap();
    let password = password.trim();
    assert!(password.len() >= 8);
    assert!(log.contains("webapp.password"), "{log}");
    assert!(!log.contains(password), "the password is in the log");
    assert!(
        dir.0.join("data/redis/appendonlydir").exists()
            || dir.0.join("data/redis/appendonly.aof").exists(),
        "managed Redis persists under the data dir"
    );
    let errors = Command::new(BIN)
        .args(["logs", "--errors", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(errors.status.success());
    assert!(!String::from_utf8_lossy(&errors.stdout).contains(" INFO "));
}
