//! The single integration-test binary: real redis-server instances on free ports, real
//! sockets, the real `skyline` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail loudly by design

mod alerts;
mod analyzer;
mod browser;
mod cli;
mod deploy;
mod flux;
mod hardening;
mod ingest;
mod pipeline;
mod support;
mod vectors;
mod webapp;
