//! Webapp: the dashboard, Panorama search, JSON APIs, Graphite proxy and rebrow.

pub mod config;
