//! The `Thunder` actor: every `check_interval_secs` it observes the daemon (counters, a Redis
//! PING, a database `SELECT 1` on a blocking thread, the spool gauges), feeds
//! [`super::checks::Checks`] and sends each resulting alert or recovery to its recipients as a
//! [`SystemAlert`] with `do_send`. A round still running when the next tick comes is not
//! doubled (the tick is skipped); each probe has a 5 s (Redis) or 10 s (database) cap.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::redis_conn::RedisConn;
use actix::prelude::*;
use log::{error, info};

use super::checks::{Checks, Observation, Step};
use crate::alert::{SystemAlert, SystemStatus};
use crate::telemetry::metrics as m;

/// A monotonic count of datapoints received (handed in by `app`).
pub type ReceivedCounter = Box<dyn Fn() -> u64 + Send>;

/// What Thunder probes.
pub struct Probes {
    /// Datapoints received so far.
    pub received: ReceivedCounter,
    /// Redis to PING (None: not checked).
    pub redis: Option<RedisConn>,
    /// The Panorama database (None: not checked).
    pub database: Option<crate::db::Pool>,
}

/// The self-monitoring actor.
pub struct Thunder {
    checks: Checks,
    probes: Probes,
    interval: Duration,
    recovery_notices: bool,
    sinks: Vec<Recipient<SystemAlert>>,
    host: String,
    started: Instant,
    busy: bool,
}

impl Thunder {
    /// Thunder with its checks, probes and recipients.
    pub fn new(
        checks: Checks,
        probes: Probes,
        interval: Duration,
        recovery_notices: bool,
        sinks: Vec<Recipient<SystemAlert>>,
        host: String,
    ) -> Self {
        Thunder {
            checks,
            probes,
            interval,
            recovery_notices,
            sinks,
            host,
            started: Instant::now(),
            busy: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let redis = self.probes.redis.clone();
        let db = self.probes.database.clone();
        let received = (self.probes.received)();
        let probe = async move {
            let redis = match redis {
                Some(mut conn) => {
                    let cmd = redis::cmd("PING");
                    let ping = cmd.query_async::<String>(&mut conn);
                    Some(
                        match tokio::time::timeout(Duration::from_secs(5), ping).await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("no answer to PING within 5 s".to_string()),
                        },
                    )
                }
                None => None,
            };
            let database = match db {
                Some(pool) => {
                    let ping = tokio::task::spawn_blocking(move || crate::db::ping(&pool));
                    Some(
                        match tokio::time::timeout(Duration::from_secs(10), ping).await {
                            Ok(Ok(Ok(()))) => Ok(()),
                            Ok(Ok(Err(e))) => Err(e.to_string()),
                            Ok(Err(e)) => Err(format!("probe failed: {e}")),
                            Err(_) => Err("no answer within 10 s".to_string()),
                        },
                    )
                }
                None => None,
            };
            (redis, database)
        };
        ctx.spawn(
            probe
                .into_actor(self)
                .map(move |(redis, database), act, _| {
                    act.busy = false;
                    let o = Observation {
                        received,
                        analyzer_runs: m::ANALYZER_RUNS.get() + m::ANALYZER_ERRORS.get(),
                        analyzer_overruns: m::ANALYZER_OVERRUNS.get(),
                        analyzer_run_time_ms: m::ANALYZER_RUN_TIME_MS.get(),
                        redis,
                        database,
                        panorama_spool: m::PANORAMA_SPOOL_DEPTH.get(),
                        flux_spool_bytes: m::FLUX_SPOOL_BYTES.get(),
                    };
                    let now = act.started.elapsed().as_secs_f64();
                    let events = act.checks.evaluate(now, &o);
                    m::THUNDER_FAILING.set(act.checks.failing() as i64);
                    let ts = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    for e in events {
                        let status = match e.step {
                            Step::Alert => {
                                m::THUNDER_ALERTS.inc();
                                error!("{}: {}", e.check, e.summary);
                                SystemStatus::Firing
                            }
                            Step::Recover => {
                                m::THUNDER_RECOVERIES.inc();
                                info!("{} recovered: {}", e.check, e.summary);
                                if !act.recovery_notices {
                                    continue;
                                }
                                SystemStatus::Recovered
                            }
                            Step::Quiet => continue,
                        };
                        for s in &act.sinks {
                            s.do_send(SystemAlert {
                                check: e.check.to_string(),
                                status,
                                summary: e.summary.clone(),
                                host: act.host.clone(),
                                timestamp: ts,
                            });
                        }
                    }
                }),
        );
    }
}

impl Actor for Thunder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!("checking every {:?}", self.interval);
        ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
    }
}
