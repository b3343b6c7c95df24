//! The single integration-test binary: real redis-server instances on free ports, real
//! sockets, the real `skyline` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests fail loudly by design

mod alerts;
mod analyzer;
mod boundary;
mod browser;
mod cli;
mod cluster;
mod deploy;
mod explore;
mod flux;
mod fuzz_corpus;
mod grafana;
mod hardening;
mod hostile;
mod incident;
mod ingest;
mod ionosphere;
mod mirage;
mod monitor;
mod pipeline;
mod prometheus;
mod stream;
mod support;
mod vectors;
mod webapp;
