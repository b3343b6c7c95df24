//! Hostile input at the listeners (issue 10, items 1, 2 and 5): memo-bomb pickle frames
//! against the real `skyline` binary (memory, liveness and fairness measured from outside),
//! idle connections against `max_connections`, idle and frame timeouts, future timestamps.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skyline::model::msgpack::decode_series;
use skyline::telemetry::metrics as m;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_skyline");

/// Kills the daemon if the test fails half-way.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `VmRSS` or `VmHWM` of a process, in kB.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// `]( N×4000 e` then MEMOIZE ×4000: each copy is the 4,000-item list (~480 MB RSS before).
fn memoize_bomb() -> Vec<u8> {
    let mut p = vec![0x80, 4, b']', b'('];
    p.extend(std::iter::repeat_n(b'N', 4000));
    p.push(b'e');
    p.extend(std::iter::repeat_n(0x94u8, 4000));
    p.push(b'.');
    with_header(p)
}

/// A 20,000-item list copied by 130,000 `q\x00` (BINPUT 0): ~280 kB, 2.6·10⁹ node copies
/// before (minutes of CPU per frame).
fn binput_bomb() -> Vec<u8> {
    let mut p = vec![0x80, 2, b']', b'('];
    p.extend(std::iter::repeat_n(b'N', 20_000));
    p.push(b'e');
    for _ in 0..130_000 {
        p.extend_from_slice(b"q\x00");
    }
    p.push(b'.');
    with_header(p)
}

fn with_header(body: Vec<u8>) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

/// Sends `frames` on a fresh connection from a thread; errors (the daemon closing) ignored.
fn send_in_background(addr: SocketAddr, frames: Vec<Vec<u8>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return;
        };
        let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
        for f in frames {
            if s.write_all(&f).is_err() {
                return;
            }
        }
        // Keep the connection until the daemon has read everything.
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut buf = [0u8; 1];
        let _ = s.read(&mut buf);
    })
}

fn good_point_lands(
    addr: SocketAddr,
    conn: &mut redis::Connection,
    name: &str,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&frame(&[(name.into(), (now() as f64, 1.0))]))
        .unwrap();
    while started.elapsed() < within {
        if get_raw(conn, name).is_some() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The memo frames against the real binary: the daemon stays up, its peak RSS grows
/// by less than 50 MB, a good point on a fresh connection lands within 5 s while the hostile
/// frames are being sent, and the refusals are logged once, with a count, not once a frame.
#[test]
fn memo_bomb_frames_cost_little_memory_and_never_starve_good_senders() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("memobomb");
    let cfg = dir.0.join("skyline.toml");
    std::fs::write(
        &cfg,
        format!(
            "[redis]\nurl = \"{}\"\n[horizon]\npickle_bind = \"127.0.0.1:0\"\nudp_bind = \"\"\n\
             workers = 2\nflush_interval_ms = 20\n\
             [logging]\nfile = \"\"\n[data]\ndir = \"{}\"\n[webapp]\nbind = \"127.0.0.1:0\"\n\
             [analyzer]\nenabled = false\n",
            redis.url(),
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
    let pid = daemon.0.id();
    let stderr = daemon.0.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("running:") {
                    let _ = tx.send(line.clone());
                }
                lines.lock().unwrap().push(line);
            }
        });
    }
    let running = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("daemon did not report running");
    let addr: SocketAddr = running
        .split("pickle ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no pickle address in {running:?}"));
    let mut conn = redis_conn(&redis);
    assert!(
        good_point_lands(addr, &mut conn, "good.warmup", Duration::from_secs(10)).is_some(),
        "warm-up point"
    );
    let baseline_kb = proc_kb(pid, "VmRSS");

    let mut senders = Vec::new();
    for _ in 0..4 {
        senders.push(send_in_background(addr, vec![memoize_bomb(); 10]));
    }
    for _ in 0..2 {
        senders.push(send_in_background(addr, vec![binput_bomb(); 3]));
    }
    std::thread::sleep(Duration::from_millis(300));
    let waited = good_point_lands(addr, &mut conn, "good.during", Duration::from_secs(5));
    assert!(
        waited.is_some(),
        "a good point on a fresh connection must land within 5 s while hostile frames are chewed"
    );
    for s in senders {
        s.join().unwrap();
    }
    assert!(
        good_point_lands(addr, &mut conn, "good.after", Duration::from_secs(10)).is_some(),
        "the listener still works afterwards"
    );
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "the daemon is alive"
    );
    let peak_kb = proc_kb(pid, "VmHWM");
    let growth_mb = peak_kb.saturating_sub(baseline_kb) / 1024;
    eprintln!(
        "memo bombs: good point landed in {waited:?}; peak RSS {peak_kb} kB vs {baseline_kb} kB \
         before ({growth_mb} MB growth)"
    );
    assert!(
        growth_mb < 50,
        "peak RSS grew by {growth_mb} MB (baseline {baseline_kb} kB, peak {peak_kb} kB)"
    );
    // 46 refused frames: one ERROR line (the limiter counts the rest), not one per frame.
    let lines = lines.lock().unwrap().clone();
    let refused = lines
        .iter()
        .filter(|l| l.contains("pickle frame from") && l.contains("refused:"))
        .count();
    assert!(
        (1..=2).contains(&refused),
        "refusals logged rate-limited, got {refused} lines: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("over the frame's budget")),
        "{lines:#?}"
    );
}

/// 40 idle connections against `max_connections = 32`: the longest-idle ones are closed to
/// admit newcomers, so a new sender's point lands (within 10 s).
#[actix_rt::test]
async fn idle_connections_do_not_lock_out_a_new_sender() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("idlelock");
    let mut cfg = config(&redis, &dir);
    cfg.horizon.max_connections = 32;
    let running = skyline::app::start(&cfg).await.unwrap();
    let addr = running.pickle_addr.unwrap();
    let evicted_before = m::CONNECTIONS_EVICTED.get();
    let refused_before = m::CONNECTIONS_REFUSED.get();
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(TcpStream::connect(addr).unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&frame(&[("idle.newcomer".into(), (now() as f64, 1.0))]))
        .unwrap();
    let mut conn = redis_conn(&redis);
    let landed = eventually(10, || get_raw(&mut conn, "idle.newcomer")).await;
    assert!(
        landed.is_some() && started.elapsed() < Duration::from_secs(10),
        "the new sender's point must land within 10 s"
    );
    // The 8 connections over the limit and the newcomer each evicted an idle one (or, for a
    // connection accepted before the others had started waiting, was refused).
    let evicted = m::CONNECTIONS_EVICTED.get() - evicted_before;
    let refused = m::CONNECTIONS_REFUSED.get() - refused_before;
    assert!(
        evicted >= 1 && evicted + refused >= 9,
        "evicted {evicted}, refused {refused}"
    );
    // The oldest idle connection was the one closed.
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut first = idle.remove(0);
    let n = tokio::task::spawn_blocking(move || first.read(&mut [0u8; 1]))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "oldest idle closed: {n:?}");
    drop(idle);
    running.shutdown().await;
}

/// Reads until the daemon closes the connection; the time it took, or None after `limit`.
async fn closed_within(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return Some(started.elapsed()),
            }
        }
    })
    .await
    .unwrap()
}

/// `idle_timeout_secs` closes a silent connection; `frame_timeout_secs` closes one that
/// starts a header, a frame or a line and never finishes it; a sender that keeps sending is
/// never closed.
#[actix_rt::test]
async fn idle_and_frame_timeouts_close_slow_connections_only() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("timeouts");
    let mut cfg = config(&redis, &dir);
    cfg.horizon.idle_timeout_secs = 2;
    cfg.horizon.frame_timeout_secs = 1;
    let running = skyline::app::start(&cfg).await.unwrap();
    let addr = running.pickle_addr.unwrap();
    let plain = running.plaintext_addr.unwrap();
    let timed_out_before = m::CONNECTIONS_TIMED_OUT.get();

    let silent = TcpStream::connect(addr).unwrap();
    let mut half_header = TcpStream::connect(addr).unwrap();
    half_header.write_all(&[0, 0]).unwrap();
    let mut half_frame = TcpStream::connect(addr).unwrap();
    half_frame.write_all(&100u32.to_be_bytes()).unwrap();
    half_frame.write_all(&[b'N'; 10]).unwrap();
    let mut half_line = TcpStream::connect(plain).unwrap();
    half_line.write_all(b"slow.line 1 ").unwrap();

    // An active sender: a frame every 500 ms for 3.5 s (longer than both timeouts).
    let mut active = TcpStream::connect(addr).unwrap();
    let mut conn = redis_conn(&redis);
    for i in 0..8 {
        active
            .write_all(&frame(&[(
                "timeouts.active".into(),
                (now() as f64 - 10.0 + i as f64, i as f64),
            )]))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let got = eventually(10, || {
        get_raw(&mut conn, "timeouts.active")
            .filter(|v| decode_series(v).is_ok_and(|points| points.len() == 8))
    })
    .await;
    assert!(got.is_some(), "all 8 frames of the active sender landed");

    let limit = Duration::from_secs(5);
    assert!(closed_within(silent, limit).await.is_some(), "idle timeout");
    assert!(
        closed_within(half_header, limit).await.is_some(),
        "header timeout"
    );
    assert!(
        closed_within(half_frame, limit).await.is_some(),
        "frame timeout"
    );
    assert!(
        closed_within(half_line, limit).await.is_some(),
        "line timeout"
    );
    assert!(m::CONNECTIONS_TIMED_OUT.get() >= timed_out_before + 4);
    running.shutdown().await;
}

/// Timestamps far in the future (pickle `1e12`, plaintext `1e300`, UDP `now + 1 day`) are
/// refused and counted at every listener; the good points beside them are stored.
#[actix_rt::test]
async fn future_timestamps_are_refused_at_every_listener() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("future");
    let running = skyline::app::start(&config(&redis, &dir)).await.unwrap();
    let before = m::DROPPED_FUTURE.get();
    let t = now() as f64;

    let mut s = TcpStream::connect(running.pickle_addr.unwrap()).unwrap();
    s.write_all(&frame(&[
        ("future.pickle".into(), (1e12, 1.0)),
        ("future.pickle.ok".into(), (t + 60.0, 2.0)),
    ]))
    .unwrap();
    let mut p = TcpStream::connect(running.plaintext_addr.unwrap()).unwrap();
    write!(p, "future.plain 1 1e300\nfuture.plain.ok 1 {t}\n").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (name, ts) in [("future.udp", t + 86_400.0), ("future.udp.ok", t)] {
        let mut d = vec![0x92, 0xa0 | name.len() as u8];
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&[0x92, 0xcb]);
        d.extend_from_slice(&ts.to_be_bytes());
        d.push(0xcb);
        d.extend_from_slice(&1.0f64.to_be_bytes());
        udp.send_to(&d, running.udp_addr.unwrap()).unwrap();
    }
    let mut conn = redis_conn(&redis);
    for ok in ["future.pickle.ok", "future.plain.ok", "future.udp.ok"] {
        assert!(
            eventually(10, || get_raw(&mut conn, ok)).await.is_some(),
            "{ok} stored"
        );
    }
    for bad in ["future.pickle", "future.plain", "future.udp"] {
        assert_eq!(get_raw(&mut conn, bad), None, "{bad} refused");
    }
    assert!(m::DROPPED_FUTURE.get() >= before + 3);
    running.shutdown().await;
}
