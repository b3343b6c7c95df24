//! Listen: Skyline's Horizon listeners.
//!
//! Actors: [`TcpListener`] (one per TCP address: Graphite pickle, or Graphite plaintext — a
//! protocol Skyline lacks) and [`UdpListener`] (Skyline's msgpack datagrams). Connections run
//! as tasks spread over the worker arbiters. Accepts [`StopListening`]; sends datapoints to the
//! metric actors through `store::Ingestor` (the only thing it imports from `store`).
//!
//! Decoding is pure and never executes anything: [`pickle`] is a plain-data stack machine
//! that refuses every opcode able to import, build or call objects, and whose work and memory
//! per frame are linear in the frame's size. Bad input costs only the frame (or line, or
//! datagram); a garbled or oversized length header, a timeout (`idle_timeout_secs`,
//! `frame_timeout_secs`) or an eviction at `max_connections` costs the connection; nothing
//! costs the process. Points stamped more than `max_future_secs` ahead are refused
//! ([`future`]). Every refusal is counted (see `telemetry::metrics`) and every warning an
//! outsider can trigger is logged at most once a minute (`telemetry::ratelimit`).
//!
//! Backpressure: TCP waits (the peer's window closes and carbon-relay queues); UDP drops and
//! counts. Details in each actor's module.

mod error;
pub mod future;
pub mod pickle;
pub mod plaintext;
mod tcp;
mod udp;

pub use error::ListenError;
pub use tcp::{
    Protocol, StopListening, TcpListener, TcpSettings, INLINE_DECODE_BYTES, MAX_LINE_BYTES,
};
pub use udp::UdpListener;
