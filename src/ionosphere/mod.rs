//! Ionosphere: operators teach Skyline which shapes are normal for a metric.
//!
//! - [`features`]: the tsfresh feature set of a series (pure functions, no I/O).
//! - [`training`]: from an anomaly's series to a features profile (pure).
//! - [`matching`]: features-sum, min-max and layers comparison of an anomaly with a metric's
//!   profiles (pure).
//! - [`learn`]: which profile an unmatched anomaly of a learning namespace is learnt from
//!   (pure).
//!
//! Tables (queries in `db::ionosphere`): `ionosphere`, `ionosphere_fp_features`,
//! `ionosphere_fp_timeseries`, `ionosphere_matched`, `ionosphere_layers`, `layers_algorithms`,
//! `ionosphere_layers_matched`, `ionosphere_minmax`, `ionosphere_training_data`, and the
//! `metrics` learn columns. Backpressure: see each submodule.

pub mod actor;
pub mod cache;
pub mod config;
pub mod features;
pub mod learn;
pub mod matching;
pub mod messages;
pub mod training;
