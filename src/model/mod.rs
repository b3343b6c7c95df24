//! Plain data shared by every stage: datapoints, metric names, series and anomalies.
//!
//! Owns no actors, no Redis keys and no tables; imports nothing from the rest of the crate
//! and nothing from actix, redis or diesel. Every other module may depend on it.

mod anomaly;
mod datapoint;
mod metric_name;
pub mod msgpack;
pub mod time;

pub use anomaly::{current_anomalies_json, Anomaly, CurrentAnomaly};
pub use datapoint::{Datapoint, Number, Point};
pub use metric_name::{validate_metric_name, NameError, FULL_NAMESPACE, UNIQUE_METRICS};
