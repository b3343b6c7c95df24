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
        ionosphere_enabled -> Nullable<SmallInt>,
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

// Ionosphere (db::ionosphere). Skyline's INT columns are `Integer`; this port's own BIGINT
// columns `BigInt`. The per-metric z_fp_<id> / z_ts_<id> tables are normalised into
// ionosphere_fp_features / ionosphere_fp_timeseries.

diesel::table! {
    /// Features profiles.
    ionosphere (id) {
        id -> Integer,
        metric_id -> Integer,
        full_duration -> Integer,
        anomaly_timestamp -> Integer,
        enabled -> Nullable<SmallInt>,
        tsfresh_version -> Nullable<Varchar>,
        calc_time -> Nullable<Double>,
        features_count -> Nullable<Integer>,
        features_sum -> Nullable<Double>,
        matched_count -> Nullable<Integer>,
        last_matched -> Nullable<Integer>,
        last_checked -> Nullable<Integer>,
        checked_count -> Nullable<Integer>,
        parent_id -> Nullable<Integer>,
        generation -> Nullable<Integer>,
        validated -> Nullable<Integer>,
        layers_id -> Nullable<Integer>,
        echo_fp -> Nullable<SmallInt>,
        user_id -> Nullable<Integer>,
        label -> Nullable<Varchar>,
    }
}

diesel::table! {
    /// A profile's feature values (Skyline's z_fp_<metric_id>).
    ionosphere_fp_features (fp_id, feature_id) {
        fp_id -> Integer,
        feature_id -> Integer,
        value -> Nullable<Double>,
    }
}

diesel::table! {
    /// A profile's training series (Skyline's z_ts_<metric_id>).
    ionosphere_fp_timeseries (fp_id, timestamp) {
        fp_id -> Integer,
        timestamp -> BigInt,
        value -> Nullable<Double>,
    }
}

diesel::table! {
    /// Features-sum matches.
    ionosphere_matched (id) {
        id -> Integer,
        fp_id -> Integer,
        metric_timestamp -> Nullable<Integer>,
        all_calc_features_sum -> Nullable<Double>,
        all_calc_features_count -> Nullable<Integer>,
        sum_common_values -> Nullable<Double>,
        common_features_count -> Nullable<Integer>,
        tsfresh_version -> Nullable<Varchar>,
        minmax -> Nullable<SmallInt>,
        minmax_fp_features_sum -> Nullable<Double>,
        minmax_fp_features_count -> Nullable<Integer>,
        minmax_anomalous_features_sum -> Nullable<Double>,
        minmax_anomalous_features_count -> Nullable<Integer>,
        fp_count -> Nullable<Integer>,
        fp_checked -> Nullable<Integer>,
    }
}

diesel::table! {
    /// Layers attached to a profile.
    ionosphere_layers (id) {
        id -> Integer,
        fp_id -> Integer,
        metric_id -> Integer,
        enabled -> Nullable<SmallInt>,
        matched_count -> Nullable<Integer>,
        last_matched -> Nullable<Integer>,
        last_checked -> Nullable<Integer>,
        check_count -> Nullable<Integer>,
        label -> Nullable<Varchar>,
    }
}

diesel::table! {
    /// The rules of a layer (D, D1, E, Es, F1, F2).
    layers_algorithms (id) {
        id -> Integer,
        layer_id -> Integer,
        fp_id -> Integer,
        metric_id -> Integer,
        layer -> Varchar,
        #[sql_name = "type"]
        type_ -> Varchar,
        condition -> Varchar,
        layer_boundary -> Varchar,
        times_in_row -> Nullable<Integer>,
    }
}

diesel::table! {
    /// Layers matches.
    ionosphere_layers_matched (id) {
        id -> Integer,
        layer_id -> Integer,
        fp_id -> Integer,
        metric_id -> Integer,
        anomaly_timestamp -> Integer,
        anomalous_datapoint -> Double,
        full_duration -> Integer,
        layers_count -> Nullable<Integer>,
        layers_checked -> Nullable<Integer>,
        approx_close -> Nullable<SmallInt>,
    }
}

diesel::table! {
    /// This port's own: the series each anomaly was found in (Skyline's training data).
    ionosphere_training_data (id) {
        id -> Integer,
        metric_id -> Integer,
        app_id -> Integer,
        metric_timestamp -> BigInt,
        full_duration -> BigInt,
        added_at -> BigInt,
        points -> Integer,
        series -> Text,
    }
}

diesel::table! {
    /// Skyline's users (`Skyline` = 1, `admin` = 2); `user` is a reserved word, quoted by diesel.
    users (id) {
        id -> Integer,
        #[sql_name = "user"]
        user_ -> Nullable<Varchar>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(layers_algorithms, ionosphere_layers);

diesel::table! {
    /// A profile's min-max-scaled features (spec §3.8), computed at training.
    ionosphere_minmax (fp_id) {
        fp_id -> Integer,
        minmax_min -> Double,
        minmax_max -> Double,
        values_count -> Integer,
        features_count -> Integer,
        features_sum -> Double,
        tsfresh_version -> Nullable<Varchar>,
        calc_time -> Nullable<Double>,
    }
}
