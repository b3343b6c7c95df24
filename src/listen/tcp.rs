//! `TcpListener` actor: accepts Graphite pickle (length-prefixed) or plaintext connections and
//! serves each on one of the worker arbiters (round robin), many at a time.
//!
//! Per connection, pickle: wait up to `idle_timeout` for the first byte of the next frame (no
//! byte: close); from that byte on, the 4-byte big-endian length and the whole frame must
//! arrive within `frame_timeout` (else close). A length over `max_frame_bytes` closes the
//! connection. The frame buffer grows only as bytes arrive (a length header reserves
//! nothing). Frames over [`INLINE_DECODE_BYTES`] are decoded on the blocking pool, at most
//! one per core at a time (a fair FIFO semaphore), so a connection chewing a hostile frame
//! never holds up the arbiter the other connections run on; smaller frames (microseconds of
//! work) decode inline. A frame that fails to decode costs only that frame: it is counted
//! and reading goes on. Plaintext: the same idle and line timeouts; lines up to 64 KiB; a bad
//! line is counted, a longer line closes the connection. Datapoints stamped more than
//! `max_future_secs` ahead are refused and counted.
//!
//! Admission: at `max_connections` the connection idle the longest (waiting for a frame, with
//! nothing unread) is closed to admit the new one (counted `connections_evicted`); only when
//! every connection is busy is the new one refused (counted `connections_refused`).
//!
//! Logging: every warning an outsider can trigger (refusals, evictions, timeouts, bad frames,
//! future timestamps, oversize frames) goes through a [`LogLimiter`]: at most one line a
//! minute per kind, with the count.
//!
//! Backpressure (edge to the metric actors): `Ingestor::ingest(..).await` waits for mailbox
//! space, and before each read the connection waits while the metric actors are saturated
//! (Redis down), so the sender's TCP window closes and carbon-relay queues on its side. While
//! it waits a connection is busy (never idle-closed nor evicted). Nothing accepted is dropped
//! here.
//!
//! Shutdown: [`StopListening`] closes the listening socket, tells every connection to stop
//! after the frame it is reading, and replies when all have ended (or after 5 s).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::{debug, error, info, warn};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};

use super::future::{is_future, refuse_future};
use super::pickle::{decode_datapoints, Decoded, PickleError};
use super::plaintext::{parse_line, LineError};
use crate::model::Datapoint;
use crate::store::Ingestor;
use crate::telemetry::metrics as m;
use crate::telemetry::ratelimit::LogLimiter;

/// Longest plaintext line accepted.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Pickle frames up to this size are decoded on the connection's own task (bounded work of
/// a few tens of microseconds); bigger ones on the bounded decode pool.
pub const INLINE_DECODE_BYTES: usize = 4096;

/// Plaintext datapoints are handed on in batches of up to this many.
const LINE_BATCH: usize = 1000;

/// One limiter per kind of outsider-triggered warning (shared by every TCP listener).
static LOG_REFUSED: LogLimiter = LogLimiter::new();
static LOG_EVICTED: LogLimiter = LogLimiter::new();
static LOG_TIMEOUT: LogLimiter = LogLimiter::new();
static LOG_OVERSIZE: LogLimiter = LogLimiter::new();
static LOG_TRUNCATED: LogLimiter = LogLimiter::new();
static LOG_BAD_FRAME: LogLimiter = LogLimiter::new();
static LOG_BAD_ITEMS: LogLimiter = LogLimiter::new();
static LOG_BAD_LINE: LogLimiter = LogLimiter::new();
static LOG_FUTURE: LogLimiter = LogLimiter::new();
static LOG_CLOSED: LogLimiter = LogLimiter::new();
static LOG_ACCEPT: LogLimiter = LogLimiter::new();

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
    /// Connections served at once; at the limit the longest-idle one is closed.
    pub max_connections: usize,
    /// No byte for this long between frames or lines: close.
    pub idle_timeout: Duration,
    /// A frame or line whose first byte arrived must be complete within this long.
    pub frame_timeout: Duration,
    /// Datapoints stamped more than this many seconds ahead of the clock are refused.
    pub max_future_secs: u64,
}

/// Marks a connection that is not idle (reading a frame, handing on, waiting for room).
const BUSY: u64 = u64::MAX;

/// What the accept loop knows of one connection.
struct ConnState {
    peer: SocketAddr,
    /// Milliseconds since the listener's epoch at which it began waiting for a frame, or
    /// [`BUSY`].
    idle_since: AtomicU64,
    /// Told to close (eviction).
    evict: Notify,
}

/// The open connections of one listener, for admission and eviction.
#[derive(Default)]
struct Registry {
    next_id: u64,
    conns: HashMap<u64, Arc<ConnState>>,
}

type SharedRegistry = Arc<Mutex<Registry>>;

fn lock(r: &SharedRegistry) -> std::sync::MutexGuard<'_, Registry> {
    // A poisoned registry is still consistent (each update is a single insert or remove).
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes and returns the connection idle the longest, if any is idle.
fn take_longest_idle(registry: &SharedRegistry) -> Option<(Arc<ConnState>, u64)> {
    let mut reg = lock(registry);
    let (id, since) = reg
        .conns
        .iter()
        .map(|(id, c)| (*id, c.idle_since.load(Ordering::Relaxed)))
        .filter(|(_, since)| *since != BUSY)
        .min_by_key(|(_, since)| *since)?;
    reg.conns.remove(&id).map(|c| (c, since))
}

/// Decodes at most one frame per core at a time, first come first served.
fn decode_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Semaphore::new(n)
    })
}

/// Decodes a frame, on the bounded pool when it is big. Gives the buffer back for reuse.
async fn decode_frame(frame: Vec<u8>) -> (Vec<u8>, Result<Decoded, PickleError>) {
    if frame.len() <= INLINE_DECODE_BYTES {
        let r = decode_datapoints(&frame);
        return (frame, r);
    }
    // The semaphore is never closed; if it were, decoding without a slot is still correct.
    let permit = decode_slots().acquire().await.ok();
    let len = frame.len();
    let joined = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let r = decode_datapoints(&frame);
        (frame, r)
    })
    .await;
    match joined {
        Ok(x) => x,
        Err(err) => {
            // The decoder panicked (a bug): the frame is lost, never the process.
            error!("pickle decoder failed on a {len}-byte frame: {err}; frame refused");
            (
                Vec::new(),
                Err(PickleError::Malformed {
                    what: "decoder failure",
                    pos: 0,
                }),
            )
        }
    }
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
    /// Open connection tasks (they decrement it when they end).
    open: Arc<AtomicUsize>,
    /// Admitted connections, for eviction.
    registry: SharedRegistry,
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
            registry: Arc::default(),
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
        let registry = self.registry.clone();
        let epoch = Instant::now();
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
                            LOG_ACCEPT.warn(format_args!("accepting a connection failed: {err}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    m::CONNECTIONS_ACCEPTED.inc();
                    let admitted = lock(&registry).conns.len() < settings.max_connections;
                    if !admitted {
                        match take_longest_idle(&registry) {
                            Some((victim, since)) => {
                                victim.evict.notify_one();
                                m::CONNECTIONS_EVICTED.inc();
                                let idle_ms =
                                    (epoch.elapsed().as_millis() as u64).saturating_sub(since);
                                LOG_EVICTED.warn(format_args!(
                                    "max_connections ({}) reached: closed the connection from {} \
                                     (idle {:.1} s) to admit {peer}",
                                    settings.max_connections,
                                    victim.peer,
                                    idle_ms as f64 / 1000.0
                                ));
                            }
                            None => {
                                m::CONNECTIONS_REFUSED.inc();
                                LOG_REFUSED.warn(format_args!(
                                    "refused the connection from {peer}: max_connections ({}) \
                                     reached and every connection is busy",
                                    settings.max_connections
                                ));
                                continue;
                            }
                        }
                    }
                    let _ = stream.set_nodelay(true);
                    let state = Arc::new(ConnState {
                        peer,
                        idle_since: AtomicU64::new(BUSY),
                        evict: Notify::new(),
                    });
                    let id = {
                        let mut reg = lock(&registry);
                        let id = reg.next_id;
                        reg.next_id += 1;
                        reg.conns.insert(id, state.clone());
                        id
                    };
                    open.fetch_add(1, Ordering::Relaxed);
                    m::OPEN_CONNECTIONS.add(1);
                    let conn = Connection {
                        peer,
                        settings: settings.clone(),
                        ingestor: ingestor.clone(),
                        stop: shutdown.subscribe(),
                        open: open.clone(),
                        registry: registry.clone(),
                        id,
                        state,
                        epoch,
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
    registry: SharedRegistry,
    id: u64,
    state: Arc<ConnState>,
    epoch: Instant,
}

/// Per-connection error tally, logged once at the end.
#[derive(Default)]
struct Tally {
    bad_frames: u64,
    bad_items: u64,
    points: u64,
}

/// How waiting for the next frame or line ended.
enum Next {
    /// Its first byte is here.
    Data,
    /// EOF, reset, stop or eviction: end quietly.
    End,
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
            LOG_CLOSED.warn(format_args!(
                "connection from {} closed: {} datapoints, {} refused frames/lines, {} refused items",
                self.peer, tally.points, tally.bad_frames, tally.bad_items
            ));
        } else {
            debug!(
                "connection from {} closed: {} datapoints",
                self.peer, tally.points
            );
        }
        lock(&self.registry).conns.remove(&self.id);
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

    /// Waits (idle, evictable) up to the idle timeout for the first byte of the next frame
    /// or line.
    async fn next_byte(&mut self, reader: &mut BufReader<TcpStream>) -> Next {
        if !reader.buffer().is_empty() {
            return Next::Data;
        }
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        self.state.idle_since.store(now_ms, Ordering::Relaxed);
        let idle = self.settings.idle_timeout;
        let next = tokio::select! {
            r = tokio::time::timeout(idle, reader.fill_buf()) => match r {
                Ok(Ok(b)) if !b.is_empty() => Next::Data,
                Ok(_) => Next::End,
                Err(_) => {
                    m::CONNECTIONS_TIMED_OUT.inc();
                    LOG_TIMEOUT.warn(format_args!(
                        "closed the connection from {}: no byte for {} s (idle_timeout_secs)",
                        self.peer,
                        idle.as_secs()
                    ));
                    Next::End
                }
            },
            _ = self.state.evict.notified() => Next::End,
            _ = self.stop.changed() => Next::End,
        };
        self.state.idle_since.store(BUSY, Ordering::Relaxed);
        next
    }

    fn frame_timed_out(&self, what: &str) {
        m::CONNECTIONS_TIMED_OUT.inc();
        LOG_TIMEOUT.warn(format_args!(
            "closed the connection from {}: a {what} took longer than {} s (frame_timeout_secs)",
            self.peer,
            self.settings.frame_timeout.as_secs()
        ));
    }

    /// Refuses points stamped too far ahead (counted, logged rate-limited), hands on the rest.
    async fn hand_on(&self, mut points: Vec<Datapoint>, tally: &mut Tally) -> bool {
        let future = refuse_future(&mut points, now(), self.settings.max_future_secs);
        if future > 0 {
            m::DROPPED_FUTURE.add(future);
            tally.bad_items += future;
            LOG_FUTURE.warn(format_args!(
                "{future} datapoints from {} refused: stamped more than {} s in the future \
                 (max_future_secs)",
                self.peer, self.settings.max_future_secs
            ));
        }
        if points.is_empty() {
            return true;
        }
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
            if let Next::End = self.next_byte(&mut reader).await {
                return;
            }
            let deadline = tokio::time::Instant::now() + self.settings.frame_timeout;
            let len = tokio::select! {
                r = tokio::time::timeout_at(deadline, reader.read_u32()) => match r {
                    Ok(Ok(n)) => n as usize,
                    Ok(Err(_)) => return, // EOF or reset inside a header
                    Err(_) => {
                        self.frame_timed_out("frame header");
                        return;
                    }
                },
                _ = self.stop.changed() => return,
            };
            if len > self.settings.max_frame_bytes {
                m::DROPPED_OVERSIZE.inc();
                LOG_OVERSIZE.error(format_args!(
                    "pickle frame of {len} bytes from {} is over max_frame_bytes ({}); closing the connection",
                    self.peer, self.settings.max_frame_bytes
                ));
                return;
            }
            // Grows only as bytes arrive: a length header alone reserves nothing.
            frame.clear();
            let mut body = (&mut reader).take(len as u64);
            match tokio::time::timeout_at(deadline, body.read_to_end(&mut frame)).await {
                Ok(Ok(n)) if n == len => {}
                Ok(_) => {
                    if len > 0 {
                        m::DROPPED_DECODE.inc();
                        LOG_TRUNCATED.warn(format_args!(
                            "connection from {} ended inside a {len}-byte frame",
                            self.peer
                        ));
                    }
                    return;
                }
                Err(_) => {
                    m::DROPPED_DECODE.inc();
                    self.frame_timed_out("pickle frame");
                    return;
                }
            }
            m::FRAMES_RECEIVED.inc();
            let (buf, decoded) = decode_frame(std::mem::take(&mut frame)).await;
            frame = buf;
            if frame.capacity() > 256 * 1024 {
                // Do not keep a big frame's buffer on an idle connection.
                frame = Vec::new();
            }
            match decoded {
                Ok(decoded) => {
                    let bad = decoded.bad_shape + decoded.bad_name + decoded.non_finite;
                    if bad > 0 {
                        m::DROPPED_BAD_SHAPE.add(decoded.bad_shape);
                        m::DROPPED_BAD_NAME.add(decoded.bad_name);
                        m::DROPPED_NON_FINITE.add(decoded.non_finite);
                        LOG_BAD_ITEMS.error(format_args!(
                            "pickle frame from {}: {bad} datapoints refused (bad shape, name or non-finite value)",
                            self.peer
                        ));
                        tally.bad_items += bad;
                    }
                    if !self.hand_on(decoded.points, tally).await {
                        return;
                    }
                }
                Err(err) => {
                    m::DROPPED_DECODE.inc();
                    LOG_BAD_FRAME.error(format_args!(
                        "pickle frame from {} refused: {err}",
                        self.peer
                    ));
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
            if let Next::End = self.next_byte(&mut reader).await {
                break;
            }
            line.clear();
            let deadline = tokio::time::Instant::now() + self.settings.frame_timeout;
            let mut limited = (&mut reader).take(MAX_LINE_BYTES as u64 + 1);
            let n = tokio::select! {
                r = tokio::time::timeout_at(deadline, limited.read_until(b'\n', &mut line)) => match r {
                    Ok(Ok(n)) => n,
                    Ok(Err(_)) => break,
                    Err(_) => {
                        self.frame_timed_out("plaintext line");
                        break;
                    }
                },
                _ = self.stop.changed() => break,
            };
            if n == 0 {
                break;
            }
            if line.len() > MAX_LINE_BYTES {
                m::DROPPED_DECODE.inc();
                LOG_BAD_LINE.error(format_args!(
                    "plaintext line from {} longer than {MAX_LINE_BYTES} bytes; closing",
                    self.peer
                ));
                break;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if !text.iter().all(u8::is_ascii_whitespace) {
                m::FRAMES_RECEIVED.inc();
                let t = now();
                match parse_line(text, t) {
                    Ok(dp) if is_future(&dp, t, self.settings.max_future_secs) => {
                        m::DROPPED_FUTURE.inc();
                        LOG_FUTURE.warn(format_args!(
                            "plaintext datapoint for {:?} from {} refused: stamped more than {} s \
                             in the future (max_future_secs)",
                            dp.metric, self.peer, self.settings.max_future_secs
                        ));
                        tally.bad_frames += 1;
                    }
                    Ok(dp) => batch.push(dp),
                    Err(err) => {
                        match err {
                            LineError::Shape => m::DROPPED_DECODE.inc(),
                            LineError::Name => m::DROPPED_BAD_NAME.inc(),
                            LineError::NonFinite => m::DROPPED_NON_FINITE.inc(),
                        }
                        LOG_BAD_LINE.error(format_args!(
                            "plaintext line from {} refused ({}): {:?}",
                            self.peer,
                            err.describe(),
                            String::from_utf8_lossy(&text[..text.len().min(200)])
                        ));
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
