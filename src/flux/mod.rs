//! Flux: HTTP metric submission.

pub mod config;
