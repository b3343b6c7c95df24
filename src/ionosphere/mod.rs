//! Ionosphere: operators teach Skyline which shapes are normal for a metric.
//!
//! - [`features`]: the tsfresh feature set of a series (pure functions, no I/O).
//!
//! Owns no actor, Redis key or table yet; see each submodule.

pub mod features;
