//! The logic behind `skyline analyze`: run the analyzer's pre-checks, algorithms and
//! CONSENSUS over series read from files, without Redis. Two inputs:
//!
//! * JSON Lines in the format of the reference vectors (`metric`, `now`, `timeseries`; other
//!   fields ignored), answered with one JSON line per series shaped like the vectors'
//!   `expected` (so a run over the vector file can be diffed against it);
//! * a `timestamp,value` CSV, answered with a readable table of every vote and the verdict.
//!
//! Owns parsing and rendering only; the numerics live in [`crate::analyze::algorithms`].

use std::fmt::{self, Write as _};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Number;

use super::algorithms::{run_selected_algorithm, Algorithm, Exception, Settings, Verdict};

/// What can go wrong while analysing a file.
#[derive(Debug, thiserror::Error)]
pub enum CrucibleError {
    /// A JSON line could not be read or is not a series (1-based line number).
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number in the input.
        line: usize,
        /// What was wrong with it.
        message: String,
    },
    /// Reading the input failed at a given line.
    #[error("line {line}: cannot read input: {source}")]
    Read {
        /// 1-based line number being read.
        line: usize,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Write(#[source] std::io::Error),
    /// A CSV file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CSV row could not be parsed (1-based line number).
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong with the row.
        message: String,
    },
}

impl CrucibleError {
    /// The 1-based input line the error refers to, if any (the CLI reports it, exit code 2).
    pub fn line(&self) -> Option<usize> {
        match self {
            CrucibleError::Line { line, .. }
            | CrucibleError::Read { line, .. }
            | CrucibleError::Csv { line, .. } => Some(*line),
            CrucibleError::Write(_) | CrucibleError::Io { .. } => None,
        }
    }
}

/// Counts over one [`analyze_jsonl`] run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Series read.
    pub series: usize,
    /// Series that passed the pre-checks and were analysed.
    pub analysed: usize,
    /// Series found anomalous.
    pub anomalous: usize,
    /// Series stopped by each pre-check, in Skyline's check order.
    pub exceptions: Vec<(Exception, usize)>,
    /// True votes per configured algorithm, in run order.
    pub triggered: Vec<(Algorithm, usize)>,
}

impl Summary {
    fn new(settings: &Settings) -> Self {
        Summary {
            exceptions: [
                Exception::TooShort,
                Exception::EmptyTimeseries,
                Exception::Stale,
                Exception::Boring,
            ]
            .into_iter()
            .map(|e| (e, 0))
            .collect(),
            triggered: settings.algorithms.iter().map(|&a| (a, 0)).collect(),
            ..Summary::default()
        }
    }

    fn add(&mut self, verdict: &Verdict) {
        self.series += 1;
        if let Some(e) = verdict.exception {
            if let Some(slot) = self.exceptions.iter_mut().find(|(x, _)| *x == e) {
                slot.1 += 1;
            }
            return;
        }
        self.analysed += 1;
        self.anomalous += usize::from(verdict.anomalous);
        for (slot, (_, vote)) in self.triggered.iter_mut().zip(&verdict.ensemble) {
            slot.1 += usize::from(*vote == Some(true));
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} series, {} analysed, {} anomalous",
            self.series, self.analysed, self.anomalous
        )?;
        for (e, n) in self.exceptions.iter().filter(|(_, n)| *n > 0) {
            write!(f, ", {n} {e}")?;
        }
        Ok(())
    }
}

/// One input line: the vectors' fields this command reads.
#[derive(Deserialize)]
struct InputSeries {
    metric: String,
    /// The wall clock for this series; the last timestamp when absent.
    now: Option<f64>,
    /// `[timestamp, value]` pairs; numbers keep their JSON form so an integer datapoint is
    /// written back as an integer, as the reference does.
    timeseries: Vec<(Number, Number)>,
}

/// The ensemble as a JSON object in run order (serde_json's own map would sort the keys).
struct EnsembleJson<'a>(&'a [(Algorithm, Option<bool>)]);

impl Serialize for EnsembleJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (alg, vote) in self.0 {
            map.serialize_entry(alg.name(), vote)?;
        }
        map.end()
    }
}

/// One output line, shaped like the vectors' `expected` plus the metric name.
#[derive(Serialize)]
struct OutputLine<'a> {
    metric: &'a str,
    anomalous: bool,
    ensemble: Option<EnsembleJson<'a>>,
    datapoint: Option<&'a Number>,
    exception: Option<&'static str>,
}

/// Analyse every series of a JSON Lines input and write one JSON line per series:
/// `{"metric", "anomalous", "ensemble": {every configured algorithm in order: true|false|null},
/// "datapoint", "exception"}`. The votes are raw (the short-circuit is switched off for them;
/// it never changes the verdict), and `ensemble` and `datapoint` are null when a pre-check
/// stopped the analysis, exactly like the vectors' `expected`. Blank lines are skipped.
///
/// # Errors
///
/// [`CrucibleError::Line`] or [`CrucibleError::Read`] (with the 1-based line number) for a
/// line that cannot be read or is not a series; [`CrucibleError::Write`] when writing fails.
pub fn analyze_jsonl<R: BufRead, W: Write>(
    input: R,
    mut out: W,
    settings: &Settings,
) -> Result<Summary, CrucibleError> {
    let settings = Settings {
        run_optimized_workflow: false,
        ..settings.clone()
    };
    let mut summary = Summary::new(&settings);
    let mut series: Vec<(f64, f64)> = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|source| CrucibleError::Read {
            line: line_no,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: InputSeries = serde_json::from_str(&line).map_err(|e| CrucibleError::Line {
            line: line_no,
            message: e.to_string(),
        })?;
        series.clear();
        for (t, v) in &parsed.timeseries {
            match (t.as_f64(), v.as_f64()) {
                (Some(t), Some(v)) => series.push((t, v)),
                _ => {
                    return Err(CrucibleError::Line {
                        line: line_no,
                        message: format!("unrepresentable number in [{t}, {v}]"),
                    })
                }
            }
        }
        let now = parsed
            .now
            .or_else(|| series.last().map(|p| p.0))
            .unwrap_or(0.0);
        let verdict = run_selected_algorithm(&series, now, &settings);
        summary.add(&verdict);
        let analysed = verdict.exception.is_none();
        let record = OutputLine {
            metric: &parsed.metric,
            anomalous: verdict.anomalous,
            ensemble: analysed.then_some(EnsembleJson(&verdict.ensemble)),
            datapoint: if analysed {
                parsed.timeseries.last().map(|p| &p.1)
            } else {
                None
            },
            exception: verdict.exception.map(Exception::name),
        };
        serde_json::to_writer(&mut out, &record)
            .map_err(|e| CrucibleError::Write(std::io::Error::other(e)))?;
        out.write_all(b"\n").map_err(CrucibleError::Write)?;
    }
    out.flush().map_err(CrucibleError::Write)?;
    Ok(summary)
}

/// Analyse one `timestamp,value` CSV and render a readable report: every algorithm's vote,
/// the consensus arithmetic and the verdict. A header row is optional; timestamps are epoch
/// seconds or `YYYY-MM-DD HH:MM:SS` (UTC, `T` separator accepted). Rows are stably sorted by
/// timestamp, as Skyline's analyzer does. `now` defaults to the last timestamp.
///
/// # Errors
///
/// [`CrucibleError::Io`] when the file cannot be opened, [`CrucibleError::Csv`] (with the
/// 1-based line number) for a row that cannot be parsed.
pub fn analyze_csv(
    path: &Path,
    now: Option<f64>,
    settings: &Settings,
) -> Result<String, CrucibleError> {
    let file = std::fs::File::open(path).map_err(|source| CrucibleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut series = parse_csv(std::io::BufReader::new(file), path)?;
    series.sort_by(|a, b| a.0.total_cmp(&b.0));
    let now = now.or_else(|| series.last().map(|p| p.0)).unwrap_or(0.0);
    Ok(render_report(
        &path.display().to_string(),
        &series,
        now,
        settings,
    ))
}

/// `skyline analyze --csv FILE --detector stream`: the stream detector's score of every row
/// of a `timestamp,value` CSV (rows taken in file order, as a stream), as
/// `timestamp,value,score` lines, then a `#` summary line with the detections at the
/// default threshold.
///
/// # Errors
///
/// [`CrucibleError::Io`] when the file cannot be read, [`CrucibleError::Csv`] for a bad row.
pub fn stream_csv(path: &Path) -> Result<String, CrucibleError> {
    use super::stream::{StreamParams, StreamState};
    use std::fmt::Write as _;
    let file = std::fs::File::open(path).map_err(|source| CrucibleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let series = parse_csv(std::io::BufReader::new(file), path)?;
    let params = StreamParams::default();
    let mut state = StreamState::new();
    let mut out = String::from("timestamp,value,score\n");
    let mut detections = 0usize;
    for &(t, v) in &series {
        let score = state.update(t as i64, v, &params);
        if score >= params.threshold {
            detections += 1;
        }
        let _ = writeln!(out, "{t},{v},{score:.6}");
    }
    let _ = writeln!(
        out,
        "# {}: {} rows, {detections} at or above the threshold {}",
        path.display(),
        series.len(),
        params.threshold
    );
    Ok(out)
}

/// Parse `timestamp,value` rows (header optional, blank lines skipped). `path` only labels
/// errors.
///
/// # Errors
///
/// [`CrucibleError::Csv`] for a line that cannot be read or parsed.
pub fn parse_csv<R: BufRead>(input: R, path: &Path) -> Result<Vec<(f64, f64)>, CrucibleError> {
    let mut series = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let csv_error = |message: String| CrucibleError::Csv {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let line = line.map_err(|e| csv_error(e.to_string()))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_row(line) {
            Ok(point) => series.push(point),
            // Only the first non-blank row may be a header.
            Err(_) if series.is_empty() && is_header(line) => continue,
            Err(message) => return Err(csv_error(message)),
        }
    }
    Ok(series)
}

fn is_header(line: &str) -> bool {
    line.split(',')
        .next()
        .is_some_and(|f| parse_timestamp(f.trim().trim_matches('"')).is_none())
}

fn parse_row(line: &str) -> Result<(f64, f64), String> {
    let mut fields = line.split(',').map(|f| f.trim().trim_matches('"'));
    let (Some(ts), Some(value)) = (fields.next(), fields.next()) else {
        return Err(format!("expected `timestamp,value`, got `{line}`"));
    };
    let t = parse_timestamp(ts).ok_or_else(|| format!("bad timestamp `{ts}`"))?;
    let v = value
        .parse::<f64>()
        .map_err(|_| format!("bad value `{value}`"))?;
    Ok((t, v))
}

/// Epoch seconds from `1700000000`, `1700000000.5` or `2023-11-14 22:13:20` (UTC; a `T`
/// separator and fractional seconds are accepted).
pub fn parse_timestamp(s: &str) -> Option<f64> {
    if let Ok(t) = s.parse::<f64>() {
        return t.is_finite().then_some(t);
    }
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let mut t = time.trim_end_matches('Z').splitn(3, ':');
    let hour: u32 = t.next()?.parse().ok()?;
    let minute: u32 = t.next()?.parse().ok()?;
    let second: f64 = t.next().unwrap_or("0").parse().ok()?;
    crate::model::time::epoch_from_utc(year, month, day, hour, minute, second)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for epoch seconds, for display.
pub fn format_timestamp(t: f64) -> String {
    if !t.is_finite() {
        return t.to_string();
    }
    crate::model::time::format_utc(t.floor() as i64)
}

fn vote_label(vote: Option<bool>) -> &'static str {
    match vote {
        Some(true) => "True",
        Some(false) => "False",
        None => "None",
    }
}

/// The text report of [`analyze_csv`] for an already parsed series.
pub fn render_report(label: &str, series: &[(f64, f64)], now: f64, settings: &Settings) -> String {
    let raw = Settings {
        run_optimized_workflow: false,
        ..settings.clone()
    };
    let verdict = run_selected_algorithm(series, now, &raw);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "series    {label}");
    match (series.first(), series.last()) {
        (Some(first), Some(last)) => {
            let _ = writeln!(
                out,
                "points    {}  from {}  to {}",
                series.len(),
                format_timestamp(first.0),
                format_timestamp(last.0)
            );
        }
        _ => {
            let _ = writeln!(out, "points    0");
        }
    }
    let _ = writeln!(out, "now       {}  ({now})", format_timestamp(now));
    let _ = writeln!(out);
    let votes = match verdict.exception {
        Some(e) => {
            let _ = writeln!(
                out,
                "not analysed: {e} (votes below bypass the pre-checks and do not count)"
            );
            settings
                .algorithms
                .iter()
                .map(|&a| (a, a.run(series, now, settings.full_duration)))
                .collect()
        }
        None => verdict.ensemble.clone(),
    };
    let _ = writeln!(out, "{:<30} vote", "algorithm");
    let _ = writeln!(out, "{:-<30} -----", "");
    for (alg, vote) in &votes {
        let _ = writeln!(out, "{:<30} {}", alg.name(), vote_label(*vote));
    }
    let _ = writeln!(out);
    let count = |v: Option<bool>| votes.iter().filter(|(_, x)| *x == v).count();
    let allowed = settings.algorithms.len() as i64 - settings.consensus as i64;
    let _ = writeln!(
        out,
        "consensus {} True, {} False, {} None; CONSENSUS {} allows at most {} False",
        count(Some(true)),
        count(Some(false)),
        count(None),
        settings.consensus,
        allowed.max(0)
    );
    let verdict_text = match verdict.exception {
        Some(e) => format!("not analysed ({e})"),
        None if verdict.anomalous => "ANOMALOUS".to_string(),
        None => "not anomalous".to_string(),
    };
    let _ = writeln!(out, "verdict   {verdict_text}");
    if let Some(d) = verdict.datapoint {
        let _ = writeln!(out, "datapoint {d}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io::Cursor;

    const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/algorithms.jsonl"
    );

    /// Running the command over the reference vectors reproduces every `expected`.
    #[test]
    fn jsonl_over_the_vectors_reproduces_expected() {
        let text = std::fs::read_to_string(VECTORS)
            .unwrap_or_else(|e| panic!("cannot read the reference vectors at {VECTORS}: {e}"));
        let mut out = Vec::new();
        let summary = analyze_jsonl(Cursor::new(&text), &mut out, &Settings::default())
            .expect("the vectors are valid input");
        assert_eq!(summary.series, 300);
        assert_eq!(summary.analysed, 279);
        assert_eq!(summary.anomalous, 87);
        let written = String::from_utf8(out).expect("utf-8 output");
        let mut lines = 0;
        for (input, output) in text.lines().zip(written.lines()) {
            let input: Value = serde_json::from_str(input).expect("input JSON");
            let output: Value = serde_json::from_str(output).expect("output JSON");
            let mut expected = input["expected"].clone();
            expected["metric"] = input["metric"].clone();
            assert_eq!(output, expected, "{}", input["metric"]);
            lines += 1;
        }
        assert_eq!(lines, 300);
        // Keys come out in ALGORITHMS order, and integer datapoints stay integers.
        let first = written
            .lines()
            .find(|l| l.contains("\"ensemble\":{"))
            .expect("a line");
        let hb = first.find("histogram_bins").expect("hb");
        let ls = first.find("least_squares").expect("ls");
        assert!(hb < ls);
    }

    #[test]
    fn jsonl_errors_carry_the_line_number() {
        let input = "\n{\"metric\":\"a\",\"now\":1,\"timeseries\":[[1,2]]}\nnot json\n";
        let err = analyze_jsonl(Cursor::new(input), Vec::new(), &Settings::default())
            .expect_err("line 3 is not JSON");
        assert_eq!(err.line(), Some(3));
        let input = "{\"metric\":\"a\",\"timeseries\":[[1,\"x\"]]}\n";
        let err = analyze_jsonl(Cursor::new(input), Vec::new(), &Settings::default())
            .expect_err("a string value");
        assert_eq!(err.line(), Some(1));
        let input = "{\"now\":1,\"timeseries\":[]}\n";
        let err = analyze_jsonl(Cursor::new(input), Vec::new(), &Settings::default())
            .expect_err("no metric");
        assert_eq!(err.line(), Some(1));
    }

    #[test]
    fn jsonl_exception_lines_have_null_ensemble_and_datapoint() {
        let input = "{\"metric\":\"m\",\"now\":5,\"timeseries\":[[1,2],[2,3]],\"extra\":1}\n";
        let mut out = Vec::new();
        analyze_jsonl(Cursor::new(input), &mut out, &Settings::default()).expect("valid");
        let line: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            line,
            serde_json::json!({"metric":"m","anomalous":false,"ensemble":null,
                               "datapoint":null,"exception":"TooShort"})
        );
    }

    #[test]
    fn timestamps_parse_both_forms() {
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000.0));
        assert_eq!(parse_timestamp("1700000000.5"), Some(1_700_000_000.5));
        assert_eq!(
            parse_timestamp("2023-11-14 22:13:20"),
            Some(1_700_000_000.0)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20"),
            Some(1_700_000_000.0)
        );
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0.0));
        assert_eq!(parse_timestamp("2000-02-29 12:00:00"), Some(951_825_600.0));
        assert_eq!(parse_timestamp("timestamp"), None);
        assert_eq!(parse_timestamp("2023-13-01 00:00:00"), None);
        assert_eq!(format_timestamp(1_700_000_000.0), "2023-11-14 22:13:20");
        assert_eq!(format_timestamp(951_825_600.0), "2000-02-29 12:00:00");
    }

    #[test]
    fn csv_report_shows_votes_and_verdict() {
        let dir = std::env::temp_dir().join(format!("skyline-crucible-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("spike.csv");
        let mut text = String::from("timestamp,value\n");
        for i in 0..1440u32 {
            let v = if i >= 1437 {
                500.0
            } else {
                10.0 + f64::from(i % 7)
            };
            let _ = writeln!(text, "{},{v}", 1_700_000_000 + 60 * i);
        }
        std::fs::write(&path, text).expect("write csv");
        let report = analyze_csv(&path, None, &Settings::default()).expect("report");
        assert!(report.contains("histogram_bins"), "{report}");
        assert!(report.contains("verdict   ANOMALOUS"), "{report}");
        assert!(report.contains("datapoint 500"), "{report}");
        let stale = analyze_csv(&path, Some(1_700_100_000.0), &Settings::default()).expect("ok");
        assert!(stale.contains("not analysed (Stale)"), "{stale}");
        std::fs::write(&path, "1,2\n3,x\n").expect("write");
        let err = analyze_csv(&path, None, &Settings::default()).expect_err("bad value");
        assert_eq!(err.line(), Some(2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
