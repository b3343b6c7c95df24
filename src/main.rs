//! The `skyline` binary: parses the command line, loads the config, starts logging and maps
//! failures to exit codes (78 for configuration errors, 2 for unreadable input, 1 otherwise).

use std::io::{BufRead, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use log::{error, info};

use skyline::config::{self, Config, EX_CONFIG};

/// The daemon's allocator: jemalloc. The ingest path allocates on the listeners' decode
/// threads and frees on the metric actors' threads; glibc malloc spent about half of a
/// 100,000-metric ingest in its arenas there (docs/ingest.md has the figures; mimalloc was as
/// fast but broke the memo-bomb memory bound `tests/it/hostile.rs` holds the daemon to).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "skyline",
    version,
    about = "Skyline anomaly detection for Graphite metrics, in one daemon"
)]
struct Cli {
    /// Config file (default: $SKYLINE_CONFIG, else conf/skyline.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon (the default).
    Run,
    /// Validate the config, print every problem, exit 78 when there is one.
    CheckConfig,
    /// Apply pending Panorama migrations to `[panorama] database_url` and exit.
    Migrate,
    /// Send Skyline's seed series to the pickle listener and check it reached Redis.
    Seed {
        /// Pickle listener (default: [horizon] pickle_bind).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Send a test alert for METRIC through every alerter whose [[alerts]] rule matches it;
    /// exits 1 naming each alerter that failed, 2 when no rule matches.
    AlertTest {
        /// The metric name to match against the [[alerts]] patterns.
        #[arg(long)]
        metric: String,
    },
    /// Print lines of the log file.
    Logs {
        /// Only ERROR lines.
        #[arg(long)]
        errors: bool,
        /// Keep printing new lines as they are written.
        #[arg(long, short)]
        follow: bool,
    },
    /// Skyline's crucible: run the algorithms over series from a file.
    Analyze {
        /// JSON Lines with `metric`, `now`, `timeseries` (the vectors' format); one JSON line
        /// per series is written to stdout.
        #[arg(long, conflicts_with = "csv")]
        input: Option<PathBuf>,
        /// One series as `timestamp,value` CSV; prints a readable report.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// The wall clock to analyse at (epoch seconds; default: the last timestamp for
        /// --csv, the `now` field for --input).
        #[arg(long)]
        now: Option<f64>,
        /// With --csv: run Mirage's second stage instead, over the last H hours of the file
        /// ([mirage] algorithms and consensus), e.g. 168 for a week.
        #[arg(long, requires = "csv")]
        mirage_hours: Option<u64>,
        /// `skyline` (the configured algorithms) or `stream` (per-point stream detector
        /// scores; --csv only).
        #[arg(long, default_value = "skyline")]
        detector: String,
    },
    /// Run the detector over NAB data as a stream and write NAB results.
    Nab {
        /// NAB data directory (`<category>/<name>.csv`).
        #[arg(long)]
        data: PathBuf,
        /// Results directory (`<out>/<category>/<detector>_<name>.csv`).
        #[arg(long)]
        out: PathBuf,
        /// Algorithms (comma separated; default: the reference protocol's seven).
        #[arg(long, value_delimiter = ',')]
        algorithms: Option<Vec<String>>,
        /// Votes needed (default 5).
        #[arg(long)]
        consensus: Option<usize>,
        /// Seconds after a detection during which rows are not analysed (default 43200).
        #[arg(long)]
        expiry: Option<i64>,
        /// Analyse only the last N seconds of history (default: the whole history).
        #[arg(long)]
        window: Option<i64>,
        /// `reference` (the algorithms as the anchor detector ran them) or `analyzer`
        /// (this daemon's Skyline G algorithms).
        #[arg(long, default_value = "reference")]
        variant: String,
        /// `skyline` (the algorithms, 0/1 scores), `stream` (graded stream detector scores),
        /// or `any` / `all` (both, combined as `[analyzer] combine` does, graded by the
        /// stream score).
        #[arg(long, default_value = "skyline")]
        detector: String,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Pickled datapoints over loopback into a private redis-server, end to end.
    Ingest {
        /// Datapoints to push.
        #[arg(long, default_value_t = 2_000_000)]
        points: usize,
        /// Distinct metrics.
        #[arg(long, default_value_t = 10_000)]
        metrics: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Run the ingest twice in one run, the analyzer every second over N points of
        /// history per metric already in Redis: Skyline's algorithms alone, then with the
        /// stream detector (0: one plain run).
        #[arg(long, default_value_t = 0)]
        stream_history: usize,
        /// Push this many points per metric, 60 s apart (1440 = a 24 h load), instead of
        /// `--points`.
        #[arg(long)]
        points_per_metric: Option<usize>,
        /// Run the same load into one redis-server, then into a private N-master Redis
        /// Cluster (needs redis-cli), and print both with their ratio and the cluster's
        /// overhead per datapoint (0: one redis-server only).
        #[arg(long, default_value_t = 0)]
        cluster: usize,
    },
    /// wrk POSTing batches to flux, which forwards to a counting pickle sink (needs `wrk`).
    Flux {
        /// wrk run time, seconds.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// wrk threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// wrk connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Datapoints per POST.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Distinct metrics per wrk thread (each reused every metrics/batch requests, far
        /// apart enough that in-flight reordering never makes a datapoint a duplicate).
        #[arg(long, default_value_t = 50_000)]
        metrics: usize,
        /// Do not also feed the metric actors (carbon forwarding only).
        #[arg(long)]
        no_horizon: bool,
    },
    /// Prometheus remote_write (snappy protobuf) through the HTTP server into Redis, with flux
    /// JSON of the same samples as the baseline in the same run.
    RemoteWrite {
        /// Samples per arm.
        #[arg(long, default_value_t = 2_000_000)]
        samples: usize,
        /// Samples (series) per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Distinct series.
        #[arg(long, default_value_t = 20_000)]
        series: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Stop sending after this many seconds per arm (0: send every sample).
        #[arg(long, default_value_t = 0.0)]
        secs: f64,
    },
    /// wrk against /api?metric= (a 1,440-point metric) and the Now page (100 anomalies),
    /// through the real middleware and basic auth (needs `wrk`); with two or more CPUs the
    /// daemon runs on CPU 0 and wrk and redis-server on CPU 1.
    Webapp {
        /// wrk run time per target, seconds.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// wrk threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// wrk connections.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Current anomalies on the Now page.
        #[arg(long, default_value_t = 100)]
        anomalies: usize,
        /// Points of the metric /api?metric= serves.
        #[arg(long, default_value_t = 1440)]
        points: usize,
        /// Compare endpoint monitor levels, e.g. `0,2,3` (one daemon each, Panorama on SQLite,
        /// /api?metric= and the Now page without gzip).
        #[arg(long, value_delimiter = ',')]
        monitor_levels: Vec<u8>,
        /// Run the monitor levels this many times, every second time in reverse order
        /// (`--monitor-levels 0,2 --repeat 10`: 0,2,2,0,0,2,…), and compare each level with
        /// level 0 pair by pair (median and spread of the per-pair ratios).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Do not pin the daemon to CPU 0 and wrk and redis-server to CPU 1.
        #[arg(long)]
        no_pin: bool,
        /// One daemon for all the monitor levels: it records at the highest and each run caps
        /// its levels (`Monitor::cap_levels`), so the levels are compared in one process
        /// rather than across daemons.
        #[arg(long)]
        interleave: bool,
        /// Instead of wrk runs: one daemon under one continuous load (this process's own
        /// keep-alive client, on CPU 1 beside redis-server), its monitor level switched every
        /// this many ms, `--repeat` rounds of every entry of `--monitor-levels` in a random
        /// order (list level 0 twice for an A/A control), each phase ending with the monitor
        /// writer's flush. 0: wrk runs.
        #[arg(long, default_value_t = 0)]
        phase_ms: u64,
        /// With --phase-ms: write every phase (target, round, arm, level, seconds, daemon CPU,
        /// requests, records written, p50, p99) to this CSV file.
        #[arg(long)]
        phases_csv: Option<PathBuf>,
    },
    /// Mirage on 1,008-point (7 d at 600 s) series, one core, fetch excluded, against the
    /// Analyzer on 1,440 points; the built-in history's bytes per point in Redis; and
    /// `bench ingest` without and with Mirage.
    Mirage {
        /// Seconds per timed loop.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// Datapoints for the ingest before/after (0: skip it).
        #[arg(long, default_value_t = 500_000)]
        ingest_points: usize,
    },
    /// Full analysis cycles over N metrics x 1,440 points in a private redis-server.
    Analyze {
        /// Metrics to load.
        #[arg(long, default_value_t = 20_000)]
        metrics: usize,
        /// Analysis cycles to time.
        #[arg(long, default_value_t = 3)]
        cycles: usize,
        /// Analysis threads (default: one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Then the same cycles with the stream detector on, from an empty store (its first
        /// cycle is the restart replay).
        #[arg(long)]
        stream: bool,
        /// Run the same cycles over the same series on one redis-server, then on a private
        /// N-master Redis Cluster (needs redis-cli), and print both with their ratio and the
        /// cluster's overhead per metric (0: one redis-server only).
        #[arg(long, default_value_t = 0)]
        cluster: usize,
    },
    /// The stream detector alone: updates per second on one core over N metrics fed
    /// point by point in time order, state bytes per metric, and a restart replay over
    /// all cores.
    Stream {
        /// Metrics.
        #[arg(long, default_value_t = 10_000)]
        metrics: usize,
        /// Points per metric.
        #[arg(long, default_value_t = 1440)]
        points: usize,
    },
}

fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    let path = config::resolve_path(path);
    config::load(path.as_deref()).map_err(|err| {
        eprintln!(
            "skyline: invalid configuration{}:",
            path.map(|p| format!(" in {}", p.display()))
                .unwrap_or_default()
        );
        for p in &err.problems {
            eprintln!("  - {p}");
        }
        ExitCode::from(EX_CONFIG as u8)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Cmd::Run) {
        Cmd::Run => run(cli.config.as_deref()),
        Cmd::CheckConfig => match load_config(cli.config.as_deref()) {
            Ok(_) => {
                match config::resolve_path(cli.config.as_deref()) {
                    Some(p) => println!("configuration OK: {} (with any SKYLINE__* overrides from the environment)", p.display()),
                    None => println!("configuration OK: no file (built-in defaults, with any SKYLINE__* overrides from the environment)"),
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Cmd::Migrate => migrate(cli.config.as_deref()),
        Cmd::Seed { addr } => seed(cli.config.as_deref(), addr),
        Cmd::Logs { errors, follow } => logs(cli.config.as_deref(), errors, follow),
        Cmd::AlertTest { metric } => alert_test(cli.config.as_deref(), &metric),
        Cmd::Analyze {
            input,
            csv,
            now,
            mirage_hours,
            detector,
        } => {
            if detector == "stream" {
                analyze_stream(csv)
            } else if detector == "skyline" {
                analyze(cli.config.as_deref(), input, csv, now, mirage_hours)
            } else {
                eprintln!(
                    "skyline analyze: --detector must be skyline or stream, not {detector:?}"
                );
                ExitCode::from(2)
            }
        }
        Cmd::Nab {
            data,
            out,
            algorithms,
            consensus,
            expiry,
            window,
            variant,
            detector,
        } => nab(
            &data, &out, algorithms, consensus, expiry, window, &variant, &detector,
        ),
        Cmd::Bench { what } => match what {
            BenchCmd::Ingest {
                points,
                metrics,
                connections,
                points_per_metric,
                stream_history: 0,
                cluster,
            } if cluster > 0 => bench_ingest_cluster(
                skyline::bench::IngestSpec {
                    points,
                    metrics,
                    connections,
                    points_per_metric,
                    history: 0,
                    cluster: 0,
                },
                cluster,
            ),
            BenchCmd::Ingest {
                points,
                metrics,
                connections,
                points_per_metric,
                stream_history: 0,
                ..
            } => bench_ingest(skyline::bench::IngestSpec {
                points,
                metrics,
                connections,
                points_per_metric,
                history: 0,
                cluster: 0,
            }),
            BenchCmd::Ingest {
                points,
                metrics,
                connections,
                stream_history,
                ..
            } => bench_ingest_stream(points, metrics, connections, stream_history),
            BenchCmd::RemoteWrite {
                samples,
                batch,
                series,
                connections,
                secs,
            } => {
                let opts = skyline::bench::RemoteWriteBenchOptions {
                    samples,
                    batch,
                    series,
                    connections,
                    secs,
                };
                match skyline::bench::remote_write(&opts, &mut std::io::stdout()) {
                    Ok(report) => {
                        println!("{report}");
                        ExitCode::SUCCESS
                    }
                    Err(err) => {
                        eprintln!("skyline bench remote-write: FAIL: {err}");
                        ExitCode::FAILURE
                    }
                }
            }
            BenchCmd::Flux {
                duration,
                threads,
                connections,
                batch,
                metrics,
                no_horizon,
            } => bench_flux(skyline::bench::FluxBenchOptions {
                duration_secs: duration,
                threads,
                connections,
                batch,
                metrics_per_thread: metrics,
                feed_horizon: !no_horizon,
            }),
            BenchCmd::Webapp {
                duration,
                threads,
                connections,
                anomalies,
                points,
                monitor_levels,
                repeat,
                no_pin,
                interleave,
                phase_ms,
                phases_csv,
            } => bench_webapp(
                skyline::bench::WebappBenchOptions {
                    duration_secs: duration,
                    threads,
                    connections,
                    anomalies,
                    points,
                    monitor_levels,
                    repeat,
                    pin: !no_pin,
                    interleave,
                    phase_ms,
                },
                phases_csv,
            ),
            BenchCmd::Mirage {
                secs,
                ingest_points,
            } => bench_mirage(secs, ingest_points),
            BenchCmd::Analyze {
                metrics,
                cycles,
                workers,
                stream,
                cluster: 0,
            } => bench_analyze(metrics, cycles, workers, stream),
            BenchCmd::Analyze {
                metrics,
                cycles,
                workers,
                cluster,
                ..
            } => bench_analyze_cluster(metrics, cycles, workers, cluster),
            BenchCmd::Stream { metrics, points } => {
                let r = skyline::bench::stream(metrics, points);
                println!("{r}");
                ExitCode::SUCCESS
            }
        },
    }
}

fn run(path: Option<&Path>) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(err) = skyline::telemetry::init(&config.logging.level, &config.logging.file) {
        eprintln!(
            "skyline: cannot open log file {:?}: {err}",
            config.logging.file
        );
        return ExitCode::FAILURE;
    }
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let running = match skyline::app::start(&config).await {
            Ok(r) => r,
            Err(err) => {
                error!("cannot start: {err}");
                return ExitCode::FAILURE;
            }
        };
        let show =
            |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or("off".into());
        info!(
            "skyline {} running: pickle {} udp {} plaintext {} http {}",
            env!("CARGO_PKG_VERSION"),
            show(running.pickle_addr),
            show(running.udp_addr),
            show(running.plaintext_addr),
            show(running.http_addr)
        );
        wait_for_signal().await;
        let lost = running.shutdown().await;
        info!("stopped");
        if lost > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    });
    result
}

/// Waits for SIGINT or SIGTERM; SIGHUP reopens the log file (logrotate).
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers; stopping on Ctrl-C only");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => { info!("SIGINT received"); return; }
            _ = term.recv() => { info!("SIGTERM received"); return; }
            _ = hup.recv() => {
                match skyline::telemetry::reopen() {
                    Ok(()) => info!("SIGHUP: log file reopened"),
                    Err(err) => error!("SIGHUP: cannot reopen log file: {err}"),
                }
            }
        }
    }
}

fn migrate(path: Option<&Path>) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = config.panorama.effective_url(&config.data.dir);
    let shown = skyline::telemetry::redact_url(&url);
    let result = skyline::db::connect(&url, 1).and_then(|pool| skyline::db::migrate(&pool));
    match result {
        Ok(applied) if applied.is_empty() => {
            println!("{shown}: up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            println!("{shown}: applied {}", applied.join(", "));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline migrate: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The Redis a running daemon with this config uses (its managed socket when managed).
fn daemon_redis_url(config: &Config) -> String {
    if config.redis.managed {
        let dir = std::env::current_dir()
            .unwrap_or_default()
            .join(&config.data.dir);
        format!("unix://{}", dir.join("redis").join("redis.sock").display())
    } else {
        config.redis.url.clone()
    }
}

fn alert_test(path: Option<&Path>, metric: &str) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.alerts.is_empty() {
        eprintln!("skyline alert-test: no [[alerts]] rules are configured");
        return ExitCode::from(2);
    }
    let redis_url = daemon_redis_url(&config);
    let redis_target = config.redis_target(&redis_url);
    let system = actix_rt::System::new();
    system.block_on(async move {
        // The metric's last value and graph come from Redis when it answers quickly.
        let redis = match skyline::store::redis_conn::connect(&redis_target, Duration::from_secs(3)) {
            Ok(mut conn) => {
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<String>(&mut conn);
                match tokio::time::timeout(Duration::from_secs(3), ping).await {
                    Ok(Ok(_)) => Some(conn),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        if redis.is_none() {
            eprintln!(
                "skyline alert-test: Redis {} unreachable: the test alert carries no value or graph",
                redis_target.label()
            );
        }
        let ctx = skyline::alert::Context {
            graphite_url: config.graphite.url.clone(),
            full_duration_secs: config.horizon.full_duration_secs as i64,
        };
        let host = skyline::telemetry::hostname(&config.graphite.host_name);
        let outcomes = match skyline::alert::test_alert(
            &config.alerts,
            &config.alerters,
            &ctx,
            &host,
            metric,
            redis,
        )
        .await
        {
            Ok(o) => o,
            Err(err) => {
                eprintln!("skyline alert-test: {err}");
                return ExitCode::FAILURE;
            }
        };
        if outcomes.is_empty() {
            eprintln!("skyline alert-test: no [[alerts]] rule matches {metric:?}");
            return ExitCode::from(2);
        }
        let mut failed = Vec::new();
        for o in &outcomes {
            match &o.result {
                Ok(()) => println!(
                    "{:<8} OK      {} (rule {:?})",
                    o.alerter, o.peer, o.pattern
                ),
                Err(err) => {
                    println!(
                        "{:<8} FAILED  {} (rule {:?}): {err}",
                        o.alerter, o.peer, o.pattern
                    );
                    failed.push(o.alerter);
                }
            }
        }
        if failed.is_empty() {
            println!("alert-test: {} alert(s) sent for {metric}", outcomes.len());
            ExitCode::SUCCESS
        } else {
            eprintln!("skyline alert-test: FAILED: {}", failed.join(", "));
            ExitCode::FAILURE
        }
    })
}

fn seed(path: Option<&Path>, addr: Option<String>) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let addr = addr.unwrap_or_else(|| config.horizon.pickle_bind.clone());
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        eprintln!("skyline seed: {addr:?} is not host:port");
        return ExitCode::FAILURE;
    };
    let redis = config.redis_target(&daemon_redis_url(&config));
    let mut out = std::io::stdout();
    match skyline::seed::run(addr, &redis, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("skyline seed: FAIL: {err}");
            ExitCode::FAILURE
        }
    }
}

fn logs(path: Option<&Path>, errors: bool, follow: bool) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.logging.file.is_empty() {
        eprintln!("skyline logs: [logging] file is not set; the daemon logs to stderr only");
        return ExitCode::FAILURE;
    }
    let file = match std::fs::File::open(&config.logging.file) {
        Ok(f) => f,
        Err(err) => {
            eprintln!("skyline logs: {}: {err}", config.logging.file);
            return ExitCode::FAILURE;
        }
    };
    let mut reader = std::io::BufReader::new(file);
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => {
                if !follow {
                    return ExitCode::SUCCESS;
                }
                let _ = out.flush();
                std::thread::sleep(Duration::from_millis(250));
                // logrotate: the file shrank, start again from the top
                if let (Ok(meta), Ok(pos)) = (
                    std::fs::metadata(&config.logging.file),
                    reader.stream_position(),
                ) {
                    if meta.len() < pos {
                        if let Ok(f) = std::fs::File::open(&config.logging.file) {
                            reader = std::io::BufReader::new(f);
                            let _ = reader.seek(SeekFrom::Start(0));
                        }
                    }
                }
            }
            Ok(_) => {
                if (!errors || line.contains(" ERROR ")) && out.write_all(line.as_bytes()).is_err()
                {
                    return ExitCode::SUCCESS; // reader went away (| head)
                }
            }
            Err(err) => {
                eprintln!("skyline logs: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
}

fn bench_mirage(secs: f64, ingest_points: usize) -> ExitCode {
    let mut err_out = std::io::stderr();
    match skyline::bench::mirage(secs, ingest_points, &mut err_out) {
        Ok(r) => {
            println!(
                "mirage: {:.0} checks/s per core (merge of 24 h Redis + 9 algorithms on 1,008 points, fetch excluded; {:.0} % anomalous)",
                r.checks_per_sec,
                r.anomalous_share * 100.0
            );
            println!(
                "mirage: {:.0} checks/s per core for the algorithms alone",
                r.analysis_per_sec
            );
            println!(
                "baseline (same run): Analyzer {:.0} series/s per core on 1,440 points; mirage/analyzer = {:.2}",
                r.analyzer_per_sec,
                r.checks_per_sec / r.analyzer_per_sec
            );
            println!(
                "history: {:.1} bytes per kept point encoded, {:.1} bytes per kept point in Redis (used_memory, 1,000 keys x 1,008 points)",
                r.history_encoded_bytes_per_point, r.history_redis_bytes_per_point
            );
            if let Some((before, after)) = r.ingest {
                println!(
                    "ingest: {before:.0} datapoints/s without Mirage, {after:.0} with every metric a Mirage metric (history keeper every 1 s); after/before = {:.3}",
                    after / before
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline bench mirage: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench_ingest(spec: skyline::bench::IngestSpec) -> ExitCode {
    let mut progress = progress_sink();
    let progress: &mut dyn Write = progress.as_mut();
    match skyline::bench::ingest_spec(&spec, &|_| {}, progress) {
        Ok(r) => {
            println!(
                "ingest: {} datapoints over {} metrics in {:.3} s",
                r.points, r.metrics, r.seconds
            );
            println!("ingest: {:.0} datapoints/s end to end into Redis", r.rate);
            match r.redis_append_ceiling {
                Some(c) => println!(
                    "redis-benchmark -P 64 APPEND (same machine, same run): {c:.0} requests/s; ingest/ceiling = {:.2}",
                    r.rate / c
                ),
                None => println!("redis-benchmark not available: no ceiling measured"),
            }
            println!("rss: {} kB at start, {} kB after", r.rss_kb.0, r.rss_kb.1);
            match r.redis_memory {
                Some(mem) => {
                    let per_point = |b: u64| b as f64 / r.points.max(1) as f64;
                    println!(
                        "redis: {} bytes for {} points = {:.1} bytes/point (used_memory after the load; {} bytes empty)",
                        mem.loaded,
                        r.points,
                        per_point(mem.loaded),
                        mem.empty
                    );
                    println!(
                        "redis after one Roomba pass: {} bytes for {} points = {:.1} bytes/point ({} keys compacted, {} rewritten sorted)",
                        mem.after_roomba,
                        r.points,
                        per_point(mem.after_roomba),
                        mem.compacted,
                        mem.sorted
                    );
                }
                None => println!("redis: used_memory could not be read"),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline bench ingest: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `a` and `b` side by side with `b / a`.
fn side_by_side(what: &str, unit: &str, a: f64, b: f64) {
    println!(
        "{what:<44} {a:>14.2} {b:>14.2} {unit:<14} cluster/one = {:.2}",
        b / a
    );
}

fn bench_ingest_cluster(spec: skyline::bench::IngestSpec, masters: usize) -> ExitCode {
    let mut progress = progress_sink();
    let progress: &mut dyn Write = progress.as_mut();
    match skyline::bench::ingest_cluster(&spec, masters, progress) {
        Ok((one, many)) => {
            println!(
                "ingest: {} datapoints over {} metrics, {} connections, same run: one redis-server, then a {masters}-master Redis Cluster",
                one.points, one.metrics, spec.connections
            );
            println!("{:<44} {:>14} {:>14}", "", "one redis", "cluster");
            side_by_side("seconds", "s", one.seconds, many.seconds);
            side_by_side("throughput", "datapoints/s", one.rate, many.rate);
            side_by_side(
                "daemon CPU per datapoint",
                "µs",
                one.cpu_us_per_point(),
                many.cpu_us_per_point(),
            );
            if let (Some(a), Some(b)) =
                (one.redis_cpu_us_per_point(), many.redis_cpu_us_per_point())
            {
                side_by_side("Redis CPU per datapoint (all nodes)", "µs", a, b);
            }
            if let (Some(a), Some(b)) = (one.net_bytes_per_point(), many.net_bytes_per_point()) {
                side_by_side("bytes to Redis per datapoint", "B", a, b);
            }
            if let (Some(a), Some(b)) = (one.redis_memory, many.redis_memory) {
                let per = |m: &skyline::bench::RedisMemory, r: &skyline::bench::IngestReport| {
                    m.after_roomba.saturating_sub(m.empty) as f64 / r.points.max(1) as f64
                };
                side_by_side(
                    "Redis memory per datapoint (after Roomba)",
                    "B",
                    per(&a, &one),
                    per(&b, &many),
                );
            }
            println!(
                "cluster overhead: {:+.2} µs wall per datapoint, {:+.2} µs daemon CPU per datapoint",
                1e6 / many.rate - 1e6 / one.rate,
                many.cpu_us_per_point() - one.cpu_us_per_point()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline bench ingest: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench_analyze_cluster(
    metrics: usize,
    cycles: usize,
    workers: usize,
    masters: usize,
) -> ExitCode {
    let mut progress = progress_sink();
    let progress: &mut dyn Write = progress.as_mut();
    match skyline::bench::analyze_cluster(metrics, cycles, workers, masters, progress) {
        Ok((one, many)) => {
            println!("one redis-server:\n{one}");
            println!("{masters}-master Redis Cluster:\n{many}");
            println!(
                "analyze: {} metrics x {} points, {} workers, same run",
                one.metrics, one.points, one.workers
            );
            println!("{:<44} {:>14} {:>14}", "", "one redis", "cluster");
            side_by_side("best cycle", "s", one.best(), many.best());
            side_by_side(
                "wall per metric (best cycle)",
                "µs",
                one.us_per_metric(),
                many.us_per_metric(),
            );
            let per_metric =
                |secs: f64, r: &skyline::bench::AnalyzeReport| secs * 1e6 / r.metrics.max(1) as f64;
            side_by_side(
                "daemon CPU per metric per cycle",
                "µs",
                per_metric(one.cpu_secs_per_cycle, &one),
                per_metric(many.cpu_secs_per_cycle, &many),
            );
            if let (Some(a), Some(b)) =
                (one.redis_cpu_secs_per_cycle, many.redis_cpu_secs_per_cycle)
            {
                side_by_side(
                    "Redis CPU per metric per cycle (all nodes)",
                    "µs",
                    per_metric(a, &one),
                    per_metric(b, &many),
                );
            }
            if let (Some(a), Some(b)) = (one.redis_net_out_per_cycle, many.redis_net_out_per_cycle)
            {
                side_by_side(
                    "bytes from Redis per metric per cycle",
                    "B",
                    a / one.metrics.max(1) as f64,
                    b / many.metrics.max(1) as f64,
                );
            }
            if let (Some(a), Some(b)) = (one.redis_bytes_per_metric, many.redis_bytes_per_metric) {
                side_by_side("Redis memory per 1,440-point metric", "B", a, b);
            }
            println!(
                "cluster overhead: {:+.2} µs wall per metric per cycle, {:+.2} µs daemon CPU per metric per cycle",
                many.us_per_metric() - one.us_per_metric(),
                per_metric(many.cpu_secs_per_cycle, &many) - per_metric(one.cpu_secs_per_cycle, &one)
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline bench analyze: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench_ingest_stream(
    points: usize,
    metrics: usize,
    connections: usize,
    history: usize,
) -> ExitCode {
    let mut progress = progress_sink();
    let progress: &mut dyn Write = progress.as_mut();
    match skyline::bench::ingest_stream(points, metrics, connections, history, progress) {
        Ok(r) => {
            println!(
                "ingest: {} datapoints over {} metrics, {} points of history each, analyzer every 1 s",
                r.on.points, r.on.metrics, r.history
            );
            println!(
                "ingest, Skyline's algorithms only: {:.0} datapoints/s ({:.3} s)",
                r.off.rate, r.off.seconds
            );
            println!(
                "ingest, Skyline + stream detector: {:.0} datapoints/s ({:.3} s); on/off = {:.2}",
                r.on.rate,
                r.on.seconds,
                r.on.rate / r.off.rate
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline bench ingest: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench_flux(opts: skyline::bench::FluxBenchOptions) -> ExitCode {
    let mut out = std::io::stdout();
    match skyline::bench::flux(&opts, &mut out) {
        Ok(r) => {
            println!(
                "flux: {} requests in {:.2} s ({:.0} req/s), {} non-2xx, {} socket errors",
                r.requests,
                r.seconds,
                r.requests as f64 / r.seconds,
                r.non_2xx,
                r.socket_errors
            );
            println!(
                "flux: {} datapoints accepted = {:.0} datapoints/s",
                r.accepted,
                r.accepted as f64 / r.seconds
            );
            println!(
                "flux: {} forwarded to the pickle sink in {:.2} s = {:.0} datapoints/s ({} deduplicated); {} written to Redis by the metric actors",
                r.forwarded,
                r.forward_seconds,
                r.forwarded as f64 / r.forward_seconds,
                r.deduplicated,
                r.horizon_written
            );
            println!(
                "flux: latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r.latency_us[0] as f64 / 1000.0,
                r.latency_us[1] as f64 / 1000.0,
                r.latency_us[2] as f64 / 1000.0,
                r.latency_us[3] as f64 / 1000.0
            );
            println!(
                "load average before: {}; after: {}; cores: {}",
                r.load.0,
                r.load.1,
                std::thread::available_parallelism().map_or(0, |n| n.get())
            );
            if r.forwarded + r.deduplicated < r.accepted {
                eprintln!("skyline bench flux: FAIL: not every accepted datapoint was forwarded");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline bench flux: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench_webapp(opts: skyline::bench::WebappBenchOptions, phases_csv: Option<PathBuf>) -> ExitCode {
    let mut out = std::io::stdout();
    match skyline::bench::webapp(&opts, &mut out) {
        Ok(r) => {
            let mut ok = true;
            for (i, run) in r.runs.iter().enumerate() {
                println!(
                    "{}: {} requests in {:.2} s = {:.0} req/s ({} bytes each), {} non-2xx, {} socket errors, daemon CPU {:.1} µs/request",
                    run.name,
                    run.requests,
                    run.seconds,
                    run.rate(),
                    run.body_bytes,
                    run.non_2xx,
                    run.socket_errors,
                    r.cpu_us_per_request.get(i).copied().unwrap_or(0.0)
                );
                println!(
                    "{}: latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    run.name,
                    run.latency_us[0] as f64 / 1000.0,
                    run.latency_us[1] as f64 / 1000.0,
                    run.latency_us[2] as f64 / 1000.0,
                    run.latency_us[3] as f64 / 1000.0
                );
                ok &= run.non_2xx == 0 && run.socket_errors == 0;
            }
            // Monitor levels: each level against level 0, pair by pair.
            let spread = |s: &skyline::bench::Spread, unit: &str, digits: usize| {
                format!(
                    "median {:.d$}{unit} [IQR {:.d$}..{:.d$}, min {:.d$}, max {:.d$}]",
                    s.median,
                    s.q1,
                    s.q3,
                    s.min,
                    s.max,
                    d = digits
                )
            };
            if let (Some(path), false) = (&phases_csv, r.phased.is_empty()) {
                let csv = skyline::bench::phased::phases_csv(&opts.monitor_levels, &r.phased);
                if let Err(err) = std::fs::write(path, csv) {
                    eprintln!("skyline bench webapp: writing {}: {err}", path.display());
                    ok = false;
                }
            }
            for t in &r.phased {
                for line in skyline::bench::phased::report_lines(&opts.monitor_levels, t) {
                    println!("{line}");
                }
                ok &= t.non_2xx == 0 && t.socket_errors == 0;
            }
            for c in skyline::bench::level_comparisons(&r) {
                println!(
                    "{}, monitor level {} vs level 0 over {} pair(s): throughput {}; p99 {}; CPU per request {} = {}",
                    c.target,
                    c.level,
                    c.throughput_ratio.n,
                    spread(&c.throughput_ratio, "×", 3),
                    spread(&c.p99_delta_ms, " ms", 3),
                    spread(&c.cpu_ratio, "×", 3),
                    spread(&c.cpu_delta_us, " µs", 2),
                );
            }
            let cpu_of = |i: usize| r.cpu_us_per_request.get(i).copied().unwrap_or(0.0);
            // Interleaved levels (0,2,3,0,2,3,…): per target and level, the medians of its
            // runs, and each level's medians against level 0's.
            let mut groups: Vec<(String, String, Vec<usize>)> = Vec::new();
            for (i, run) in r.runs.iter().enumerate() {
                let Some((target, level)) = run.name.split_once(", monitor level ") else {
                    continue;
                };
                match groups.iter_mut().find(|g| g.0 == target && g.1 == level) {
                    Some(g) => g.2.push(i),
                    None => groups.push((target.to_string(), level.to_string(), vec![i])),
                }
            }
            let median = |mut v: Vec<f64>| -> f64 {
                v.sort_by(|a, b| a.total_cmp(b));
                let n = v.len();
                if n == 0 {
                    0.0
                } else if n % 2 == 1 {
                    v[n / 2]
                } else {
                    (v[n / 2 - 1] + v[n / 2]) / 2.0
                }
            };
            let medians = |runs: &[usize]| -> (f64, f64, f64) {
                (
                    median(runs.iter().map(|&i| r.runs[i].rate()).collect()),
                    median(
                        runs.iter()
                            .map(|&i| r.runs[i].latency_us[2] as f64 / 1000.0)
                            .collect(),
                    ),
                    median(runs.iter().map(|&i| cpu_of(i)).collect()),
                )
            };
            for (target, level, runs) in &groups {
                let (rate, p99, cpu) = medians(runs);
                print!(
                    "median of {} run(s): {target}, monitor level {level}: {rate:.0} req/s, p99 {p99:.3} ms, daemon CPU {cpu:.2} µs/request",
                    runs.len()
                );
                match groups.iter().find(|g| &g.0 == target && g.1 == "0") {
                    Some(base) if level != "0" => {
                        let (brate, bp99, bcpu) = medians(&base.2);
                        println!(
                            "; against level 0's medians: throughput {:.3} × ({:+.1} %), p99 {:+.3} ms, CPU per request {:.3} × ({:+.2} µs)",
                            rate / brate.max(1e-9),
                            (rate / brate.max(1e-9) - 1.0) * 100.0,
                            p99 - bp99,
                            cpu / bcpu.max(1e-9),
                            cpu - bcpu
                        );
                    }
                    _ => println!(),
                }
            }
            println!(
                "load average before: {}; after: {}; cores: {}; {}{}",
                r.load.0,
                r.load.1,
                std::thread::available_parallelism().map_or(0, |n| n.get()),
                if r.pinned && !r.phased.is_empty() {
                    "daemon pinned to CPU 0, the load and redis-server to CPU 1"
                } else if r.pinned {
                    "daemon pinned to CPU 0, wrk and redis-server to CPU 1"
                } else {
                    "not pinned"
                },
                if opts.interleave && !opts.monitor_levels.is_empty() {
                    "; one daemon, levels interleaved"
                } else {
                    ""
                }
            );
            if !ok {
                eprintln!("skyline bench webapp: FAIL: errors during the run");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline bench webapp: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `skyline analyze --csv FILE --detector stream`: one `timestamp,value,score` line per row.
fn analyze_stream(csv: Option<PathBuf>) -> ExitCode {
    let Some(csv) = csv else {
        eprintln!("skyline analyze: --detector stream needs --csv FILE");
        return ExitCode::from(2);
    };
    match skyline::analyze::crucible::stream_csv(&csv) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline analyze: {err}");
            ExitCode::from(2)
        }
    }
}

fn analyze(
    path: Option<&Path>,
    input: Option<PathBuf>,
    csv: Option<PathBuf>,
    now: Option<f64>,
    mirage_hours: Option<u64>,
) -> ExitCode {
    use skyline::analyze::crucible;
    // The config's [analyzer] section applies when a config file is present.
    let config = match config::resolve_path(path) {
        Some(_) => match load_config(path) {
            Ok(c) => c,
            Err(code) => return code,
        },
        None => Config::default(),
    };
    let settings = config
        .analyzer
        .algorithm_settings(config.horizon.full_duration_secs);
    if let (Some(csv), Some(hours)) = (&csv, mirage_hours) {
        return mirage_csv(&config, csv, hours, now);
    }
    if let Some(csv) = csv {
        return match crucible::analyze_csv(&csv, now, &settings) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("skyline analyze: {err}");
                ExitCode::from(2)
            }
        };
    }
    let Some(input) = input else {
        eprintln!("skyline analyze: give --input FILE (JSON Lines) or --csv FILE");
        return ExitCode::from(2);
    };
    let file = match std::fs::File::open(&input) {
        Ok(f) => std::io::BufReader::new(f),
        Err(err) => {
            eprintln!("skyline analyze: {}: {err}", input.display());
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    match crucible::analyze_jsonl(file, out, &settings) {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            match err.line() {
                Some(line) => eprintln!("skyline analyze: {}:{line}: {err}", input.display()),
                None => eprintln!("skyline analyze: {err}"),
            }
            ExitCode::from(2)
        }
    }
}

/// `skyline analyze --csv FILE --mirage-hours H`.
fn mirage_csv(config: &Config, csv: &Path, hours: u64, now: Option<f64>) -> ExitCode {
    use skyline::mirage::analysis::{render_report, MirageAnalysis};
    let file = match std::fs::File::open(csv) {
        Ok(f) => std::io::BufReader::new(f),
        Err(err) => {
            eprintln!("skyline analyze: {}: {err}", csv.display());
            return ExitCode::from(2);
        }
    };
    let mut series = match skyline::analyze::crucible::parse_csv(file, csv) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("skyline analyze: {err}");
            return ExitCode::from(2);
        }
    };
    skyline::mirage::analysis::prepare(&mut series);
    let now = now.or_else(|| series.last().map(|p| p.0)).unwrap_or(0.0);
    let s = MirageAnalysis {
        algorithms: config.mirage.algorithm_list(),
        consensus: config.mirage.consensus,
        min_tolerable_length: config.mirage.min_tolerable_length,
    };
    print!(
        "{}",
        render_report(&csv.display().to_string(), &series, hours, now, &s)
    );
    ExitCode::SUCCESS
}

#[allow(clippy::too_many_arguments)] // reason: one parameter per CLI flag
fn nab(
    data: &Path,
    out: &Path,
    algorithms: Option<Vec<String>>,
    consensus: Option<usize>,
    expiry: Option<i64>,
    window: Option<i64>,
    variant: &str,
    detector: &str,
) -> ExitCode {
    use skyline::analyze::nab::{run_nab, NabEngine, NabOptions, NabVariant};
    let engine = match detector {
        "skyline" => NabEngine::Skyline,
        "stream" => NabEngine::Stream(skyline::analyze::stream::StreamParams::default()),
        "any" | "all" => NabEngine::Combined(
            skyline::analyze::streaming::Combine::parse(detector)
                .unwrap_or(skyline::analyze::streaming::Combine::Any),
            skyline::analyze::stream::StreamParams::default(),
        ),
        other => {
            eprintln!("skyline nab: --detector must be skyline, stream, any or all, not {other:?}");
            return ExitCode::from(2);
        }
    };
    let mut opts = NabOptions {
        engine,
        ..NabOptions::default()
    };
    if let Some(names) = algorithms {
        let mut parsed = Vec::new();
        for n in names {
            match n.trim().parse() {
                Ok(a) => parsed.push(a),
                Err(err) => {
                    eprintln!("skyline nab: {err}");
                    return ExitCode::from(2);
                }
            }
        }
        opts.algorithms = parsed;
    }
    if let Some(c) = consensus {
        opts.consensus = c;
    }
    if let Some(e) = expiry {
        opts.expiry = e;
    }
    opts.window = window;
    opts.variant = match variant {
        "reference" => NabVariant::Reference,
        "analyzer" => NabVariant::Analyzer,
        other => {
            eprintln!("skyline nab: --variant must be reference or analyzer, not {other:?}");
            return ExitCode::from(2);
        }
    };
    match run_nab(data, out, &opts) {
        Ok(report) => {
            println!(
                "nab: {} files, {} rows, {} detections in {:.1} s; results in {}",
                report.files.len(),
                report.rows(),
                report.detections(),
                report.elapsed.as_secs_f64(),
                out.display()
            );
            println!(
                "score with: python3 ../shared/nab/nab_score.py --data {} --labels ../shared/nab/labels/combined_windows.json --results {}",
                data.display(),
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline nab: {err}");
            ExitCode::FAILURE
        }
    }
}

fn bench_analyze(metrics: usize, cycles: usize, workers: usize, stream: bool) -> ExitCode {
    let mut progress = progress_sink();
    let progress: &mut dyn Write = progress.as_mut();
    match skyline::bench::analyze_with(metrics, cycles, workers, stream, progress) {
        Ok(r) => {
            println!("{r}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("skyline bench analyze: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Where a bench prints its progress: stderr when it is a terminal, nowhere otherwise (so
/// logs and pipes get only the figures).
fn progress_sink() -> Box<dyn Write> {
    if std::io::stderr().is_terminal() {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::sink())
    }
}
