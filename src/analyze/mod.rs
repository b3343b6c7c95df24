//! Analyze: Skyline's Analyzer.
//!
//! Owns the `[analyzer]` settings; the analysis actors and the pure algorithms live below.

pub mod config;
