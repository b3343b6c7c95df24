//! `skyline bench webapp --monitor-levels … --phase-ms MS`: the endpoint monitor's levels
//! compared in short alternating phases under one continuous load, in one daemon.
//!
//! wrk runs of a few seconds, one level after the other, drift with the machine: on a shared
//! VM two runs of the same binary and level differ by ±3 % in throughput and ±0.3 ms in p99,
//! which is the size of the effect the monitor's speed bar asks about. Here one load
//! generator (in this process, on its own thread and CPU, [`CONNECTIONS`] keep-alive
//! connections by default) keeps the daemon saturated for the whole run while the levels are
//! switched every `phase_ms` through [`crate::webapp::Monitor::cap_levels`], each round in a
//! fresh random order. Every phase ends with a flush of the monitor writer
//! ([`crate::app::Running::flush_monitor`]), so the database work for a phase's records is
//! done, and counted, inside that phase. A response is counted in the phase it completed in;
//! its latency is kept only when it was also sent in that phase (a request straddling a
//! switch belongs to neither level). The daemon's CPU time is the sum of its threads'
//! `schedstat` run times (the load generator's thread left out). A level listed twice (`0,0,2`)
//! is an A/A control: its second arm against the first shows what the method cannot resolve.
//!
//! The figures are computed by the pure [`summarize`]: per arm, pooled over its phases
//! (throughput, p50/p90/p99 of all its kept latencies, CPU per request), and against the
//! first level-0 arm round by round (median, quartiles, mean with a 95 % interval).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Spread;

/// Keep-alive connections of the load generator unless told otherwise.
pub const CONNECTIONS: usize = 16;
/// Socket errors after which the load generator gives up.
const MAX_SOCKET_ERRORS: u64 = 100;

/// What one connection (and then the whole generator) saw, per phase.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Responses completed in each phase.
    pub done: Vec<u64>,
    /// Latencies (µs) of the responses sent and completed in each phase.
    pub latency_us: Vec<Vec<u32>>,
    /// Responses other than 2xx.
    pub non_2xx: u64,
    /// Connect, read and write errors.
    pub socket_errors: u64,
}

impl Tally {
    fn new(phases: usize) -> Self {
        Tally {
            done: vec![0; phases],
            latency_us: vec![Vec::new(); phases],
            non_2xx: 0,
            socket_errors: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        for (a, b) in self.done.iter_mut().zip(other.done) {
            *a += b;
        }
        for (a, b) in self.latency_us.iter_mut().zip(other.latency_us) {
            a.extend(b);
        }
        self.non_2xx += other.non_2xx;
        self.socket_errors += other.socket_errors;
    }
}

/// The status and the length of the whole response (head and body) whose head is
/// `buf[..head_end]` (`head_end` just past the blank line): `Content-Length` framing only.
pub fn parse_head(head: &[u8]) -> Result<(u16, usize), String> {
    let text = std::str::from_utf8(head).map_err(|_| "a response head that is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.x status line: {status_line:?}"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("a bad Content-Length: {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!(
                "a response with Transfer-Encoding {:?}: only Content-Length framing is read",
                value.trim()
            ));
        }
    }
    let length = length.ok_or("a response without Content-Length")?;
    Ok((status, head.len() + length))
}

/// Reads one response into `buf` (cleared first); returns its status.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Result<u16, String> {
    buf.clear();
    let mut searched = 0;
    let (status, total) = loop {
        if let Some(pos) = buf[searched..].windows(4).position(|w| w == b"\r\n\r\n") {
            let head_end = searched + pos + 4;
            break parse_head(&buf[..head_end])?;
        }
        searched = buf.len().saturating_sub(3);
        buf.reserve(64 << 10);
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the server closed the connection".into());
        }
    };
    while buf.len() < total {
        buf.reserve(total - buf.len());
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the server closed the connection mid-body".into());
        }
    }
    Ok(status)
}

/// The phase switch the controller moves and the connections read.
#[derive(Debug, Default)]
pub struct PhaseClock {
    phase: AtomicUsize,
    stop: AtomicBool,
    /// The load generator's thread id (Linux), so its CPU time is left out of the daemon's.
    tid: AtomicI32,
}

async fn connection(
    addr: SocketAddr,
    request: Arc<[u8]>,
    clock: Arc<PhaseClock>,
    phases: usize,
) -> Tally {
    let mut tally = Tally::new(phases);
    let mut buf = Vec::with_capacity(64 << 10);
    let mut stream: Option<tokio::net::TcpStream> = None;
    while !clock.stop.load(Ordering::Relaxed) && tally.socket_errors < MAX_SOCKET_ERRORS {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream.insert(s)
                }
                Err(_) => {
                    tally.socket_errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent_in = clock.phase.load(Ordering::Acquire);
        let started = Instant::now();
        let outcome = match s.write_all(&request).await {
            Ok(()) => read_response(s, &mut buf).await,
            Err(e) => Err(e.to_string()),
        };
        let us = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        let done_in = clock.phase.load(Ordering::Acquire).min(phases - 1);
        match outcome {
            Ok(status) => {
                tally.done[done_in] += 1;
                if !(200..300).contains(&status) {
                    tally.non_2xx += 1;
                }
                if sent_in == done_in {
                    tally.latency_us[done_in].push(us);
                }
            }
            Err(_) => {
                tally.socket_errors += 1;
                stream = None;
            }
        }
    }
    tally
}

/// Starts the load generator: `connections` keep-alive connections sending `request` to
/// `addr` on one thread (pinned to `cpu` when given) until `clock` says stop.
fn start_load(
    addr: SocketAddr,
    request: Vec<u8>,
    connections: usize,
    clock: Arc<PhaseClock>,
    phases: usize,
    cpu: Option<usize>,
) -> std::thread::JoinHandle<Result<Tally, String>> {
    std::thread::spawn(move || {
        clock.tid.store(thread_id(), Ordering::Release);
        if let Some(cpu) = cpu {
            super::set_thread_cpus(0, &[cpu]).map_err(|e| format!("pinning the load: {e}"))?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("the load generator's runtime: {e}"))?;
        let request: Arc<[u8]> = request.into();
        let tallies = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..connections.max(1) {
                set.spawn(connection(addr, request.clone(), clock.clone(), phases));
            }
            let mut all = Tally::new(phases);
            while let Some(t) = set.join_next().await {
                all.merge(t.map_err(|e| format!("a load connection failed: {e}"))?);
            }
            Ok::<_, String>(all)
        })?;
        Ok(tallies)
    })
}

#[cfg(target_os = "linux")]
fn thread_id() -> i32 {
    #[allow(unsafe_code)] // reason: gettid has no safe wrapper in libc.
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe {
        libc::gettid()
    }
}

#[cfg(not(target_os = "linux"))]
fn thread_id() -> i32 {
    0
}

/// CPU time (ns) of this process's threads but `except`, from `/proc/self/task/*/schedstat`
/// (None where that is not available).
fn cpu_ns_except(except: i32) -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if name.to_string_lossy().parse::<i32>().ok() == Some(except) {
            continue;
        }
        // A thread that ended between the listing and the read: nothing to add.
        if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(total)
}

/// One phase as measured.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// Index of its arm in the levels given.
    pub arm: usize,
    /// The round it belongs to.
    pub round: usize,
    /// How long it lasted (the writer's flush included), seconds.
    pub seconds: f64,
    /// The daemon's CPU time in it, seconds (None without `/proc`).
    pub cpu_secs: Option<f64>,
    /// Records the writer's flush at its end wrote (the writer's own timer may have written
    /// others of the phase before).
    pub written: usize,
    /// Responses completed in it.
    pub done: u64,
    /// Latencies (µs) of the responses sent and completed in it.
    pub latency_us: Vec<u32>,
}

/// Round-by-round figures of one arm against another, with their mean and its 95 % interval
/// (normal approximation over the rounds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Median, quartiles, extremes over the rounds.
    pub spread: Spread,
    /// Mean over the rounds.
    pub mean: f64,
    /// Half the width of the mean's 95 % interval.
    pub ci95: f64,
}

impl Paired {
    fn of(values: &[f64]) -> Option<Paired> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let spread = Spread::of(&v)?;
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = if v.len() > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Paired {
            spread,
            mean,
            ci95: 1.96 * (var / n).sqrt(),
        })
    }

    /// For ratios: the spread of the ratios, their geometric mean (a mean of ratios is
    /// biased upwards by their noise, a mean of their logarithms is not) and the interval's
    /// half-width taken back to ratios.
    fn of_ratios(ratios: &[f64]) -> Option<Paired> {
        let v: Vec<f64> = ratios
            .iter()
            .copied()
            .filter(|x| x.is_finite() && *x > 0.0)
            .collect();
        let spread = Spread::of(&v)?;
        let logs = Paired::of(&v.iter().map(|x| x.ln()).collect::<Vec<f64>>())?;
        let mean = logs.mean.exp();
        Some(Paired {
            spread,
            mean,
            ci95: mean * (logs.ci95.exp() - (-logs.ci95).exp()) / 2.0,
        })
    }
}

/// Resamplings of the bootstrap intervals.
const RESAMPLES: usize = 2000;

/// The 95 % percentile-bootstrap interval of `stat` over `n` rounds: `stat` gets how many
/// times each round was drawn.
fn bootstrap(n: usize, stat: &dyn Fn(&[u32]) -> f64) -> Option<(f64, f64)> {
    if n < 2 {
        return None;
    }
    let mut rng = Order(0x5EED_CAFE_F00D_0001);
    let mut counts = vec![0u32; n];
    let mut values: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            counts.iter_mut().for_each(|c| *c = 0);
            for _ in 0..n {
                counts[(rng.next() % n as u64) as usize] += 1;
            }
            stat(&counts)
        })
        .filter(|v| v.is_finite())
        .collect();
    values.sort_by(f64::total_cmp);
    let q = |p: f64| crate::monitor::stats::quantile(&values, p);
    (!values.is_empty()).then(|| (q(0.025), q(0.975)))
}

/// One arm's pooled figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmFigures {
    /// Its monitor level.
    pub level: u8,
    /// Its position among the levels given (`0,0,2`: arms 0, 1, 2).
    pub arm: usize,
    /// Phases it ran.
    pub phases: usize,
    /// Responses completed in its phases.
    pub requests: u64,
    /// Seconds its phases lasted.
    pub seconds: f64,
    /// Latency p50, p90, p99 of its kept latencies, µs.
    pub latency_us: [f64; 3],
    /// The daemon's CPU per request, µs.
    pub cpu_us_per_request: Option<f64>,
}

impl ArmFigures {
    /// Requests per second over its phases.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
}

/// One arm against the baseline (the first level-0 arm).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmComparison {
    /// The arm.
    pub arm: usize,
    /// Its level.
    pub level: u8,
    /// Pooled throughput, arm ÷ baseline.
    pub throughput_ratio: f64,
    /// Pooled p99, arm − baseline, ms.
    pub p99_delta_ms: f64,
    /// Pooled CPU per request, arm − baseline, µs.
    pub cpu_delta_us: Option<f64>,
    /// 95 % interval of `throughput_ratio` (bootstrap over the rounds).
    pub throughput_ci95: Option<(f64, f64)>,
    /// 95 % interval of `cpu_delta_us` (bootstrap over the rounds).
    pub cpu_delta_ci95: Option<(f64, f64)>,
    /// Throughput ratio round by round (the mean is geometric).
    pub rounds_throughput: Option<Paired>,
    /// p99 difference (ms) round by round.
    pub rounds_p99_ms: Option<Paired>,
    /// CPU per request difference (µs) round by round.
    pub rounds_cpu_us: Option<Paired>,
}

/// Per arm its pooled figures, and every other arm against the first level-0 arm (none when
/// no arm is level 0).
pub fn summarize(levels: &[u8], phases: &[Phase]) -> (Vec<ArmFigures>, Vec<ArmComparison>) {
    use crate::monitor::stats::quantile;
    let arms: Vec<ArmFigures> = levels
        .iter()
        .enumerate()
        .map(|(arm, &level)| {
            let of_arm: Vec<&Phase> = phases.iter().filter(|p| p.arm == arm).collect();
            let mut lat: Vec<f64> = of_arm
                .iter()
                .flat_map(|p| p.latency_us.iter().map(|&u| u as f64))
                .collect();
            lat.sort_by(f64::total_cmp);
            let requests = of_arm.iter().map(|p| p.done).sum::<u64>();
            let cpu: Option<f64> = of_arm.iter().map(|p| p.cpu_secs).sum();
            ArmFigures {
                level,
                arm,
                phases: of_arm.len(),
                requests,
                seconds: of_arm.iter().map(|p| p.seconds).sum(),
                latency_us: [
                    quantile(&lat, 0.5),
                    quantile(&lat, 0.9),
                    quantile(&lat, 0.99),
                ],
                cpu_us_per_request: cpu.map(|c| c * 1e6 / requests.max(1) as f64),
            }
        })
        .collect();
    let Some(base) = levels.iter().position(|&l| l == 0) else {
        return (arms, Vec::new());
    };
    let rounds = phases.iter().map(|p| p.round + 1).max().unwrap_or(0);
    let phase_of =
        |round: usize, arm: usize| phases.iter().find(|p| p.round == round && p.arm == arm);
    let rate = |p: &Phase| p.done as f64 / p.seconds.max(1e-9);
    let p99 = |p: &Phase| {
        let mut v: Vec<f64> = p.latency_us.iter().map(|&u| u as f64).collect();
        v.sort_by(f64::total_cmp);
        quantile(&v, 0.99)
    };
    let cpu_us = |p: &Phase| p.cpu_secs.map(|c| c * 1e6 / p.done.max(1) as f64);
    let comparisons = arms
        .iter()
        .filter(|a| a.arm != base)
        .map(|a| {
            let pairs: Vec<(&Phase, &Phase)> = (0..rounds)
                .filter_map(|r| Some((phase_of(r, base)?, phase_of(r, a.arm)?)))
                .collect();
            let per_round = |f: &dyn Fn(&Phase, &Phase) -> Option<f64>| {
                Paired::of(
                    &pairs
                        .iter()
                        .filter_map(|(b, x)| f(b, x))
                        .collect::<Vec<f64>>(),
                )
            };
            let b = &arms[base];
            // Pooled over the rounds drawn `w` times each: (base, arm) sums.
            let sums = |w: &[u32], f: &dyn Fn(&Phase) -> f64| -> (f64, f64) {
                pairs.iter().zip(w).fold((0.0, 0.0), |acc, ((pb, px), &k)| {
                    (acc.0 + k as f64 * f(pb), acc.1 + k as f64 * f(px))
                })
            };
            let done = |p: &Phase| p.done as f64;
            let secs = |p: &Phase| p.seconds;
            let throughput_ci95 = bootstrap(pairs.len(), &|w| {
                let (db, dx) = sums(w, &done);
                let (sb, sx) = sums(w, &secs);
                (dx / sx) / (db / sb)
            });
            let cpu_delta_ci95 = if pairs
                .iter()
                .all(|(pb, px)| pb.cpu_secs.is_some() && px.cpu_secs.is_some())
            {
                bootstrap(pairs.len(), &|w| {
                    let (db, dx) = sums(w, &done);
                    let (cb, cx) = sums(w, &|p| p.cpu_secs.unwrap_or(0.0));
                    (cx / dx - cb / db) * 1e6
                })
            } else {
                None
            };
            ArmComparison {
                throughput_ci95,
                cpu_delta_ci95,
                arm: a.arm,
                level: a.level,
                throughput_ratio: a.rate() / b.rate().max(1e-9),
                p99_delta_ms: (a.latency_us[2] - b.latency_us[2]) / 1e3,
                cpu_delta_us: a
                    .cpu_us_per_request
                    .zip(b.cpu_us_per_request)
                    .map(|(x, y)| x - y),
                rounds_throughput: Paired::of_ratios(
                    &pairs
                        .iter()
                        .map(|(b, x)| rate(x) / rate(b).max(1e-9))
                        .collect::<Vec<f64>>(),
                ),
                rounds_p99_ms: per_round(&|b, x| Some((p99(x) - p99(b)) / 1e3)),
                rounds_cpu_us: per_round(&|b, x| Some(cpu_us(x)? - cpu_us(b)?)),
            }
        })
        .collect();
    (arms, comparisons)
}

/// A small deterministic generator for the phase order (xorshift64*).
struct Order(u64);

impl Order {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `0..n` shuffled (Fisher–Yates).
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }
}

/// The phase order: `rounds` rounds, each every arm once in a random order (`seed`).
pub fn schedule(arms: usize, rounds: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut order = Order(seed | 1);
    (0..rounds)
        .flat_map(|r| {
            order
                .permutation(arms)
                .into_iter()
                .map(move |a| (r, a))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One target's phased comparison.
#[derive(Debug, Clone)]
pub struct PhasedTarget {
    /// What was measured (`/api?metric= (1440 points)`).
    pub target: String,
    /// Every phase, in the order run.
    pub phases: Vec<Phase>,
    /// Responses other than 2xx.
    pub non_2xx: u64,
    /// Socket errors.
    pub socket_errors: u64,
}

/// How one target is loaded and switched.
pub struct PhasedRun<'a> {
    /// The daemon.
    pub running: &'a crate::app::Running,
    /// The request sent, as bytes.
    pub request: Vec<u8>,
    /// The target's name.
    pub target: String,
    /// Monitor level of each arm.
    pub levels: &'a [u8],
    /// Rounds.
    pub rounds: usize,
    /// Phase length.
    pub phase: Duration,
    /// Connections.
    pub connections: usize,
    /// The load generator's CPU, when pinned.
    pub load_cpu: Option<usize>,
    /// The phase order's seed.
    pub seed: u64,
}

/// Loads one target for `rounds` rounds of every arm, switching the daemon's monitor level
/// phase by phase.
pub async fn run_target(run: PhasedRun<'_>, out: &mut dyn Write) -> Result<PhasedTarget, String> {
    let monitor = run
        .running
        .http_monitor
        .as_ref()
        .ok_or("the daemon has no HTTP monitor")?;
    let addr = run.running.http_addr.ok_or("no HTTP server")?;
    let order = schedule(run.levels.len(), run.rounds, run.seed);
    // Phase 0 is the warm-up, 1..=n the measured phases, n + 1 the wind-down.
    let slots = order.len() + 2;
    let clock = Arc::new(PhaseClock::default());
    let load = start_load(
        addr,
        run.request,
        run.connections,
        clock.clone(),
        slots,
        run.load_cpu,
    );
    monitor.cap_levels(run.levels.iter().copied().max().unwrap_or(0));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = run.running.flush_monitor().await;
    let tid = clock.tid.load(Ordering::Acquire);
    let mut phases = Vec::with_capacity(order.len());
    let _ = writeln!(
        out,
        "{}: {} phases of {} ms, levels {:?} in a random order each round (seed {}), {} connections",
        run.target,
        order.len(),
        run.phase.as_millis(),
        run.levels,
        run.seed,
        run.connections
    );
    for (i, &(round, arm)) in order.iter().enumerate() {
        monitor.cap_levels(run.levels[arm]);
        let cpu_before = cpu_ns_except(tid);
        let started = Instant::now();
        clock.phase.store(i + 1, Ordering::Release);
        tokio::time::sleep(run.phase).await;
        // The writer's work for this phase's records belongs to this phase.
        let written = match run.running.flush_monitor().await {
            Ok(n) => n,
            Err(err) => {
                clock.stop.store(true, Ordering::Relaxed);
                let _ = load.join();
                return Err(format!("the monitor writer failed: {err}"));
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let cpu_secs = cpu_before
            .zip(cpu_ns_except(tid))
            .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9);
        phases.push(Phase {
            arm,
            round,
            seconds,
            cpu_secs,
            written,
            ..Phase::default()
        });
    }
    clock.phase.store(slots - 1, Ordering::Release);
    clock.stop.store(true, Ordering::Relaxed);
    monitor.cap_levels(u8::MAX);
    let tally = load
        .join()
        .map_err(|_| "the load generator panicked".to_string())??;
    if tally.socket_errors >= MAX_SOCKET_ERRORS {
        return Err(format!(
            "{}: {} socket errors, the load generator gave up",
            run.target, tally.socket_errors
        ));
    }
    let mut latencies = tally.latency_us.into_iter().skip(1);
    for (p, done) in phases.iter_mut().zip(tally.done.iter().skip(1)) {
        p.done = *done;
        p.latency_us = latencies.next().unwrap_or_default();
    }
    Ok(PhasedTarget {
        target: run.target,
        phases,
        non_2xx: tally.non_2xx,
        socket_errors: tally.socket_errors,
    })
}

/// Every phase of `targets` as CSV (header line first), in the order run, for analysis
/// elsewhere: `target,round,arm,level,seconds,cpu_secs,requests,written,p50_us,p99_us`.
pub fn phases_csv(levels: &[u8], targets: &[PhasedTarget]) -> String {
    use crate::monitor::stats::quantile;
    let mut out =
        String::from("target,round,arm,level,seconds,cpu_secs,requests,written,p50_us,p99_us\n");
    for t in targets {
        for p in &t.phases {
            let mut lat: Vec<f64> = p.latency_us.iter().map(|&u| u as f64).collect();
            lat.sort_by(f64::total_cmp);
            out.push_str(&format!(
                "\"{}\",{},{},{},{:.6},{},{},{},{:.0},{:.0}\n",
                t.target.replace('"', "\"\""),
                p.round,
                p.arm,
                levels.get(p.arm).copied().unwrap_or(0),
                p.seconds,
                p.cpu_secs.map_or(String::new(), |c| format!("{c:.6}")),
                p.done,
                p.written,
                quantile(&lat, 0.5),
                quantile(&lat, 0.99),
            ));
        }
    }
    out
}

/// What `skyline bench webapp` prints for one target measured in phases: a line per arm and
/// a line per comparison with the first level-0 arm.
pub fn report_lines(levels: &[u8], t: &PhasedTarget) -> Vec<String> {
    let (arms, comparisons) = summarize(levels, &t.phases);
    let name = |arm: usize, level: u8| {
        if levels.iter().filter(|&&l| l == level).count() > 1 {
            let nth = levels[..=arm].iter().filter(|&&l| l == level).count();
            format!("level {level} (#{nth})")
        } else {
            format!("level {level}")
        }
    };
    let mut lines = Vec::new();
    for a in &arms {
        lines.push(format!(
            "{}, monitor {}: {} phases, {} requests in {:.1} s = {:.0} req/s, latency p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, daemon CPU {} µs/request",
            t.target,
            name(a.arm, a.level),
            a.phases,
            a.requests,
            a.seconds,
            a.rate(),
            a.latency_us[0] / 1e3,
            a.latency_us[1] / 1e3,
            a.latency_us[2] / 1e3,
            a.cpu_us_per_request.map_or("?".into(), |c| format!("{c:.2}"))
        ));
    }
    let rounds = |p: &Option<Paired>, unit: &str, d: usize| match p {
        Some(p) => format!(
            "by round mean {:.d$}{unit} ± {:.d$} (95 %), median {:.d$} [IQR {:.d$}..{:.d$}]",
            p.mean, p.ci95, p.spread.median, p.spread.q1, p.spread.q3,
        ),
        None => "no rounds".into(),
    };
    let interval = |ci: Option<(f64, f64)>, unit: &str, d: usize| match ci {
        Some((lo, hi)) => format!("{lo:.d$}..{hi:.d$}{unit}"),
        None => "?".into(),
    };
    if let Some(base) = levels.iter().position(|&l| l == 0) {
        for c in &comparisons {
            lines.push(format!(
                "{}, monitor {} vs {}: throughput {:.3}× ({:+.1} %, 95 % {}; {}); p99 {:+.3} ms ({}); CPU per request {} (95 % {}; {})",
                t.target,
                name(c.arm, c.level),
                name(base, 0),
                c.throughput_ratio,
                (c.throughput_ratio - 1.0) * 100.0,
                interval(c.throughput_ci95, "×", 3),
                rounds(&c.rounds_throughput, "×", 3),
                c.p99_delta_ms,
                rounds(&c.rounds_p99_ms, " ms", 3),
                c.cpu_delta_us.map_or("?".into(), |d| format!("{d:+.2} µs")),
                interval(c.cpu_delta_ci95, " µs", 2),
                rounds(&c.rounds_cpu_us, " µs", 2),
            ));
        }
    }
    lines.push(format!(
        "{}: {} non-2xx responses, {} socket errors",
        t.target, t.non_2xx, t.socket_errors
    ));
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn heads_give_status_and_length() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nx: y\r\n\r\n";
        assert_eq!(parse_head(head).unwrap(), (200, head.len() + 12));
        let head = b"HTTP/1.1 403 Forbidden\r\nContent-Length:0\r\n\r\n";
        assert_eq!(parse_head(head).unwrap(), (403, head.len()));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n")
            .unwrap_err()
            .contains("without Content-Length"));
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .unwrap_err()
                .contains("chunked")
        );
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
    }

    #[test]
    fn ratios_average_geometrically_and_noise_widens_the_intervals() {
        // ×1.25 and ×0.8 cancel: the geometric mean is 1, the arithmetic one 1.025.
        let p = Paired::of_ratios(&[1.25, 0.8, 1.25, 0.8]).unwrap();
        assert!((p.mean - 1.0).abs() < 1e-12, "{p:?}");
        assert!(p.ci95 > 0.1);
        assert!(Paired::of_ratios(&[]).is_none());
        // A bootstrap interval holds the statistic of the full sample, and is wider for noisy
        // rounds than for quiet ones.
        let quiet: Vec<f64> = (0..40).map(|i| 1.0 + (i % 2) as f64 * 0.01).collect();
        let noisy: Vec<f64> = (0..40).map(|i| 1.0 + (i % 2) as f64 * 0.2).collect();
        fn mean(v: &[f64], w: &[u32]) -> f64 {
            let n: f64 = w.iter().map(|&k| k as f64).sum();
            v.iter().zip(w).map(|(x, &k)| x * k as f64).sum::<f64>() / n
        }
        let (ql, qh) = bootstrap(40, &|w| mean(&quiet, w)).unwrap();
        let (nl, nh) = bootstrap(40, &|w| mean(&noisy, w)).unwrap();
        assert!(ql <= 1.005 && 1.005 <= qh, "{ql}..{qh}");
        assert!(nl <= 1.1 && 1.1 <= nh, "{nl}..{nh}");
        assert!(nh - nl > 10.0 * (qh - ql));
        assert!(bootstrap(1, &|w| mean(&quiet, w)).is_none());
    }

    #[test]
    fn phases_go_to_csv_one_line_each() {
        let t = PhasedTarget {
            target: "Now \"page\"".into(),
            phases: vec![phase(0, 1, 500, 0.25, 1000), phase(0, 0, 510, 0.5, 900)],
            non_2xx: 0,
            socket_errors: 0,
        };
        let csv = phases_csv(&[0, 2], &[t]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("target,round,arm,level,"));
        assert_eq!(
            lines[1],
            "\"Now \"\"page\"\"\",0,1,2,0.500000,0.250000,500,0,1050,1098"
        );
        assert!(lines[2].starts_with("\"Now \"\"page\"\"\",0,0,0,"));
    }

    #[test]
    fn every_round_runs_every_arm_once_in_varying_orders() {
        let s = schedule(4, 50, 7);
        assert_eq!(s.len(), 200);
        for r in 0..50 {
            let mut arms: Vec<usize> = s.iter().filter(|p| p.0 == r).map(|p| p.1).collect();
            arms.sort();
            assert_eq!(arms, vec![0, 1, 2, 3]);
        }
        // Each arm goes first in some round: the order is not fixed.
        for arm in 0..4 {
            assert!(s.chunks(4).any(|c| c[0].1 == arm), "arm {arm} never first");
        }
        assert_eq!(s, schedule(4, 50, 7), "the seed decides the order");
        assert_ne!(s, schedule(4, 50, 8));
    }

    fn phase(round: usize, arm: usize, done: u64, cpu: f64, lat: u32) -> Phase {
        Phase {
            arm,
            round,
            seconds: 0.5,
            cpu_secs: Some(cpu),
            written: 0,
            done,
            latency_us: (0..100).map(|i| lat + i).collect(),
        }
    }

    #[test]
    fn arms_are_pooled_and_compared_round_by_round_with_the_first_level_0() {
        // Arm 1 (level 2) serves 2 % fewer requests and uses more CPU per request; arm 2 is
        // a second level-0 arm equal to the first.
        let mut phases = Vec::new();
        for r in 0..10 {
            let wobble = 1.0 + (r % 3) as f64 * 0.01;
            let base = (10_000.0 * wobble) as u64;
            phases.push(phase(r, 0, base, 0.4, 1000));
            phases.push(phase(r, 1, (base as f64 * 0.98) as u64, 0.4, 1200));
            phases.push(phase(r, 2, base, 0.4, 1000));
        }
        let (arms, cmp) = summarize(&[0, 2, 0], &phases);
        assert_eq!(arms.len(), 3);
        assert_eq!(arms[1].phases, 10);
        assert!(
            (arms[0].latency_us[2] - 1098.01).abs() < 0.1,
            "{:?}",
            arms[0]
        );
        assert_eq!(cmp.len(), 2);
        let two = &cmp[0];
        assert_eq!((two.arm, two.level), (1, 2));
        assert!((two.throughput_ratio - 0.98).abs() < 0.001, "{two:?}");
        assert!((two.p99_delta_ms - 0.2).abs() < 1e-9);
        let rounds = two.rounds_throughput.unwrap();
        assert_eq!(rounds.spread.n, 10);
        assert!((rounds.mean - 0.98).abs() < 0.001 && rounds.ci95 < 0.001);
        let (lo, hi) = two.throughput_ci95.unwrap();
        assert!(lo <= two.throughput_ratio && two.throughput_ratio <= hi && hi - lo < 0.002);
        let (lo, hi) = two.cpu_delta_ci95.unwrap();
        assert!(lo <= two.cpu_delta_us.unwrap() && two.cpu_delta_us.unwrap() <= hi);
        // Same CPU per phase, fewer requests: more CPU per request.
        assert!(two.cpu_delta_us.unwrap() > 0.7 && two.rounds_cpu_us.unwrap().mean > 0.7);
        let control = &cmp[1];
        assert_eq!(control.throughput_ratio, 1.0);
        assert_eq!(control.rounds_p99_ms.unwrap().mean, 0.0);
        // Without a level-0 arm there is nothing to compare with.
        assert!(summarize(&[2, 3], &phases).1.is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_processs_cpu_time_leaves_a_thread_out() {
        let own = || -> u64 {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let all = cpu_ns_except(0).unwrap();
        // Burn 30 ms of this thread's CPU: counted with it, not without it.
        let start = own();
        let mut x = 0u64;
        while own() - start < 30_000_000 {
            for _ in 0..10_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
        }
        std::hint::black_box(x);
        let with = cpu_ns_except(0).unwrap() as i64;
        let without = cpu_ns_except(thread_id()).unwrap() as i64;
        assert!(with - all as i64 >= 30_000_000, "{all} → {with}");
        assert!(with - without >= 30_000_000, "{with} vs {without}");
    }
}
