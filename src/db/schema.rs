//! Diesel table definitions for the columns this port reads or writes.
//!
//! Hand-written, shared by the three backends (do not regenerate with `diesel print-schema`,
//! which would describe one backend only). Columns nobody here touches (`created_timestamp`,
//! `slack_thread_ts`, `label`, `alert`, Ionosphere flags, …) are left out on purpose: diesel
//! only needs the columns a query names, and `created_timestamp` is read through a
//! backend-specific epoch expression instead (no chrono/time feature needed).
//!
//! Type notes: ids are `Integer` (INT everywhere). Timestamps and `full_duration` are `BigInt`:
//! BIGINT on PostgreSQL, INTEGER (64-bit) on SQLite, and Skyline's INT on MySQL, which diesel's
//! MySQL backend widens on read. `anomalous_datapoint` is `Double`: DOUBLE on SQLite/PostgreSQL,
//! Skyline's DECIMAL(65,6) on MySQL (diesel parses the decimal text on read and the server
//! converts the bound double on write).

diesel::table! {
    /// Skyline hosts (`added_by`).
    hosts (id) {
        id -> Integer,
        host -> Varchar,
    }
}

diesel::table! {
    /// Skyline apps (`analyzer`, `mirage`, …).
    apps (id) {
        id -> Integer,
        app -> Varchar,
    }
}

diesel::table! {
    /// Algorithm names, ids assigned on first sight.
    algorithms (id) {
        id -> Integer,
        algorithm -> Varchar,
    }
}

diesel::table! {
    /// Data sources (`graphite`, …).
    sources (id) {
        id -> Integer,
        source -> Varchar,
    }
}

diesel::table! {
    /// Metric names, with the Ionosphere learn settings a new row gets.
    metrics (id) {
        id -> Integer,
        metric -> Varchar,
        learn_full_duration_days -> Nullable<Integer>,
        learn_valid_ts_older_than -> Nullable<Integer>,
        max_generations -> Nullable<Integer>,
        max_percent_diff_from_origin -> Nullable<Double>,
    }
}

diesel::table! {
    /// One row per recorded anomaly.
    anomalies (id) {
        id -> Integer,
        metric_id -> Integer,
        host_id -> Integer,
        app_id -> Integer,
        source_id -> Integer,
        anomaly_timestamp -> BigInt,
        anomaly_end_timestamp -> Nullable<BigInt>,
        anomalous_datapoint -> Double,
        full_duration -> BigInt,
        algorithms_run -> Varchar,
        triggered_algorithms -> Varchar,
        user_id -> Nullable<Integer>,
    }
}

diesel::table! {
    /// This port's per-metric anomaly counts, folded up to a watermark (not in skyline.sql).
    panorama_metric_counts (metric_id) {
        metric_id -> Integer,
        anomalies -> BigInt,
    }
}

diesel::table! {
    /// This port's small key/value state (the counts watermark).
    panorama_state (name) {
        name -> Varchar,
        value -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    hosts,
    apps,
    algorithms,
    sources,
    metrics,
    anomalies,
    panorama_metric_counts,
    panorama_state
);
