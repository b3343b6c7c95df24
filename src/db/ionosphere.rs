//! Ionosphere's queries: features profiles (`ionosphere`, `ionosphere_fp_features`,
//! `ionosphere_fp_timeseries`), their matches (`ionosphere_matched`,
//! `ionosphere_layers_matched`), layers (`ionosphere_layers`, `layers_algorithms`), the
//! `metrics.ionosphere_enabled` flag, and this port's `ionosphere_training_data` (the series
//! each anomaly was found in, spec §0.3).
//!
//! Skyline keeps a profile's features and series in per-metric tables created at runtime
//! (`z_fp_<metric_id>`, `z_ts_<metric_id>`); here they are two normalised tables keyed by
//! `(fp_id, feature_id)` and `(fp_id, timestamp)` (a deliberate divergence, docs/ionosphere.md).
//!
//! Like [`super::queries`]: blocking functions taking `&Pool`, all values bound parameters of
//! diesel's DSL, one pooled connection per call; call them from a `SyncArbiter` actor or
//! inside `web::block`. Backpressure: the pool's checkout and statement timeouts.

#![allow(clippy::type_complexity)] // reason: diesel row tuples, named where they are read

use serde::Serialize;

use super::queries::{resolve_id, IdCache, Lookup};
use super::{DbError, Pool, PoolKind};
pub use crate::ionosphere::learn::LearnParams;
pub use crate::ionosphere::matching::MinMax;

/// Rows per multi-row INSERT of features or series points (3 bound values per row).
const INSERT_CHUNK: usize = 500;
/// Matches returned by [`matches`] at most.
pub const MAX_MATCHES: i64 = 1_000;

/// The series an anomaly was found in, as kept for training.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingData {
    /// Base name.
    pub metric: String,
    /// The app that found the anomaly (`analyzer`, `mirage`).
    pub app: String,
    /// The anomaly's timestamp (the series' last).
    pub metric_timestamp: i64,
    /// The nominal window: the Analyzer's full duration, Mirage's `hours * 3600`.
    pub full_duration: i64,
    /// Epoch seconds when it was kept.
    pub added_at: i64,
    /// `[timestamp, value]` pairs in time order.
    pub series: Vec<(i64, f64)>,
}

/// A recorded anomaly and, when still kept, its training data.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyForTraining {
    /// `metrics.id`.
    pub metric_id: i32,
    /// Base name.
    pub metric: String,
    /// The anomaly's app name.
    pub app: String,
    /// `anomalies.anomaly_timestamp`.
    pub anomaly_timestamp: i64,
    /// The kept series, None once pruned (or never kept).
    pub training: Option<TrainingData>,
}

/// A new features profile.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProfile {
    /// `metrics.id`.
    pub metric_id: i32,
    /// Seconds the profile covers.
    pub full_duration: i64,
    /// The anomaly trained on.
    pub anomaly_timestamp: i64,
    /// Seconds the features took.
    pub calc_time: f64,
    /// All computed features.
    pub features_count: i32,
    /// Σ of all computed features.
    pub features_sum: f64,
    /// The 140 id-mapped features.
    pub features: Vec<(u16, f64)>,
    /// The training series.
    pub series: Vec<(i64, f64)>,
    /// Min-max data of the training series (`ionosphere_minmax`).
    pub minmax: Option<MinMax>,
    /// 0 for a human-trained profile.
    pub parent_id: i32,
    /// 0 for a human-trained profile.
    pub generation: i32,
    /// Operator's label.
    pub label: Option<String>,
    /// Name of the user who trained it (a `users` row, created when absent).
    pub user: String,
}

/// One features profile, as the API and page show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileRow {
    /// `ionosphere.id` (fp_id).
    pub id: i32,
    /// Base name.
    pub metric: String,
    /// Whether it is compared with new anomalies.
    pub enabled: bool,
    /// Seconds the profile covers.
    pub full_duration: i64,
    /// The anomaly it was trained on.
    pub anomaly_timestamp: i64,
    /// Features computed.
    pub features_count: i64,
    /// Σ of all features.
    pub features_sum: f64,
    /// Anomalies matched.
    pub matched_count: i64,
    /// Epoch seconds of the last match.
    pub last_matched: Option<i64>,
    /// 0 = trained by an operator; n = learnt.
    pub generation: i64,
    /// The profile it was learnt from (0 = none).
    pub parent_id: i64,
    /// Operator's label.
    pub label: Option<String>,
    /// Who trained it.
    pub user: Option<String>,
}

/// One features-sum match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchRow {
    /// `ionosphere_matched.id`.
    pub id: i32,
    /// The matching profile.
    pub fp_id: i32,
    /// The anomaly that matched.
    pub metric_timestamp: i64,
    /// `features` or `minmax` (or `layers`, `id` then being the layers match id).
    pub method: &'static str,
    /// Σ of the anomaly's features over the ids the profile has.
    pub sum_common_values: f64,
    /// How many ids were compared.
    pub common_features_count: i64,
}

/// A profile as the matcher needs it: its 140 features (and layers, when any).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileFeatures {
    /// fp id.
    pub id: i32,
    /// Seconds the profile covers.
    pub full_duration: i64,
    /// Learn generation.
    pub generation: i32,
    /// `(feature_id, value)`.
    pub features: Vec<(i32, f64)>,
    /// Min-max data (for the min-max retry).
    pub minmax: Option<MinMax>,
    /// Layers rules of this profile: `(layer_id, layer, condition, boundary, times_in_row)`.
    pub layers: Vec<LayerRule>,
}

/// One `layers_algorithms` row.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRule {
    /// `ionosphere_layers.id`.
    pub layer_id: i32,
    /// `D`, `D1`, `E`, …
    pub layer: String,
    /// `<`, `>`, `==`, `!=`, `<=`, `>=`, `none`.
    pub condition: String,
    /// The boundary value as stored (a string).
    pub boundary: String,
    /// Values in a row (D1, E).
    pub times_in_row: i32,
}

/// A match to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMatch {
    /// The profile.
    pub fp_id: i32,
    /// The anomaly.
    pub metric_timestamp: i64,
    /// Σ of all the anomaly's features.
    pub all_calc_features_sum: f64,
    /// Features computed.
    pub all_calc_features_count: i32,
    /// Σ over the common ids.
    pub sum_common_values: f64,
    /// Common ids.
    pub common_features_count: i32,
    /// Matched on the min-max retry.
    pub minmax: bool,
    /// Min-max sums and counts (0 unless `minmax`).
    pub minmax_fp_features_sum: f64,
    /// See `minmax_fp_features_sum`.
    pub minmax_anomalous_features_sum: f64,
    /// Features in each min-max sum.
    pub minmax_features_count: i32,
    /// Profiles of the metric at this duration.
    pub fp_count: i32,
    /// Profiles compared before this match.
    pub fp_checked: i32,
    /// Epoch seconds now.
    pub now: i64,
}

/// A layers match to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLayersMatch {
    /// The layer.
    pub layer_id: i32,
    /// Its profile.
    pub fp_id: i32,
    /// `metrics.id`.
    pub metric_id: i32,
    /// The last point's timestamp.
    pub anomaly_timestamp: i64,
    /// The last point's value.
    pub anomalous_datapoint: f64,
    /// Seconds of data judged.
    pub full_duration: i64,
    /// Layers evaluated.
    pub layers_checked: i32,
    /// Matched only thanks to the approximately-close tolerance.
    pub approx_close: bool,
    /// Epoch seconds now.
    pub now: i64,
}

/// Encodes a series as the JSON text kept in `ionosphere_training_data.series`.
pub fn encode_series(series: &[(i64, f64)]) -> String {
    serde_json::to_string(series).unwrap_or_else(|_| "[]".into())
}

/// Decodes [`encode_series`]'s text (non-finite values were never written: JSON has none).
pub fn decode_series(text: &str) -> Result<Vec<(i64, f64)>, serde_json::Error> {
    serde_json::from_str(text)
}

fn to_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

macro_rules! ionosphere_queries {
    () => {
        use diesel::dsl::max;
        use diesel::prelude::*;

        use super::super::schema::{
            anomalies, apps, ionosphere, ionosphere_fp_features, ionosphere_fp_timeseries,
            ionosphere_layers, ionosphere_layers_matched, ionosphere_matched, ionosphere_minmax,
            ionosphere_training_data, layers_algorithms, metrics, users,
        };
        use super::{
            encode_series, to_i32, AnomalyForTraining, LayerRule, LearnParams, MatchRow, MinMax,
            NewLayersMatch, NewMatch, NewProfile, ProfileFeatures, ProfileRow, TrainingData,
            INSERT_CHUNK,
        };
        use crate::ionosphere::features::TSFRESH_VERSION;

        pub(super) fn store_training(
            conn: &mut Conn,
            metric_id: i32,
            app_id: i32,
            td: &TrainingData,
        ) -> QueryResult<bool> {
            conn.transaction(|conn| {
                let present: i64 = ionosphere_training_data::table
                    .filter(ionosphere_training_data::metric_id.eq(metric_id))
                    .filter(ionosphere_training_data::metric_timestamp.eq(td.metric_timestamp))
                    .filter(ionosphere_training_data::app_id.eq(app_id))
                    .count()
                    .get_result(conn)?;
                if present > 0 {
                    return Ok(false);
                }
                diesel::insert_into(ionosphere_training_data::table)
                    .values((
                        ionosphere_training_data::metric_id.eq(metric_id),
                        ionosphere_training_data::app_id.eq(app_id),
                        ionosphere_training_data::metric_timestamp.eq(td.metric_timestamp),
                        ionosphere_training_data::full_duration.eq(td.full_duration),
                        ionosphere_training_data::added_at.eq(td.added_at),
                        ionosphere_training_data::points.eq(to_i32(td.series.len() as i64)),
                        ionosphere_training_data::series.eq(encode_series(&td.series)),
                    ))
                    .execute(conn)?;
                Ok(true)
            })
        }

        pub(super) fn prune_training(conn: &mut Conn, before: i64) -> QueryResult<usize> {
            diesel::delete(
                ionosphere_training_data::table
                    .filter(ionosphere_training_data::added_at.lt(before)),
            )
            .execute(conn)
        }

        pub(super) fn anomaly_for_training(
            conn: &mut Conn,
            anomaly_id: i64,
        ) -> QueryResult<Option<AnomalyForTraining>> {
            let row: Option<(i32, i32, i64)> = anomalies::table
                .filter(anomalies::id.eq(to_i32(anomaly_id)))
                .select((
                    anomalies::metric_id,
                    anomalies::app_id,
                    anomalies::anomaly_timestamp,
                ))
                .first(conn)
                .optional()?;
            let Some((metric_id, app_id, ts)) = row else {
                return Ok(None);
            };
            let metric: String = metrics::table
                .filter(metrics::id.eq(metric_id))
                .select(metrics::metric)
                .first(conn)
                .optional()?
                .unwrap_or_else(|| format!("metric_id:{metric_id}"));
            let app: String = apps::table
                .filter(apps::id.eq(app_id))
                .select(apps::app)
                .first(conn)
                .optional()?
                .unwrap_or_else(|| format!("app_id:{app_id}"));
            let kept: Option<(i64, i64, String)> = ionosphere_training_data::table
                .filter(ionosphere_training_data::metric_id.eq(metric_id))
                .filter(ionosphere_training_data::metric_timestamp.eq(ts))
                .filter(ionosphere_training_data::app_id.eq(app_id))
                .select((
                    ionosphere_training_data::full_duration,
                    ionosphere_training_data::added_at,
                    ionosphere_training_data::series,
                ))
                .first(conn)
                .optional()?;
            let training = match kept {
                Some((full_duration, added_at, text)) => {
                    let series = super::decode_series(&text)
                        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
                    Some(TrainingData {
                        metric: metric.clone(),
                        app: app.clone(),
                        metric_timestamp: ts,
                        full_duration,
                        added_at,
                        series,
                    })
                }
                None => None,
            };
            Ok(Some(AnomalyForTraining {
                metric_id,
                metric,
                app,
                anomaly_timestamp: ts,
                training,
            }))
        }

        pub(super) fn find_profile(
            conn: &mut Conn,
            metric_id: i32,
            anomaly_timestamp: i64,
            full_duration: i64,
        ) -> QueryResult<Option<(i32, i32, f64)>> {
            ionosphere::table
                .filter(ionosphere::metric_id.eq(metric_id))
                .filter(ionosphere::anomaly_timestamp.eq(to_i32(anomaly_timestamp)))
                .filter(ionosphere::full_duration.eq(to_i32(full_duration)))
                .filter(ionosphere::generation.eq(0))
                .select((
                    ionosphere::id,
                    ionosphere::features_count.assume_not_null(),
                    ionosphere::features_sum.assume_not_null(),
                ))
                .order(ionosphere::id)
                .first(conn)
                .optional()
        }

        fn user_id(conn: &mut Conn, name: &str) -> QueryResult<i32> {
            let found: Vec<(i32, Option<String>)> = users::table
                .filter(users::user_.eq(name))
                .select((users::id, users::user_))
                .order(users::id)
                .load(conn)?;
            if let Some((id, _)) = found.iter().find(|(_, n)| n.as_deref() == Some(name)) {
                return Ok(*id);
            }
            diesel::insert_into(users::table)
                .values(users::user_.eq(name))
                .execute(conn)?;
            users::table
                .filter(users::user_.eq(name))
                .select(max(users::id))
                .first::<Option<i32>>(conn)?
                .ok_or(diesel::result::Error::NotFound)
        }

        pub(super) fn create_profile(conn: &mut Conn, p: &NewProfile) -> QueryResult<i32> {
            conn.transaction(|conn| {
                let uid = user_id(conn, &p.user)?;
                let fp_id = insert_returning_id!(
                    conn,
                    diesel::insert_into(ionosphere::table).values((
                        ionosphere::metric_id.eq(p.metric_id),
                        ionosphere::full_duration.eq(to_i32(p.full_duration)),
                        ionosphere::anomaly_timestamp.eq(to_i32(p.anomaly_timestamp)),
                        ionosphere::enabled.eq(1i16),
                        ionosphere::tsfresh_version.eq(TSFRESH_VERSION),
                        ionosphere::calc_time.eq(p.calc_time),
                        ionosphere::features_count.eq(p.features_count),
                        ionosphere::features_sum.eq(p.features_sum),
                        ionosphere::matched_count.eq(0),
                        ionosphere::checked_count.eq(0),
                        ionosphere::parent_id.eq(p.parent_id),
                        ionosphere::generation.eq(p.generation),
                        ionosphere::validated.eq(if p.generation <= 1 { 1 } else { 0 }),
                        ionosphere::layers_id.eq(0),
                        ionosphere::echo_fp.eq(0i16),
                        ionosphere::user_id.eq(uid),
                        ionosphere::label.eq(p.label.as_deref()),
                    )),
                    ionosphere::id
                )?;
                for chunk in p.features.chunks(INSERT_CHUNK) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|&(id, v)| {
                            (
                                ionosphere_fp_features::fp_id.eq(fp_id),
                                ionosphere_fp_features::feature_id.eq(i32::from(id)),
                                ionosphere_fp_features::value.eq(Some(v)),
                            )
                        })
                        .collect();
                    diesel::insert_into(ionosphere_fp_features::table)
                        .values(rows)
                        .execute(conn)?;
                }
                let mut seen = std::collections::HashSet::new();
                let series: Vec<(i64, f64)> = p
                    .series
                    .iter()
                    .copied()
                    .filter(|(t, _)| seen.insert(*t))
                    .collect();
                for chunk in series.chunks(INSERT_CHUNK) {
                    let rows: Vec<_> = chunk
                        .iter()
                        .map(|&(t, v)| {
                            (
                                ionosphere_fp_timeseries::fp_id.eq(fp_id),
                                ionosphere_fp_timeseries::timestamp.eq(t),
                                ionosphere_fp_timeseries::value.eq(Some(v)),
                            )
                        })
                        .collect();
                    diesel::insert_into(ionosphere_fp_timeseries::table)
                        .values(rows)
                        .execute(conn)?;
                }
                if let Some(mm) = p.minmax {
                    diesel::insert_into(ionosphere_minmax::table)
                        .values((
                            ionosphere_minmax::fp_id.eq(fp_id),
                            ionosphere_minmax::minmax_min.eq(mm.min),
                            ionosphere_minmax::minmax_max.eq(mm.max),
                            ionosphere_minmax::values_count.eq(to_i32(mm.values_count as i64)),
                            ionosphere_minmax::features_count.eq(to_i32(mm.features_count as i64)),
                            ionosphere_minmax::features_sum.eq(mm.features_sum),
                            ionosphere_minmax::tsfresh_version.eq(TSFRESH_VERSION),
                        ))
                        .execute(conn)?;
                }
                diesel::update(metrics::table.filter(metrics::id.eq(p.metric_id)))
                    .set(metrics::ionosphere_enabled.eq(Some(1i16)))
                    .execute(conn)?;
                Ok(fp_id)
            })
        }

        type ProfileTuple = (
            i32,
            i32,
            Option<i16>,
            i32,
            i32,
            Option<i32>,
            Option<f64>,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<String>,
            Option<i32>,
        );

        pub(super) fn profiles(conn: &mut Conn, metric: &str) -> QueryResult<Vec<ProfileRow>> {
            let ids: Vec<(i32, String)> = metrics::table
                .filter(metrics::metric.eq(metric))
                .select((metrics::id, metrics::metric))
                .load(conn)?;
            let ids: Vec<i32> = ids
                .into_iter()
                .filter(|(_, n)| n == metric)
                .map(|(id, _)| id)
                .collect();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let rows: Vec<ProfileTuple> = ionosphere::table
                .filter(ionosphere::metric_id.eq_any(&ids))
                .select((
                    ionosphere::id,
                    ionosphere::metric_id,
                    ionosphere::enabled,
                    ionosphere::full_duration,
                    ionosphere::anomaly_timestamp,
                    ionosphere::features_count,
                    ionosphere::features_sum,
                    ionosphere::matched_count,
                    ionosphere::last_matched,
                    ionosphere::generation,
                    ionosphere::parent_id,
                    ionosphere::label,
                    ionosphere::user_id,
                ))
                .order(ionosphere::id)
                .load(conn)?;
            let user_ids: Vec<i32> = rows.iter().filter_map(|r| r.12).collect();
            let names: Vec<(i32, Option<String>)> = if user_ids.is_empty() {
                Vec::new()
            } else {
                users::table
                    .filter(users::id.eq_any(&user_ids))
                    .select((users::id, users::user_))
                    .load(conn)?
            };
            Ok(rows
                .into_iter()
                .map(|r| ProfileRow {
                    id: r.0,
                    metric: metric.to_string(),
                    enabled: r.2.unwrap_or(0) == 1,
                    full_duration: i64::from(r.3),
                    anomaly_timestamp: i64::from(r.4),
                    features_count: i64::from(r.5.unwrap_or(0)),
                    features_sum: r.6.unwrap_or(0.0),
                    matched_count: i64::from(r.7.unwrap_or(0)),
                    last_matched: r.8.map(i64::from).filter(|&t| t > 0),
                    generation: i64::from(r.9.unwrap_or(0)),
                    parent_id: i64::from(r.10.unwrap_or(0)),
                    label: r.11,
                    user: r
                        .12
                        .and_then(|u| names.iter().find(|(id, _)| *id == u))
                        .and_then(|(_, n)| n.clone()),
                })
                .collect())
        }

        pub(super) fn matches(conn: &mut Conn, fp_ids: &[i32]) -> QueryResult<Vec<MatchRow>> {
            if fp_ids.is_empty() {
                return Ok(Vec::new());
            }
            let rows: Vec<(i32, i32, Option<i32>, Option<i16>, Option<f64>, Option<i32>)> =
                ionosphere_matched::table
                    .filter(ionosphere_matched::fp_id.eq_any(fp_ids))
                    .select((
                        ionosphere_matched::id,
                        ionosphere_matched::fp_id,
                        ionosphere_matched::metric_timestamp,
                        ionosphere_matched::minmax,
                        ionosphere_matched::sum_common_values,
                        ionosphere_matched::common_features_count,
                    ))
                    .order(ionosphere_matched::id.desc())
                    .limit(super::MAX_MATCHES)
                    .load(conn)?;
            let mut out: Vec<MatchRow> = rows
                .into_iter()
                .map(|r| MatchRow {
                    id: r.0,
                    fp_id: r.1,
                    metric_timestamp: i64::from(r.2.unwrap_or(0)),
                    method: if r.3.unwrap_or(0) == 1 {
                        "minmax"
                    } else {
                        "features"
                    },
                    sum_common_values: r.4.unwrap_or(0.0),
                    common_features_count: i64::from(r.5.unwrap_or(0)),
                })
                .collect();
            let layers: Vec<(i32, i32, i32)> = ionosphere_layers_matched::table
                .filter(ionosphere_layers_matched::fp_id.eq_any(fp_ids))
                .select((
                    ionosphere_layers_matched::id,
                    ionosphere_layers_matched::fp_id,
                    ionosphere_layers_matched::anomaly_timestamp,
                ))
                .order(ionosphere_layers_matched::id.desc())
                .limit(super::MAX_MATCHES)
                .load(conn)?;
            out.extend(layers.into_iter().map(|r| MatchRow {
                id: r.0,
                fp_id: r.1,
                metric_timestamp: i64::from(r.2),
                method: "layers",
                sum_common_values: 0.0,
                common_features_count: 0,
            }));
            out.sort_by(|a, b| b.metric_timestamp.cmp(&a.metric_timestamp));
            Ok(out)
        }

        pub(super) fn set_enabled(
            conn: &mut Conn,
            fp_id: i32,
            enabled: bool,
        ) -> QueryResult<Vec<i32>> {
            conn.transaction(|conn| {
                // Disabling a profile disables its learnt descendants; enabling touches only it.
                let mut ids = vec![fp_id];
                if !enabled {
                    let mut frontier = vec![fp_id];
                    while !frontier.is_empty() && ids.len() < 100_000 {
                        let children: Vec<i32> = ionosphere::table
                            .filter(ionosphere::parent_id.eq_any(&frontier))
                            .select(ionosphere::id)
                            .load(conn)?;
                        frontier = children.into_iter().filter(|c| !ids.contains(c)).collect();
                        ids.extend(&frontier);
                    }
                }
                let n = diesel::update(ionosphere::table.filter(ionosphere::id.eq_any(&ids)))
                    .set(ionosphere::enabled.eq(Some(i16::from(enabled))))
                    .execute(conn)?;
                if n == 0 {
                    return Err(diesel::result::Error::NotFound);
                }
                Ok(ids)
            })
        }

        pub(super) fn metric_of_profile(
            conn: &mut Conn,
            fp_id: i32,
        ) -> QueryResult<Option<String>> {
            let metric_id: Option<i32> = ionosphere::table
                .filter(ionosphere::id.eq(fp_id))
                .select(ionosphere::metric_id)
                .first(conn)
                .optional()?;
            match metric_id {
                Some(id) => metrics::table
                    .filter(metrics::id.eq(id))
                    .select(metrics::metric)
                    .first(conn)
                    .optional(),
                None => Ok(None),
            }
        }

        pub(super) fn enabled_metrics(conn: &mut Conn) -> QueryResult<Vec<(i32, String)>> {
            metrics::table
                .filter(metrics::ionosphere_enabled.eq(Some(1i16)))
                .select((metrics::id, metrics::metric))
                .load(conn)
        }

        pub(super) fn matching_profiles(
            conn: &mut Conn,
            metric_id: i32,
        ) -> QueryResult<Vec<ProfileFeatures>> {
            let fps: Vec<(i32, i32, Option<i32>)> = ionosphere::table
                .filter(ionosphere::metric_id.eq(metric_id))
                .filter(ionosphere::enabled.eq(Some(1i16)))
                .select((
                    ionosphere::id,
                    ionosphere::full_duration,
                    ionosphere::generation,
                ))
                .order((ionosphere::last_matched.desc(), ionosphere::id))
                .load(conn)?;
            let ids: Vec<i32> = fps.iter().map(|f| f.0).collect();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let feats: Vec<(i32, i32, Option<f64>)> = ionosphere_fp_features::table
                .filter(ionosphere_fp_features::fp_id.eq_any(&ids))
                .select((
                    ionosphere_fp_features::fp_id,
                    ionosphere_fp_features::feature_id,
                    ionosphere_fp_features::value,
                ))
                .order((
                    ionosphere_fp_features::fp_id,
                    ionosphere_fp_features::feature_id,
                ))
                .load(conn)?;
            let ranges: Vec<(i32, f64, f64, i32, i32, f64)> = ionosphere_minmax::table
                .filter(ionosphere_minmax::fp_id.eq_any(&ids))
                .select((
                    ionosphere_minmax::fp_id,
                    ionosphere_minmax::minmax_min,
                    ionosphere_minmax::minmax_max,
                    ionosphere_minmax::values_count,
                    ionosphere_minmax::features_count,
                    ionosphere_minmax::features_sum,
                ))
                .load(conn)?;
            let layer_rows: Vec<(i32, i32, String, String, String, Option<i32>)> =
                layers_algorithms::table
                    .inner_join(
                        ionosphere_layers::table
                            .on(ionosphere_layers::id.eq(layers_algorithms::layer_id)),
                    )
                    .filter(layers_algorithms::fp_id.eq_any(&ids))
                    .filter(ionosphere_layers::enabled.eq(Some(1i16)))
                    .select((
                        layers_algorithms::fp_id,
                        layers_algorithms::layer_id,
                        layers_algorithms::layer,
                        layers_algorithms::condition,
                        layers_algorithms::layer_boundary,
                        layers_algorithms::times_in_row,
                    ))
                    .order(layers_algorithms::id)
                    .load(conn)?;
            Ok(fps
                .into_iter()
                .map(|(id, full_duration, generation)| ProfileFeatures {
                    id,
                    full_duration: i64::from(full_duration),
                    generation: generation.unwrap_or(0),
                    features: feats
                        .iter()
                        .filter(|f| f.0 == id)
                        .filter_map(|f| f.2.map(|v| (f.1, v)))
                        .collect(),
                    minmax: ranges.iter().find(|r| r.0 == id).map(|r| MinMax {
                        min: r.1,
                        max: r.2,
                        values_count: usize::try_from(r.3).unwrap_or(0),
                        features_count: usize::try_from(r.4).unwrap_or(0),
                        features_sum: r.5,
                    }),
                    layers: layer_rows
                        .iter()
                        .filter(|l| l.0 == id)
                        .map(|l| LayerRule {
                            layer_id: l.1,
                            layer: l.2.clone(),
                            condition: l.3.clone(),
                            boundary: l.4.clone(),
                            times_in_row: l.5.unwrap_or(0),
                        })
                        .collect(),
                })
                .collect())
        }

        pub(super) fn record_checked(conn: &mut Conn, fp_ids: &[i32], now: i64) -> QueryResult<()> {
            if fp_ids.is_empty() {
                return Ok(());
            }
            diesel::update(ionosphere::table.filter(ionosphere::id.eq_any(fp_ids)))
                .set((
                    ionosphere::checked_count.eq(ionosphere::checked_count + 1),
                    ionosphere::last_checked.eq(to_i32(now)),
                ))
                .execute(conn)?;
            Ok(())
        }

        pub(super) fn record_match(conn: &mut Conn, m: &NewMatch) -> QueryResult<i32> {
            conn.transaction(|conn| {
                diesel::update(ionosphere::table.filter(ionosphere::id.eq(m.fp_id)))
                    .set((
                        ionosphere::matched_count.eq(ionosphere::matched_count + 1),
                        ionosphere::last_matched.eq(to_i32(m.now)),
                    ))
                    .execute(conn)?;
                let mm = |v: f64| if m.minmax { v } else { 0.0 };
                insert_returning_id!(
                    conn,
                    diesel::insert_into(ionosphere_matched::table).values((
                        ionosphere_matched::fp_id.eq(m.fp_id),
                        ionosphere_matched::metric_timestamp.eq(to_i32(m.metric_timestamp)),
                        ionosphere_matched::all_calc_features_sum.eq(m.all_calc_features_sum),
                        ionosphere_matched::all_calc_features_count.eq(m.all_calc_features_count),
                        ionosphere_matched::sum_common_values.eq(m.sum_common_values),
                        ionosphere_matched::common_features_count.eq(m.common_features_count),
                        ionosphere_matched::tsfresh_version.eq(TSFRESH_VERSION),
                        ionosphere_matched::minmax.eq(i16::from(m.minmax)),
                        ionosphere_matched::minmax_fp_features_sum.eq(mm(m.minmax_fp_features_sum)),
                        ionosphere_matched::minmax_fp_features_count.eq(if m.minmax {
                            m.minmax_features_count
                        } else {
                            0
                        }),
                        ionosphere_matched::minmax_anomalous_features_sum
                            .eq(mm(m.minmax_anomalous_features_sum)),
                        ionosphere_matched::minmax_anomalous_features_count.eq(if m.minmax {
                            m.minmax_features_count
                        } else {
                            0
                        }),
                        ionosphere_matched::fp_count.eq(m.fp_count),
                        ionosphere_matched::fp_checked.eq(m.fp_checked),
                    )),
                    ionosphere_matched::id
                )
            })
        }

        pub(super) fn record_layers_match(conn: &mut Conn, m: &NewLayersMatch) -> QueryResult<i32> {
            conn.transaction(|conn| {
                diesel::update(
                    ionosphere_layers::table.filter(ionosphere_layers::id.eq(m.layer_id)),
                )
                .set((
                    ionosphere_layers::matched_count.eq(ionosphere_layers::matched_count + 1),
                    ionosphere_layers::last_matched.eq(to_i32(m.now)),
                ))
                .execute(conn)?;
                insert_returning_id!(
                    conn,
                    diesel::insert_into(ionosphere_layers_matched::table).values((
                        ionosphere_layers_matched::layer_id.eq(m.layer_id),
                        ionosphere_layers_matched::fp_id.eq(m.fp_id),
                        ionosphere_layers_matched::metric_id.eq(m.metric_id),
                        ionosphere_layers_matched::anomaly_timestamp
                            .eq(to_i32(m.anomaly_timestamp)),
                        ionosphere_layers_matched::anomalous_datapoint.eq(m.anomalous_datapoint),
                        ionosphere_layers_matched::full_duration.eq(to_i32(m.full_duration)),
                        ionosphere_layers_matched::layers_count.eq(1),
                        ionosphere_layers_matched::layers_checked.eq(m.layers_checked),
                        ionosphere_layers_matched::approx_close.eq(i16::from(m.approx_close)),
                    )),
                    ionosphere_layers_matched::id
                )
            })
        }

        /// Adds a layers definition to a profile: one `ionosphere_layers` row, its rules, and
        /// `ionosphere.layers_id`.
        pub(super) fn create_layers(
            conn: &mut Conn,
            fp_id: i32,
            metric_id: i32,
            label: Option<&str>,
            rules: &[LayerRule],
        ) -> QueryResult<i32> {
            conn.transaction(|conn| {
                let layer_id = insert_returning_id!(
                    conn,
                    diesel::insert_into(ionosphere_layers::table).values((
                        ionosphere_layers::fp_id.eq(fp_id),
                        ionosphere_layers::metric_id.eq(metric_id),
                        ionosphere_layers::enabled.eq(1i16),
                        ionosphere_layers::matched_count.eq(0),
                        ionosphere_layers::check_count.eq(0),
                        ionosphere_layers::label.eq(label),
                    )),
                    ionosphere_layers::id
                )?;
                for r in rules {
                    let kind = match r.layer.as_str() {
                        "Es" => "day",
                        "F1" | "F2" => "time",
                        _ => "value",
                    };
                    diesel::insert_into(layers_algorithms::table)
                        .values((
                            layers_algorithms::layer_id.eq(layer_id),
                            layers_algorithms::fp_id.eq(fp_id),
                            layers_algorithms::metric_id.eq(metric_id),
                            layers_algorithms::layer.eq(&r.layer),
                            layers_algorithms::type_.eq(kind),
                            layers_algorithms::condition.eq(&r.condition),
                            layers_algorithms::layer_boundary.eq(&r.boundary),
                            layers_algorithms::times_in_row.eq(r.times_in_row),
                        ))
                        .execute(conn)?;
                }
                diesel::update(ionosphere::table.filter(ionosphere::id.eq(fp_id)))
                    .set(ionosphere::layers_id.eq(layer_id))
                    .execute(conn)?;
                Ok(layer_id)
            })
        }

        pub(super) fn profile_series(conn: &mut Conn, fp_id: i32) -> QueryResult<Vec<(i64, f64)>> {
            let rows: Vec<(i64, Option<f64>)> = ionosphere_fp_timeseries::table
                .filter(ionosphere_fp_timeseries::fp_id.eq(fp_id))
                .select((
                    ionosphere_fp_timeseries::timestamp,
                    ionosphere_fp_timeseries::value,
                ))
                .order(ionosphere_fp_timeseries::timestamp)
                .load(conn)?;
            Ok(rows
                .into_iter()
                .filter_map(|(t, v)| v.map(|v| (t, v)))
                .collect())
        }

        pub(super) fn training_series(
            conn: &mut Conn,
            metric: &str,
            ts: i64,
        ) -> QueryResult<Option<Vec<(i64, f64)>>> {
            let ids: Vec<(i32, String)> = metrics::table
                .filter(metrics::metric.eq(metric))
                .select((metrics::id, metrics::metric))
                .load(conn)?;
            let ids: Vec<i32> = ids
                .into_iter()
                .filter(|(_, n)| n == metric)
                .map(|(i, _)| i)
                .collect();
            if ids.is_empty() {
                return Ok(None);
            }
            let text: Option<String> = ionosphere_training_data::table
                .filter(ionosphere_training_data::metric_id.eq_any(&ids))
                .filter(ionosphere_training_data::metric_timestamp.eq(ts))
                .select(ionosphere_training_data::series)
                .order(ionosphere_training_data::id)
                .first(conn)
                .optional()?;
            text.map(|t| {
                super::decode_series(&t)
                    .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
            })
            .transpose()
        }

        pub(super) fn set_learn_params(
            conn: &mut Conn,
            metric_id: i32,
            p: &LearnParams,
        ) -> QueryResult<()> {
            diesel::update(metrics::table.filter(metrics::id.eq(metric_id)))
                .set((
                    metrics::learn_full_duration_days.eq(Some(p.full_duration_days)),
                    metrics::learn_valid_ts_older_than.eq(Some(p.valid_ts_older_than)),
                    metrics::max_generations.eq(Some(p.max_generations)),
                    metrics::max_percent_diff_from_origin.eq(Some(p.max_percent_diff_from_origin)),
                ))
                .execute(conn)?;
            Ok(())
        }

        pub(super) fn learn_params(
            conn: &mut Conn,
            metric_id: i32,
        ) -> QueryResult<Option<LearnParams>> {
            let row: Option<(Option<i32>, Option<i32>, Option<i32>, Option<f64>)> = metrics::table
                .filter(metrics::id.eq(metric_id))
                .select((
                    metrics::learn_full_duration_days,
                    metrics::learn_valid_ts_older_than,
                    metrics::max_generations,
                    metrics::max_percent_diff_from_origin,
                ))
                .first(conn)
                .optional()?;
            let d = LearnParams::default();
            Ok(row.map(|(days, valid, gens, pct)| LearnParams {
                full_duration_days: days.unwrap_or(d.full_duration_days),
                valid_ts_older_than: valid.unwrap_or(d.valid_ts_older_than),
                max_generations: gens.unwrap_or(d.max_generations),
                max_percent_diff_from_origin: pct.unwrap_or(d.max_percent_diff_from_origin),
            }))
        }

        pub(super) fn origin_of(
            conn: &mut Conn,
            fp_id: i32,
        ) -> QueryResult<Option<(i32, f64, i64)>> {
            let mut id = fp_id;
            // Bounded walk: a corrupt parent loop cannot spin for ever.
            for _ in 0..1_000 {
                let row: Option<(Option<i32>, Option<i32>, Option<f64>, i32)> = ionosphere::table
                    .filter(ionosphere::id.eq(id))
                    .select((
                        ionosphere::parent_id,
                        ionosphere::generation,
                        ionosphere::features_sum,
                        ionosphere::anomaly_timestamp,
                    ))
                    .first(conn)
                    .optional()?;
                let Some((parent, generation, sum, ts)) = row else {
                    return Ok(None);
                };
                let parent = parent.unwrap_or(0);
                if generation.unwrap_or(0) == 0 || parent == 0 || parent == id {
                    return Ok(sum.map(|s| (id, s, i64::from(ts))));
                }
                id = parent;
            }
            Ok(None)
        }

        pub(super) fn profile_at(
            conn: &mut Conn,
            metric_id: i32,
            anomaly_timestamp: i64,
            full_duration: i64,
        ) -> QueryResult<Option<i32>> {
            ionosphere::table
                .filter(ionosphere::metric_id.eq(metric_id))
                .filter(ionosphere::anomaly_timestamp.eq(to_i32(anomaly_timestamp)))
                .filter(ionosphere::full_duration.eq(to_i32(full_duration)))
                .select(ionosphere::id)
                .order(ionosphere::id)
                .first(conn)
                .optional()
        }

        pub(super) fn profile_metric_id(conn: &mut Conn, fp_id: i32) -> QueryResult<Option<i32>> {
            ionosphere::table
                .filter(ionosphere::id.eq(fp_id))
                .select(ionosphere::metric_id)
                .first(conn)
                .optional()
        }

        pub(super) fn match_count(conn: &mut Conn, fp_id: i32) -> QueryResult<i64> {
            ionosphere_matched::table
                .filter(ionosphere_matched::fp_id.eq(fp_id))
                .count()
                .get_result(conn)
        }
    };
}

mod sqlite_i {
    type Conn = diesel::SqliteConnection;

    macro_rules! insert_returning_id {
        ($conn:expr, $stmt:expr, $id:expr) => {
            $stmt.returning($id).get_result::<i32>($conn)
        };
    }

    ionosphere_queries!();
}

mod pg_i {
    type Conn = crate::db::PgConn;

    macro_rules! insert_returning_id {
        ($conn:expr, $stmt:expr, $id:expr) => {
            $stmt.returning($id).get_result::<i32>($conn)
        };
    }

    ionosphere_queries!();
}

mod mysql_i {
    type Conn = crate::db::MysqlConn;

    /// MySQL has no RETURNING: the id comes from `LAST_INSERT_ID()` on the same connection.
    fn last_insert_id(conn: &mut Conn) -> QueryResult<i32> {
        let id: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "CAST(LAST_INSERT_ID() AS SIGNED)",
        ))
        .get_result(conn)?;
        i32::try_from(id).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
    }

    macro_rules! insert_returning_id {
        ($conn:expr, $stmt:expr, $id:expr) => {{
            let _ = $id;
            $stmt
                .execute(&mut *$conn)
                .and_then(|_| last_insert_id($conn))
        }};
    }

    ionosphere_queries!();
}

/// Runs `$f(conn, args…)` from the backend module matching `$pool`, on one pooled connection.
macro_rules! ion_dispatch {
    ($pool:expr, $f:ident ( $($arg:expr),* )) => {
        match $pool.kind() {
            PoolKind::Sqlite(p) => {
                let mut c = $pool.checkout(p)?;
                sqlite_i::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }
            PoolKind::Mysql(p) => crate::db::off_runtime(|| {
                let mut c = $pool.checkout(p)?;
                mysql_i::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }),
            PoolKind::Postgres(p) => crate::db::off_runtime(|| {
                let mut c = $pool.checkout(p)?;
                pg_i::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }),
        }
    };
}

/// Keeps an anomaly's series for training (once per metric, timestamp and app). Returns
/// false when it was already kept.
pub fn store_training(
    pool: &Pool,
    cache: &mut IdCache,
    td: &TrainingData,
) -> Result<bool, DbError> {
    let metric_id = resolve_id(pool, cache, Lookup::Metric, &td.metric)?;
    let app_id = resolve_id(pool, cache, Lookup::App, &td.app)?;
    ion_dispatch!(pool, store_training(metric_id, app_id, td))
}

/// Deletes training data kept before `before` (epoch seconds); returns the rows deleted.
pub fn prune_training(pool: &Pool, before: i64) -> Result<usize, DbError> {
    ion_dispatch!(pool, prune_training(before))
}

/// The anomaly `anomaly_id` with its kept training data; None when no such anomaly.
pub fn anomaly_for_training(
    pool: &Pool,
    anomaly_id: i64,
) -> Result<Option<AnomalyForTraining>, DbError> {
    ion_dispatch!(pool, anomaly_for_training(anomaly_id))
}

/// The operator-trained profile of this metric, anomaly and duration, if one exists:
/// `(fp_id, features_count, features_sum)`.
pub fn find_profile(
    pool: &Pool,
    metric_id: i32,
    anomaly_timestamp: i64,
    full_duration: i64,
) -> Result<Option<(i32, i32, f64)>, DbError> {
    ion_dispatch!(
        pool,
        find_profile(metric_id, anomaly_timestamp, full_duration)
    )
}

/// Creates a features profile with its features and series, and marks the metric
/// Ionosphere-enabled, in one transaction. Returns the fp id.
pub fn create_profile(pool: &Pool, profile: &NewProfile) -> Result<i32, DbError> {
    ion_dispatch!(pool, create_profile(profile))
}

/// Every profile of `metric` (exact name), oldest first.
pub fn profiles(pool: &Pool, metric: &str) -> Result<Vec<ProfileRow>, DbError> {
    ion_dispatch!(pool, profiles(metric))
}

/// The matches of the given profiles (features and layers), newest first, at most
/// [`MAX_MATCHES`] of each kind.
pub fn matches(pool: &Pool, fp_ids: &[i32]) -> Result<Vec<MatchRow>, DbError> {
    ion_dispatch!(pool, matches(fp_ids))
}

/// Enables or disables a profile; disabling also disables every profile learnt from it.
/// Returns the ids changed; `DbError::Query(NotFound)` when no such profile.
pub fn set_enabled(pool: &Pool, fp_id: i32, enabled: bool) -> Result<Vec<i32>, DbError> {
    ion_dispatch!(pool, set_enabled(fp_id, enabled))
}

/// The metric name of a profile.
pub fn metric_of_profile(pool: &Pool, fp_id: i32) -> Result<Option<String>, DbError> {
    ion_dispatch!(pool, metric_of_profile(fp_id))
}

/// `(metric_id, metric)` of every Ionosphere-enabled metric.
pub fn enabled_metrics(pool: &Pool) -> Result<Vec<(i32, String)>, DbError> {
    ion_dispatch!(pool, enabled_metrics())
}

/// The enabled profiles of a metric with their features, series range and layers, most
/// recently matched first.
pub fn matching_profiles(pool: &Pool, metric_id: i32) -> Result<Vec<ProfileFeatures>, DbError> {
    ion_dispatch!(pool, matching_profiles(metric_id))
}

/// `checked_count + 1, last_checked = now` for each profile compared.
pub fn record_checked(pool: &Pool, fp_ids: &[i32], now: i64) -> Result<(), DbError> {
    ion_dispatch!(pool, record_checked(fp_ids, now))
}

/// Records a features match: the profile's counts and an `ionosphere_matched` row.
pub fn record_match(pool: &Pool, m: &NewMatch) -> Result<i32, DbError> {
    ion_dispatch!(pool, record_match(m))
}

/// Records a layers match: the layer's counts and an `ionosphere_layers_matched` row.
pub fn record_layers_match(pool: &Pool, m: &NewLayersMatch) -> Result<i32, DbError> {
    ion_dispatch!(pool, record_layers_match(m))
}

/// Adds layers to a profile; returns the layers id.
pub fn create_layers(
    pool: &Pool,
    fp_id: i32,
    metric_id: i32,
    label: Option<&str>,
    rules: &[LayerRule],
) -> Result<i32, DbError> {
    ion_dispatch!(pool, create_layers(fp_id, metric_id, label, rules))
}

/// Writes a metric's learn columns (`learn_full_duration_days`, `learn_valid_ts_older_than`,
/// `max_generations`, `max_percent_diff_from_origin`).
pub fn set_learn_params(pool: &Pool, metric_id: i32, params: &LearnParams) -> Result<(), DbError> {
    ion_dispatch!(pool, set_learn_params(metric_id, params))
}

/// A metric's learn columns (NULLs read as Skyline's defaults); None when no such metric.
pub fn learn_params(pool: &Pool, metric_id: i32) -> Result<Option<LearnParams>, DbError> {
    ion_dispatch!(pool, learn_params(metric_id))
}

/// The generation-0 origin of a profile (following `parent_id`): `(id, features_sum,
/// anomaly_timestamp)`; None when a profile on the way is missing.
pub fn origin_of(pool: &Pool, fp_id: i32) -> Result<Option<(i32, f64, i64)>, DbError> {
    ion_dispatch!(pool, origin_of(fp_id))
}

/// A profile of any generation of the metric at that anomaly timestamp and duration.
pub fn profile_at(
    pool: &Pool,
    metric_id: i32,
    anomaly_timestamp: i64,
    full_duration: i64,
) -> Result<Option<i32>, DbError> {
    ion_dispatch!(
        pool,
        profile_at(metric_id, anomaly_timestamp, full_duration)
    )
}

/// The `metrics.id` of a profile; None when no such profile.
pub fn profile_metric_id(pool: &Pool, fp_id: i32) -> Result<Option<i32>, DbError> {
    ion_dispatch!(pool, profile_metric_id(fp_id))
}

/// `ionosphere_matched` rows of a profile.
pub fn match_count(pool: &Pool, fp_id: i32) -> Result<i64, DbError> {
    ion_dispatch!(pool, match_count(fp_id))
}

/// The training series of a profile, in time order.
pub fn profile_series(pool: &Pool, fp_id: i32) -> Result<Vec<(i64, f64)>, DbError> {
    ion_dispatch!(pool, profile_series(fp_id))
}

/// The kept series of `metric`'s anomaly at `ts` (any app), if still kept.
pub fn training_series(
    pool: &Pool,
    metric: &str,
    ts: i64,
) -> Result<Option<Vec<(i64, f64)>>, DbError> {
    ion_dispatch!(pool, training_series(metric, ts))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{anomaly, sqlite_db, TestDb};
    use super::super::{migrate, queries};
    use super::*;

    fn profile(metric_id: i32, ts: i64, parent: i32, generation: i32) -> NewProfile {
        NewProfile {
            metric_id,
            full_duration: 86_400,
            anomaly_timestamp: ts,
            calc_time: 0.001,
            features_count: 210,
            features_sum: 12_345.5,
            features: vec![(1, 1.5), (2, 2.5), (216, -3.0)],
            series: vec![(ts - 120, 1.0), (ts - 60, 2.0), (ts - 60, 9.0), (ts, 3.0)],
            minmax: Some(MinMax {
                min: 1.0,
                max: 3.0,
                values_count: 3,
                features_count: 210,
                features_sum: 42.0,
            }),
            parent_id: parent,
            generation,
            label: Some("<b>normal</b>".into()),
            user: "admin".into(),
        }
    }

    /// Training data, profiles, cascade disable, matches and layers on one backend.
    fn round_trip(pool: &Pool) {
        migrate(pool).unwrap();
        let mut ids = IdCache::new();
        let ts = 1_700_000_000;
        let metric = "ionosphere.test.metric";
        let id = queries::insert_anomaly(
            pool,
            &mut ids,
            &anomaly(metric, ts, "analyzer", &["grubbs"]),
            1,
        )
        .unwrap();
        // No training data yet.
        let a = anomaly_for_training(pool, id).unwrap().unwrap();
        assert_eq!(
            (a.metric.as_str(), a.app.as_str(), a.anomaly_timestamp),
            (metric, "analyzer", ts)
        );
        assert_eq!(a.training, None);
        assert_eq!(anomaly_for_training(pool, id + 1000).unwrap(), None);
        let td = TrainingData {
            metric: metric.into(),
            app: "analyzer".into(),
            metric_timestamp: ts,
            full_duration: 86_400,
            added_at: ts + 5,
            series: vec![(ts - 60, 1.25), (ts, 1e9)],
        };
        assert!(store_training(pool, &mut ids, &td).unwrap());
        assert!(!store_training(pool, &mut ids, &td).unwrap(), "kept once");
        let a = anomaly_for_training(pool, id).unwrap().unwrap();
        assert_eq!(a.training.as_ref(), Some(&td));
        assert_eq!(
            training_series(pool, metric, ts).unwrap(),
            Some(td.series.clone())
        );
        // Profiles: a parent, its learnt child and grandchild, and an unrelated one.
        assert_eq!(find_profile(pool, a.metric_id, ts, 86_400).unwrap(), None);
        let p1 = create_profile(pool, &profile(a.metric_id, ts, 0, 0)).unwrap();
        assert_eq!(
            find_profile(pool, a.metric_id, ts, 86_400).unwrap(),
            Some((p1, 210, 12_345.5))
        );
        let p2 = create_profile(pool, &profile(a.metric_id, ts + 60, p1, 1)).unwrap();
        let p3 = create_profile(pool, &profile(a.metric_id, ts + 120, p2, 2)).unwrap();
        let p4 = create_profile(pool, &profile(a.metric_id, ts + 180, 0, 0)).unwrap();
        // Learning: the origin of a grandchild is p1; a profile of any generation is found at
        // its timestamp; the metric's learn columns round-trip (defaults first).
        assert_eq!(origin_of(pool, p3).unwrap(), Some((p1, 12_345.5, ts)));
        assert_eq!(origin_of(pool, p4).unwrap(), Some((p4, 12_345.5, ts + 180)));
        assert_eq!(origin_of(pool, p4 + 1000).unwrap(), None);
        assert_eq!(
            profile_at(pool, a.metric_id, ts + 120, 86_400).unwrap(),
            Some(p3)
        );
        assert_eq!(
            profile_at(pool, a.metric_id, ts + 120, 3_600).unwrap(),
            None
        );
        assert_eq!(profile_metric_id(pool, p2).unwrap(), Some(a.metric_id));
        assert_eq!(profile_metric_id(pool, p4 + 1000).unwrap(), None);
        // A new metrics row has Skyline's determine_db_id defaults.
        assert_eq!(
            learn_params(pool, a.metric_id).unwrap(),
            Some(LearnParams {
                full_duration_days: 30,
                valid_ts_older_than: 3661,
                max_generations: 16,
                max_percent_diff_from_origin: 100.0,
            })
        );
        let lp = LearnParams {
            full_duration_days: 3,
            valid_ts_older_than: 0,
            max_generations: 2,
            max_percent_diff_from_origin: 4.5,
        };
        set_learn_params(pool, a.metric_id, &lp).unwrap();
        assert_eq!(learn_params(pool, a.metric_id).unwrap(), Some(lp));
        assert_eq!(learn_params(pool, a.metric_id + 1000).unwrap(), None);
        assert_eq!(
            enabled_metrics(pool).unwrap(),
            vec![(a.metric_id, metric.to_string())]
        );
        let list = profiles(pool, metric).unwrap();
        assert_eq!(
            list.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![p1, p2, p3, p4]
        );
        assert!(list.iter().all(|p| p.enabled));
        assert_eq!(list[0].label.as_deref(), Some("<b>normal</b>"));
        assert_eq!(list[0].user.as_deref(), Some("admin"));
        assert_eq!((list[2].generation, list[2].parent_id), (2, i64::from(p2)));
        // The series was de-duplicated by timestamp (first kept) and is in time order.
        assert_eq!(
            profile_series(pool, p1).unwrap(),
            vec![(ts - 120, 1.0), (ts - 60, 2.0), (ts, 3.0)]
        );
        let m = matching_profiles(pool, a.metric_id).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].features, vec![(1, 1.5), (2, 2.5), (216, -3.0)]);
        assert_eq!(m[0].minmax.map(|x| x.features_sum), Some(42.0));
        // Disabling the parent disables its learnt descendants, not the unrelated profile.
        let mut changed = set_enabled(pool, p1, false).unwrap();
        changed.sort_unstable();
        assert_eq!(changed, vec![p1, p2, p3]);
        let ids_enabled: Vec<i32> = matching_profiles(pool, a.metric_id)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids_enabled, vec![p4]);
        assert_eq!(set_enabled(pool, p2, true).unwrap(), vec![p2]);
        assert!(matches!(
            set_enabled(pool, 999_999, false),
            Err(DbError::Query(diesel::result::Error::NotFound))
        ));
        // A features match: counts and the ionosphere_matched row.
        record_checked(pool, &[p4], ts + 600).unwrap();
        let mid = record_match(
            pool,
            &NewMatch {
                fp_id: p4,
                metric_timestamp: ts + 600,
                all_calc_features_sum: 12_000.0,
                all_calc_features_count: 210,
                sum_common_values: 11_000.0,
                common_features_count: 3,
                minmax: false,
                minmax_fp_features_sum: 1.0,
                minmax_anomalous_features_sum: 1.0,
                minmax_features_count: 210,
                fp_count: 2,
                fp_checked: 1,
                now: ts + 601,
            },
        )
        .unwrap();
        assert_eq!(match_count(pool, p4).unwrap(), 1);
        let p = profiles(pool, metric)
            .unwrap()
            .into_iter()
            .find(|p| p.id == p4)
            .unwrap();
        assert_eq!((p.matched_count, p.last_matched), (1, Some(ts + 601)));
        // Layers on p4 and a layers match.
        let rules = vec![
            LayerRule {
                layer_id: 0,
                layer: "D".into(),
                condition: ">".into(),
                boundary: "5".into(),
                times_in_row: 0,
            },
            LayerRule {
                layer_id: 0,
                layer: "E".into(),
                condition: "<".into(),
                boundary: "5".into(),
                times_in_row: 1,
            },
        ];
        let layer = create_layers(pool, p4, a.metric_id, Some("cap"), &rules).unwrap();
        let got = matching_profiles(pool, a.metric_id).unwrap();
        let l = &got.iter().find(|p| p.id == p4).unwrap().layers;
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|r| r.layer_id == layer));
        assert_eq!(
            (
                l[0].layer.as_str(),
                l[0].condition.as_str(),
                l[0].boundary.as_str()
            ),
            ("D", ">", "5")
        );
        let lid = record_layers_match(
            pool,
            &NewLayersMatch {
                layer_id: layer,
                fp_id: p4,
                metric_id: a.metric_id,
                anomaly_timestamp: ts + 900,
                anomalous_datapoint: 4.0,
                full_duration: 86_400,
                layers_checked: 1,
                approx_close: false,
                now: ts + 901,
            },
        )
        .unwrap();
        let all = matches(pool, &[p1, p4]).unwrap();
        assert_eq!(
            all.iter()
                .map(|m| (m.id, m.method, m.metric_timestamp))
                .collect::<Vec<_>>(),
            vec![(lid, "layers", ts + 900), (mid, "features", ts + 600)]
        );
        // Pruning deletes only what was kept before the cut-off.
        assert_eq!(prune_training(pool, ts).unwrap(), 0);
        assert_eq!(prune_training(pool, ts + 6).unwrap(), 1);
        assert_eq!(
            anomaly_for_training(pool, id).unwrap().unwrap().training,
            None
        );
    }

    #[test]
    fn sqlite_round_trip() {
        let (_dir, pool) = sqlite_db();
        round_trip(&pool);
    }

    #[test]
    fn mysql_round_trip() {
        let Some(db) = TestDb::mysql("ionosphere_mysql_round_trip") else {
            return;
        };
        round_trip(&db.pool);
    }

    #[test]
    fn postgres_round_trip() {
        let Some(db) = TestDb::postgres("ionosphere_postgres_round_trip") else {
            return;
        };
        round_trip(&db.pool);
    }
}
