//! `UdpListener` actor: Skyline's msgpack-over-UDP protocol, one `[name, [ts, value]]` per
//! datagram. Unlike Skyline (which truncated at 1,024 bytes and whose listener died on an
//! undecodable packet), datagrams up to 64 KiB are read and a bad one costs only itself:
//! counted, logged at most once a minute with the count (a [`LogLimiter`]). A datapoint
//! stamped more than `max_future_secs` ahead of the clock is refused the same way.
//!
//! Backpressure (edge to the metric actors): UDP has no flow control, so the listener never
//! waits: `try_ingest`, and a full mailbox drops the datapoint, counted as
//! `dropped_queue_full` (Skyline's `udp_chunks_dropped`).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::{error, info};
use tokio::sync::watch;

use super::future::is_future;
use super::tcp::StopListening;
use crate::model::msgpack::decode_datagram;
use crate::model::validate_metric_name;
use crate::store::Ingestor;
use crate::telemetry::metrics as m;
use crate::telemetry::ratelimit::LogLimiter;

static LOG_RECV: LogLimiter = LogLimiter::new();
static LOG_BAD: LogLimiter = LogLimiter::new();
static LOG_FUTURE: LogLimiter = LogLimiter::new();

/// Datagrams decoded before their datapoints are handed on together.
const BATCH: usize = 256;

/// The UDP listener.
pub struct UdpListener {
    socket: Option<std::net::UdpSocket>,
    addr: SocketAddr,
    ingestor: Ingestor,
    shutdown: watch::Sender<bool>,
    max_future_secs: u64,
}

impl UdpListener {
    /// Wraps an already bound socket; datapoints stamped more than `max_future_secs` ahead
    /// of the clock are refused.
    pub fn new(
        socket: std::net::UdpSocket,
        ingestor: Ingestor,
        max_future_secs: u64,
    ) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        Ok(UdpListener {
            socket: Some(socket),
            addr,
            ingestor,
            shutdown: watch::channel(false).0,
            max_future_secs,
        })
    }
}

impl Actor for UdpListener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(std_socket) = self.socket.take() else {
            return;
        };
        let socket = match tokio::net::UdpSocket::from_std(std_socket) {
            Ok(s) => s,
            Err(err) => {
                error!("cannot use UDP socket {}: {err}", self.addr);
                ctx.stop();
                return;
            }
        };
        info!("udp msgpack listener on {}", self.addr);
        let ingestor = self.ingestor.clone();
        let mut stop = self.shutdown.subscribe();
        let max_future_secs = self.max_future_secs;
        ctx.spawn(
            async move {
                let mut buf = vec![0u8; 65_536];
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    let (n, peer) = tokio::select! {
                        r = socket.recv_from(&mut buf) => match r {
                            Ok(x) => x,
                            Err(err) => {
                                LOG_RECV.warn(format_args!("udp receive failed: {err}"));
                                continue;
                            }
                        },
                        _ = stop.changed() => break,
                    };
                    m::FRAMES_RECEIVED.inc();
                    match decode_datagram(&buf[..n]) {
                        Ok(dp) if validate_metric_name(&dp.metric).is_err() => {
                            m::DROPPED_BAD_NAME.inc();
                        }
                        Ok(dp)
                            if !dp.point.timestamp.is_finite() || !dp.point.value.is_finite() =>
                        {
                            m::DROPPED_NON_FINITE.inc();
                        }
                        Ok(dp) if is_future(&dp, now(), max_future_secs) => {
                            m::DROPPED_FUTURE.inc();
                            LOG_FUTURE.warn(format_args!(
                                "udp datapoint for {:?} from {peer} refused: stamped more than \
                                 {max_future_secs} s in the future (max_future_secs)",
                                dp.metric
                            ));
                        }
                        Ok(dp) => batch.push(dp),
                        Err(err) => {
                            m::DROPPED_DECODE.inc();
                            LOG_BAD.error(format_args!("udp datagram from {peer} refused: {err}"));
                        }
                    }
                    // Hand on when the batch is full or no further datagram is queued.
                    let more_waiting = socket.try_peek_sender().is_ok();
                    if batch.len() >= BATCH || (!more_waiting && !batch.is_empty()) {
                        let points = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        m::DATAPOINTS_RECEIVED.add(points.len() as u64);
                        let dropped = ingestor.try_ingest(points);
                        m::DROPPED_QUEUE_FULL.add(dropped as u64);
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<StopListening> for UdpListener {
    type Result = ();

    fn handle(&mut self, _: StopListening, _ctx: &mut Self::Context) {
        let _ = self.shutdown.send(true);
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
