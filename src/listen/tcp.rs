//! `TcpListener` actor: accepts Graphite pickle (length-prefixed) or plaintext connections and
//! serves each on one of the worker arbiters (round robin), many at a time.
//!
//! Per connection, pickle: read the 4-byte big-endian length; a length over `max_frame_bytes`
//! closes the connection (counted, logged with the peer); otherwise read the frame and decode
//! it with the plain-data decoder. A frame that fails to decode costs only that frame: it is
//! counted, the first one per connection is logged at ERROR with the peer, and reading goes on.
//! Plaintext: lines up to 64 KiB; a bad line is counted (first one logged), a longer line
//! closes the connection.
//!
//! Backpressure (edge to the metric actors): `Ingestor::ingest(..).await` waits for mailbox
//! space, and before each read the connection waits while the metric actors are saturated
//! (Redis down), so the sender's TCP window closes and carbon-relay queues on its side.
//! Nothing accepted is dropped here.
//!
//! Shutdown: [`StopListening`] closes the listening socket, tells every connection to stop
//! after the frame it is reading, and replies when all have ended (or after 5 s).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::{debug, error, info, warn};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::pickle::decode_datapoints;
use super::plaintext::{parse_line, LineError};
use crate::model::Datapoint;
use crate::store::Ingestor;
use crate::telemetry::metrics as m;

/// Longest plaintext line accepted.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Plaintext datapoints are handed on in batches of up to this many.
const LINE_BATCH: usize = 1000;

/// Which protocol a TCP listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Graphite pickle: 4-byte big-endian length, then a pickled list.
    Pickle,
    /// Graphite plaintext lines.
    Plaintext,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Pickle => "pickle",
            Protocol::Plaintext => "plaintext",
        }
    }
}

/// Close the listening socket and the connections; replies when they have all ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopListening;

/// Settings of one TCP listener.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// Protocol spoken.
    pub protocol: Protocol,
    /// Largest pickle frame.
    pub max_frame_bytes: usize,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
}

/// One listening socket.
pub struct TcpListener {
    /// The bound socket, taken by `started`.
    socket: Option<std::net::TcpListener>,
    addr: SocketAddr,
    settings: TcpSettings,
    ingestor: Ingestor,
    /// Arbiters the connections are spread over.
    workers: Vec<ArbiterHandle>,
    /// Tells the accept loop and every connection to stop.
    shutdown: watch::Sender<bool>,
    /// Open connections (they decrement it when they end).
    open: Arc<AtomicUsize>,
}

impl TcpListener {
    /// Wraps an already bound socket (bound by the caller so it can report the real address).
    pub fn new(
        socket: std::net::TcpListener,
        settings: TcpSettings,
        ingestor: Ingestor,
        workers: Vec<ArbiterHandle>,
    ) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        Ok(TcpListener {
            socket: Some(socket),
            addr,
            settings,
            ingestor,
            workers,
            shutdown: watch::channel(false).0,
            open: Arc::new(AtomicUsize::new(0)),
        })
    }
}

impl TcpListener {
    /// The address actually bound (the real port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Actor for TcpListener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(std_socket) = self.socket.take() else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(std_socket) {
            Ok(l) => l,
            Err(err) => {
                error!("cannot use listener socket {}: {err}", self.addr);
                ctx.stop();
                return;
            }
        };
        info!(
            "{} listener on {}",
            self.settings.protocol.name(),
            self.addr
        );
        let mut stop = self.shutdown.subscribe();
        let settings = self.settings.clone();
        let ingestor = self.ingestor.clone();
        let workers = self.workers.clone();
        let open = self.open.clone();
        let shutdown = self.shutdown.clone();
        ctx.spawn(
            async move {
                let mut next = 0usize;
                loop {
                    let accepted = tokio::select! {
                        r = listener.accept() => r,
                        _ = stop.changed() => break,
                    };
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(err) => {
                            // EMFILE and friends: back off instead of spinning.
                            warn!("accept failed: {err}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    m::CONNECTIONS_ACCEPTED.inc();
                    if open.load(Ordering::Relaxed) >= settings.max_connections {
                        m::CONNECTIONS_REFUSED.inc();
                        warn!("refusing connection from {peer}: max_connections reached");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    open.fetch_add(1, Ordering::Relaxed);
                    m::OPEN_CONNECTIONS.add(1);
                    let conn = Connection {
                        peer,
                        settings: settings.clone(),
                        ingestor: ingestor.clone(),
                        stop: shutdown.subscribe(),
                        open: open.clone(),
                    };
                    let fut = conn.run(stream);
                    if workers.is_empty() {
                        actix_rt::spawn(fut);
                    } else {
                        workers[next % workers.len()].spawn(fut);
                        next += 1;
                    }
                }
                debug!("accept loop ended");
            }
            .into_actor(self),
        );
    }
}

impl Handler<StopListening> for TcpListener {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopListening, _ctx: &mut Self::Context) -> Self::Result {
        let _ = self.shutdown.send(true);
        let open = self.open.clone();
        let addr = self.addr;
        Box::pin(async move {
            for _ in 0..250 {
                if open.load(Ordering::Relaxed) == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            warn!(
                "{} connections on {addr} still open after 5 s at shutdown",
                open.load(Ordering::Relaxed)
            );
        })
    }
}

/// One client connection.
struct Connection {
    peer: SocketAddr,
    settings: TcpSettings,
    ingestor: Ingestor,
    stop: watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
}

/// Per-connection error tally, logged once at the end.
#[derive(Default)]
struct Tally {
    bad_frames: u64,
    bad_items: u64,
    points: u64,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        debug!("connection from {}", self.peer);
        let mut tally = Tally::default();
        let reader = BufReader::with_capacity(64 * 1024, stream);
        match self.settings.protocol {
            Protocol::Pickle => self.pickle(reader, &mut tally).await,
            Protocol::Plaintext => self.plaintext(reader, &mut tally).await,
        }
        if tally.bad_frames > 0 || tally.bad_items > 0 {
            warn!(
                "connection from {} closed: {} datapoints, {} refused frames/lines, {} refused items",
                self.peer, tally.points, tally.bad_frames, tally.bad_items
            );
        } else {
            debug!(
                "connection from {} closed: {} datapoints",
                self.peer, tally.points
            );
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
        m::OPEN_CONNECTIONS.add(-1);
    }

    /// Waits while the metric actors cannot take more; false when shutting down.
    async fn wait_for_room(&mut self) -> bool {
        while self.ingestor.saturated() {
            if *self.stop.borrow() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        !*self.stop.borrow()
    }

    async fn hand_on(&self, points: Vec<Datapoint>, tally: &mut Tally) -> bool {
        tally.points += points.len() as u64;
        m::DATAPOINTS_RECEIVED.add(points.len() as u64);
        if let Err(err) = self.ingestor.ingest(points).await {
            error!("connection from {}: {err}", self.peer);
            return false;
        }
        true
    }

    async fn pickle(&mut self, mut reader: BufReader<TcpStream>, tally: &mut Tally) {
        let mut frame = Vec::new();
        loop {
            if !self.wait_for_room().await {
                return;
            }
            let len = tokio::select! {
                r = reader.read_u32() => match r {
                    Ok(n) => n as usize,
                    Err(_) => return, // EOF or reset: the normal end of a connection
                },
                _ = self.stop.changed() => return,
            };
            if len > self.settings.max_frame_bytes {
                m::DROPPED_OVERSIZE.inc();
                error!(
                    "pickle frame of {len} bytes from {} is over max_frame_bytes ({}); closing the connection",
                    self.peer, self.settings.max_frame_bytes
                );
                return;
            }
            frame.resize(len, 0);
            let read = tokio::time::timeout(Duration::from_secs(60), reader.read_exact(&mut frame));
            match read.await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => {
                    if len > 0 {
                        m::DROPPED_DECODE.inc();
                        warn!(
                            "connection from {} ended inside a {len}-byte frame",
                            self.peer
                        );
                    }
                    return;
                }
            }
            m::FRAMES_RECEIVED.inc();
            match decode_datapoints(&frame) {
                Ok(decoded) => {
                    let bad = decoded.bad_shape + decoded.bad_name + decoded.non_finite;
                    if bad > 0 {
                        m::DROPPED_BAD_SHAPE.add(decoded.bad_shape);
                        m::DROPPED_BAD_NAME.add(decoded.bad_name);
                        m::DROPPED_NON_FINITE.add(decoded.non_finite);
                        if tally.bad_items == 0 {
                            error!(
                                "pickle frame from {}: {bad} datapoints refused (bad shape, name or non-finite value)",
                                self.peer
                            );
                        }
                        tally.bad_items += bad;
                    }
                    if !self.hand_on(decoded.points, tally).await {
                        return;
                    }
                }
                Err(err) => {
                    m::DROPPED_DECODE.inc();
                    if tally.bad_frames == 0 {
                        error!("pickle frame from {} refused: {err}", self.peer);
                    }
                    tally.bad_frames += 1;
                }
            }
        }
    }

    async fn plaintext(&mut self, mut reader: BufReader<TcpStream>, tally: &mut Tally) {
        let mut line = Vec::with_capacity(256);
        let mut batch = Vec::with_capacity(LINE_BATCH);
        loop {
            if !self.wait_for_room().await {
                break;
            }
            line.clear();
            let mut limited = (&mut reader).take(MAX_LINE_BYTES as u64 + 1);
            let n = tokio::select! {
                r = limited.read_until(b'\n', &mut line) => match r {
                    Ok(n) => n,
                    Err(_) => break,
                },
                _ = self.stop.changed() => break,
            };
            if n == 0 {
                break;
            }
            if line.len() > MAX_LINE_BYTES {
                m::DROPPED_DECODE.inc();
                error!(
                    "plaintext line from {} longer than {MAX_LINE_BYTES} bytes; closing",
                    self.peer
                );
                break;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if !text.iter().all(u8::is_ascii_whitespace) {
                m::FRAMES_RECEIVED.inc();
                match parse_line(text, now()) {
                    Ok(dp) => batch.push(dp),
                    Err(err) => {
                        match err {
                            LineError::Shape => m::DROPPED_DECODE.inc(),
                            LineError::Name => m::DROPPED_BAD_NAME.inc(),
                            LineError::NonFinite => m::DROPPED_NON_FINITE.inc(),
                        }
                        if tally.bad_frames == 0 {
                            error!(
                                "plaintext line from {} refused ({err:?}): {:?}",
                                self.peer,
                                String::from_utf8_lossy(&text[..text.len().min(200)])
                            );
                        }
                        tally.bad_frames += 1;
                    }
                }
            }
            // Hand on a batch when it is full or nothing more is waiting in the buffer.
            if batch.len() >= LINE_BATCH || (reader.buffer().is_empty() && !batch.is_empty()) {
                let points = std::mem::replace(&mut batch, Vec::with_capacity(LINE_BATCH));
                if !self.hand_on(points, tally).await {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            self.hand_on(batch, tally).await;
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
