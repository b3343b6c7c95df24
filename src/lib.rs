//! Skyline, the real-time anomaly detector for Graphite metrics, as one Rust daemon.
//!
//! # Layout
//! Data flows top to bottom; each stage is a folder that owns its actors, messages, Redis keys
//! or tables, and states its backpressure policy in its module docs.
//!
//! - [`listen`]: Horizon's listeners (pickle TCP, msgpack UDP, plaintext TCP) → `store`.
//! - [`store`]: the metric actors writing Skyline's Redis layout, and Roomba.
//! - [`analyze`]: the Analyzer: pure algorithms and the analysis actors → `panorama`, `alert`.
//! - [`boundary`]: operator rules (thresholds, drop-off cliffs) on key metrics → `panorama`,
//!   `alert`.
//! - [`alert`]: alert rules and alerters (SMTP, Slack, webhook, syslog); [`thunder`]: the
//!   daemon's self-monitoring checks → `alert`.
//! - [`flux`], [`webapp`]: the HTTP side.
//! - [`model`] (plain data) and [`telemetry`] (logs, self-metrics) sit below every stage.
//! - [`config`] loads and validates `conf/skyline.toml`; [`app`] alone wires actors together.

pub mod alert;
pub mod analyze;
pub mod app;
pub mod bench;
pub mod boundary;
pub mod config;
pub mod db;
pub mod flux;
pub mod ionosphere;
pub mod listen;
pub mod mirage;
pub mod model;
pub mod monitor;
pub mod panorama;
pub mod seed;
pub mod store;
pub mod telemetry;
pub mod testkit;
pub mod thunder;
pub mod webapp;
