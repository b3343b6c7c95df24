//! The logic behind `skyline nab`: run Skyline's algorithms as a streaming detector over
//! Numenta Anomaly Benchmark (NAB) data files and write results in NAB's layout, so that
//! `nab_score.py` can score them.
//!
//! The default [`NabOptions`] is the reference protocol under which earthgecko Skyline's NAB
//! score was obtained (see `shared/nab/README.md`): rows are fed in order and the *whole
//! history so far* is analysed at each row; seven algorithms (histogram_bins,
//! first_hour_average, stddev_from_average, mean_subtraction_cumulation,
//! median_absolute_deviation, stddev_from_moving_average, least_squares) vote, the row scores
//! 1.0 when at least 5 voted True (a failing algorithm counts as not triggered), and after a
//! 1.0 the rows of the next 12 hours are not analysed and score 0.0 (their values still join
//! the history). The detector also runs during NAB's probation rows.
//!
//! With [`NabEngine::Stream`] (`skyline nab --detector stream`) the rows are scored by the
//! graded [`crate::analyze::stream`] detector instead (scores in [0, 1], written with six
//! decimals, for `nab_score.py` to optimise the threshold over). With
//! [`NabEngine::Combined`] (`--detector any` / `all`) both run and each row is scored as
//! `[analyzer] combine` would decide it.
//!
//! Owns file discovery, CSV reading and writing, the streaming loop and the thread pool;
//! the numerics are [`crate::analyze::algorithms`]' and [`crate::analyze::stream`]'s.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::algorithms::{run_algorithms, stats, Algorithm, MovingAverage, Workspace};
use super::crucible::parse_timestamp;

/// Parameters of the NAB detector. `Default` is the reference protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct NabOptions {
    /// The algorithms that vote (protocol: the nine minus grubbs and ks_test).
    pub algorithms: Vec<Algorithm>,
    /// A row is a detection when at least this many algorithms voted True (protocol: 5).
    pub consensus: usize,
    /// Seconds after a detection during which rows are not analysed and score 0 (protocol:
    /// 43,200). A row is suppressed when `t - t_detection < expiry`; 0 disables expiry.
    pub expiry: i64,
    /// Analyse only the points with `t > t_row - window` instead of the whole history
    /// (Skyline's FULL_DURATION in Redis). Protocol: `None`, the whole history.
    pub window: Option<i64>,
    /// FULL_DURATION as first_hour_average sees it (protocol: Skyline's default 86,400).
    pub full_duration: i64,
    /// Results are named `<detector>_<name>.csv`; `None` uses the base name of the output
    /// directory, as NAB's `results/<detector>/` layout expects.
    pub detector: Option<String>,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Which implementation of the algorithms votes (protocol: the reference detector's).
    pub variant: NabVariant,
    /// Which detector scores the rows: Skyline's algorithms (0/1 scores, the protocol above)
    /// or the graded [`crate::analyze::stream`] detector.
    pub engine: NabEngine,
}

/// The detector `skyline nab` runs (`--detector`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum NabEngine {
    /// Skyline's algorithms as configured by the other options (scores 0.0 / 1.0).
    #[default]
    Skyline,
    /// The stream detector with these parameters (graded scores in [0, 1]); the other
    /// options except `detector` and `threads` do not apply.
    Stream(super::stream::StreamParams),
    /// Both, combined row by row as `[analyzer] combine` does (`any` or `all`), with graded
    /// scores so that `nab_score.py` can still optimise the stream detector's threshold:
    /// `any` scores a row 1.0 when Skyline's algorithms fired on it, else the stream score;
    /// `all` scores it the stream score when Skyline's algorithms fired, else 0.0. At a
    /// threshold θ the row is a detection exactly when "skyline or/and stream ≥ θ".
    Combined(super::streaming::Combine, super::stream::StreamParams),
}

/// Which implementation of Skyline's algorithms the NAB detector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NabVariant {
    /// The algorithms exactly as the reference detector ran them (earthgecko's NAB detector,
    /// `nab/detectors/earthgecko_skyline`, Python 2.7 with numpy/pandas of 2018). They predate
    /// several changes of the analyzer: first_hour_average takes *every* value older than
    /// 23 h (not one hour a day ago), mean_subtraction_cumulation uses the sample std,
    /// least_squares the population std with Python 2's half-away-from-zero `round()`,
    /// histogram_bins `np.histogram`'s edge-exact binning (a constant series gets a ±0.5
    /// range), and tail_avg is Python 2 floor division when a file's values are integers.
    /// This is what the published anchor score was obtained with.
    #[default]
    Reference,
    /// The analyzer's algorithms of this crate (Skyline G at its reference commit).
    Analyzer,
}

impl Default for NabOptions {
    fn default() -> Self {
        NabOptions {
            algorithms: vec![
                Algorithm::HistogramBins,
                Algorithm::FirstHourAverage,
                Algorithm::StddevFromAverage,
                Algorithm::MeanSubtractionCumulation,
                Algorithm::MedianAbsoluteDeviation,
                Algorithm::StddevFromMovingAverage,
                Algorithm::LeastSquares,
            ],
            consensus: 5,
            expiry: 43_200,
            window: None,
            full_duration: 86_400,
            detector: None,
            threads: 0,
            variant: NabVariant::Reference,
            engine: NabEngine::Skyline,
        }
    }
}

/// What happened to one data file.
#[derive(Debug, Clone, PartialEq)]
pub struct NabFileReport {
    /// The data file, relative to the data directory (`<category>/<name>.csv`).
    pub file: PathBuf,
    /// The results file written.
    pub output: PathBuf,
    /// Data rows.
    pub rows: usize,
    /// Rows the algorithms ran on (the others were suppressed by the expiry).
    pub analysed: usize,
    /// Rows scored 1.0.
    pub detections: usize,
    /// Wall time spent on the file.
    pub elapsed: Duration,
}

/// The outcome of [`run_nab`].
#[derive(Debug, Clone, PartialEq)]
pub struct NabReport {
    /// The detector name used in the results file names.
    pub detector: String,
    /// One entry per data file, in path order.
    pub files: Vec<NabFileReport>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl NabReport {
    /// Data rows over all files.
    pub fn rows(&self) -> usize {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Detections over all files.
    pub fn detections(&self) -> usize {
        self.files.iter().map(|f| f.detections).sum()
    }
}

/// What can go wrong in a NAB run.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A data row could not be parsed (1-based line number).
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The data file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// The data directory holds no CSV file.
    #[error("no NAB data files (*.csv) under {}", .0.display())]
    NoData(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> NabError + '_ {
    move |source| NabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Run the detector over every `*.csv` under `data` (NAB layout: `<category>/<name>.csv`)
/// and write `out/<category>/<detector>_<name>.csv` with the columns
/// `timestamp,value,anomaly_score`, one row per data row. Files are spread over threads; a
/// progress line is drawn on stderr when it is a terminal.
///
/// # Errors
///
/// [`NabError::NoData`] when `data` holds no CSV file, [`NabError::Parse`] for a malformed
/// data row, [`NabError::Io`] when a file cannot be read or written.
pub fn run_nab(data: &Path, out: &Path, opts: &NabOptions) -> Result<NabReport, NabError> {
    let started = Instant::now();
    let mut files = Vec::new();
    collect_csv(data, data, &mut files)?;
    if files.is_empty() {
        return Err(NabError::NoData(data.to_path_buf()));
    }
    files.sort();
    let detector = opts.detector.clone().unwrap_or_else(|| {
        out.file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .unwrap_or("skyline")
            .to_string()
    });
    // Largest files first, so that the last file to finish is a short one.
    let mut order: Vec<usize> = (0..files.len()).collect();
    let size = |i: &usize| std::fs::metadata(data.join(&files[*i])).map_or(0, |m| m.len());
    order.sort_by_key(|i| std::cmp::Reverse(size(i)));

    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, files.len());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<NabFileReport, NabError>)>> = Mutex::new(Vec::new());
    let show_progress = std::io::stderr().is_terminal();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                let result = process_file(data, &files[i], out, &detector, opts);
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if show_progress {
                    eprint!(
                        "\rnab: {finished}/{} files ({})\x1b[K",
                        files.len(),
                        files[i].display()
                    );
                }
                results
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push((i, result));
            });
        }
    });
    if show_progress {
        eprintln!();
    }
    let mut results = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let files = results
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NabReport {
        detector,
        files,
        elapsed: started.elapsed(),
    })
}

/// Every `*.csv` below `dir`, as paths relative to `root`.
fn collect_csv(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), NabError> {
    let entries = std::fs::read_dir(dir).map_err(io_error(dir))?;
    for entry in entries {
        let path = entry.map_err(io_error(dir))?.path();
        if path.is_dir() {
            collect_csv(root, &path, files)?;
        } else if path.extension().is_some_and(|e| e == "csv") {
            if let Ok(relative) = path.strip_prefix(root) {
                files.push(relative.to_path_buf());
            }
        }
    }
    Ok(())
}

/// One NAB data row: the original text of its timestamp and value, and their numbers.
struct Row {
    timestamp: String,
    value: String,
    point: (f64, f64),
}

/// Whether a value was written as an integer: pandas then reads the whole column as int64,
/// which matters to the reference detector's Python 2 arithmetic.
fn is_integer_literal(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn process_file(
    data: &Path,
    relative: &Path,
    out: &Path,
    detector: &str,
    opts: &NabOptions,
) -> Result<NabFileReport, NabError> {
    let started = Instant::now();
    let path = data.join(relative);
    let rows = read_rows(&path)?;
    let points: Vec<(f64, f64)> = rows.iter().map(|r| r.point).collect();
    // One score per row, and the rows the detector analysed.
    let skyline = || {
        let integer_values = rows.iter().all(|r| is_integer_literal(&r.value));
        detect_with(&points, integer_values, opts)
    };
    let stream = |params| {
        let pts: Vec<(i64, f64)> = points.iter().map(|&(t, v)| (t as i64, v)).collect();
        super::stream::score_series(&pts, params)
    };
    let (scores, analysed): (Vec<f64>, usize) = match &opts.engine {
        NabEngine::Skyline => {
            let detection = skyline();
            let scores = detection
                .scores
                .iter()
                .map(|&hit| if hit { 1.0 } else { 0.0 })
                .collect();
            (scores, detection.analysed)
        }
        NabEngine::Stream(params) => (stream(params), rows.len()),
        NabEngine::Combined(combine, params) => {
            let detection = skyline();
            let graded = stream(params);
            let scores = detection
                .scores
                .iter()
                .zip(&graded)
                .map(|(&hit, &score)| combined_score(*combine, hit, score))
                .collect();
            (scores, rows.len())
        }
    };
    let hit_at = match &opts.engine {
        NabEngine::Skyline => 1.0,
        NabEngine::Stream(params) | NabEngine::Combined(_, params) => params.threshold,
    };

    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let output_dir = match relative.parent() {
        Some(parent) => out.join(parent),
        None => out.to_path_buf(),
    };
    std::fs::create_dir_all(&output_dir).map_err(io_error(&output_dir))?;
    let output = output_dir.join(format!("{detector}_{name}"));
    let file = std::fs::File::create(&output).map_err(io_error(&output))?;
    let mut w = BufWriter::new(file);
    let write = |w: &mut BufWriter<std::fs::File>| -> std::io::Result<()> {
        writeln!(w, "timestamp,value,anomaly_score")?;
        for (row, &score) in rows.iter().zip(&scores) {
            if score == 0.0 || score == 1.0 {
                writeln!(w, "{},{},{score:.1}", row.timestamp, row.value)?;
            } else {
                writeln!(w, "{},{},{score:.6}", row.timestamp, row.value)?;
            }
        }
        w.flush()
    };
    write(&mut w).map_err(io_error(&output))?;
    Ok(NabFileReport {
        file: relative.to_path_buf(),
        output,
        rows: rows.len(),
        analysed,
        detections: scores.iter().filter(|&&s| s >= hit_at).count(),
        elapsed: started.elapsed(),
    })
}

/// One row's score under `combine` from Skyline's verdict and the stream detector's graded
/// score (see [`NabEngine::Combined`]): graded so that thresholding it at θ is the daemon's
/// rule with the stream threshold θ.
fn combined_score(combine: super::streaming::Combine, skyline: bool, stream: f64) -> f64 {
    use super::streaming::Combine;
    match combine {
        Combine::Any => {
            if skyline {
                1.0
            } else {
                stream
            }
        }
        Combine::All => {
            if skyline {
                stream
            } else {
                0.0
            }
        }
        Combine::Skyline => {
            if skyline {
                1.0
            } else {
                0.0
            }
        }
        Combine::Stream => stream,
    }
}

/// Read a NAB data file: a header naming `timestamp` and `value` columns, then one row per
/// line.
fn read_rows(path: &Path) -> Result<Vec<Row>, NabError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let parse_error = |line: usize, message: String| NabError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let header = lines
        .next()
        .transpose()
        .map_err(io_error(path))?
        .ok_or_else(|| parse_error(1, "empty file".to_string()))?;
    let columns: Vec<&str> = header
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    let find = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(ts_col), Some(value_col)) = (find("timestamp"), find("value")) else {
        return Err(parse_error(
            1,
            format!("header must name `timestamp` and `value` columns: `{header}`"),
        ));
    };
    let mut rows = Vec::new();
    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        let line = line.map_err(io_error(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (Some(&timestamp), Some(&value)) = (fields.get(ts_col), fields.get(value_col)) else {
            return Err(parse_error(line_no, format!("missing column in `{line}`")));
        };
        let t = parse_timestamp(timestamp)
            .ok_or_else(|| parse_error(line_no, format!("bad timestamp `{timestamp}`")))?;
        let v: f64 = value
            .parse()
            .map_err(|_| parse_error(line_no, format!("bad value `{value}`")))?;
        rows.push(Row {
            timestamp: timestamp.to_string(),
            value: value.to_string(),
            point: (t, v),
        });
    }
    Ok(rows)
}

/// The detector's output for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// One entry per row: whether it scored 1.0.
    pub scores: Vec<bool>,
    /// Rows the algorithms ran on.
    pub analysed: usize,
}

/// Cheapest first: the order in which votes are gathered. The decision ("at least N True")
/// does not depend on it, so the loop can stop as soon as it is settled.
fn cost_rank(alg: Algorithm) -> u8 {
    match alg {
        Algorithm::StddevFromMovingAverage => 0,
        Algorithm::FirstHourAverage => 1,
        Algorithm::HistogramBins => 2,
        Algorithm::StddevFromAverage => 3,
        Algorithm::Grubbs => 4,
        Algorithm::MeanSubtractionCumulation => 5,
        Algorithm::KsTest => 6,
        Algorithm::LeastSquares => 7,
        Algorithm::MedianAbsoluteDeviation => 8,
    }
}

/// The streaming detector on one series: row `i` sees only rows `0..=i` (or, with a window,
/// those of them newer than `t_i - window`), with the wall clock at `t_i`.
///
/// The result equals running the algorithms afresh on every prefix. Two things make it fast
/// without changing it: stddev_from_moving_average's pandas recursion is carried from row to
/// row instead of being replayed (whole-history mode only), and a row stops gathering votes
/// once the outcome is decided either way.
///
/// `points` are taken as floats; see [`detect_with`] for integer-valued files.
pub fn detect(points: &[(f64, f64)], opts: &NabOptions) -> Detection {
    detect_with(points, false, opts)
}

/// [`detect`] for a file whose values were all written as integers (`integer_values`), which
/// the reference variant's Python 2 tail average floors.
pub fn detect_with(points: &[(f64, f64)], integer_values: bool, opts: &NabOptions) -> Detection {
    let stream_ewm = opts.window.is_none()
        && opts
            .algorithms
            .contains(&Algorithm::StddevFromMovingAverage);
    let mut rest: Vec<Algorithm> = opts
        .algorithms
        .iter()
        .copied()
        .filter(|&a| !(stream_ewm && a == Algorithm::StddevFromMovingAverage))
        .collect();
    rest.sort_by_key(|&a| cost_rank(a));
    let total = opts.algorithms.len();
    let needed = opts.consensus;

    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let mut reference = reference::Scratch::default();
    let mut ws = Workspace::new();
    let mut moving = MovingAverage::new();
    let mut last_detection: Option<f64> = None;
    let mut scores = Vec::with_capacity(points.len());
    let mut analysed = 0;
    for (i, &(t, v)) in points.iter().enumerate() {
        moving.push(v);
        if let Some(t0) = last_detection {
            if t - t0 < opts.expiry as f64 {
                scores.push(false);
                continue;
            }
        }
        analysed += 1;
        let start = match opts.window {
            Some(w) => points[..=i].partition_point(|p| p.0 <= t - w as f64),
            None => 0,
        };
        let mut triggered = 0usize;
        let mut remaining = total;
        if stream_ewm {
            remaining -= 1;
            triggered += usize::from(moving.vote() == Some(true));
        }
        if triggered < needed && triggered + remaining >= needed {
            let history = &points[start..=i];
            let mut on_vote = |_, vote: Option<bool>| {
                remaining -= 1;
                triggered += usize::from(vote == Some(true));
                if triggered >= needed || triggered + remaining < needed {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            };
            match opts.variant {
                NabVariant::Analyzer => {
                    run_algorithms(&mut ws, history, t, opts.full_duration, &rest, on_vote);
                }
                NabVariant::Reference => {
                    let series = reference::Series {
                        points: history,
                        values: &values[start..=i],
                        integer_values,
                        now: t,
                        full_duration: opts.full_duration,
                    };
                    for &alg in &rest {
                        if on_vote(alg, series.vote(alg, &mut reference)).is_break() {
                            break;
                        }
                    }
                }
            }
        }
        let hit = triggered >= needed;
        if hit {
            last_detection = Some(t);
        }
        scores.push(hit);
    }
    Detection { scores, analysed }
}

/// The algorithms as the reference NAB detector ran them (see [`NabVariant::Reference`]).
/// Where they agree with the analyzer's (stddev_from_average's statistics,
/// median_absolute_deviation, stddev_from_moving_average, the least-squares fit), the
/// analyzer's code is reused.
mod reference {
    use super::stats;
    use crate::analyze::algorithms::{least_squares_fit, Algorithm};

    /// Reusable buffers.
    #[derive(Default)]
    pub(super) struct Scratch {
        a: Vec<f64>,
        b: Vec<f64>,
    }

    /// One row's history.
    pub(super) struct Series<'a> {
        pub points: &'a [(f64, f64)],
        pub values: &'a [f64],
        pub integer_values: bool,
        pub now: f64,
        pub full_duration: i64,
    }

    const BINS: usize = 15;

    impl Series<'_> {
        /// The vote of `alg`; `None` where the reference raised (counted as not triggered).
        pub fn vote(&self, alg: Algorithm, scratch: &mut Scratch) -> Option<bool> {
            match alg {
                Algorithm::HistogramBins => self.histogram_bins(),
                Algorithm::FirstHourAverage => self.first_hour_average(scratch),
                Algorithm::StddevFromAverage => self.stddev_from_average(scratch),
                Algorithm::MeanSubtractionCumulation => self.mean_subtraction_cumulation(scratch),
                Algorithm::LeastSquares => self.least_squares(scratch),
                // Same computation in both (the reference ran grubbs and ks_test only when
                // asked to, with the analyzer's definitions of the time).
                other => other.run(self.points, self.now, self.full_duration),
            }
        }

        /// `(v[-1] + v[-2] + v[-3]) / 3`, floored when the values are Python 2 integers.
        fn tail_avg(&self) -> Option<f64> {
            let v = self.values;
            let n = v.len();
            if n < 3 {
                return v.last().copied();
            }
            let sum = v[n - 1] + v[n - 2] + v[n - 3];
            Some(if self.integer_values {
                (sum / 3.0).floor()
            } else {
                sum / 3.0
            })
        }

        fn pandas_mean_std(values: &[f64], scratch: &mut Vec<f64>) -> (f64, f64) {
            (
                stats::pandas_mean(values, scratch),
                stats::bottleneck_std(values),
            )
        }

        /// Every value older than `FULL_DURATION - 1 h` before the last point (not one hour a
        /// day ago).
        fn first_hour_average(&self, scratch: &mut Scratch) -> Option<bool> {
            let threshold = self.points.last()?.0 - (self.full_duration as f64 - 3600.0);
            let end = self.points.partition_point(|p| p.0 < threshold);
            let (mean, std) = Self::pandas_mean_std(&self.values[..end], &mut scratch.a);
            let t = self.tail_avg()?;
            Some((t - mean).abs() > 3.0 * std)
        }

        fn stddev_from_average(&self, scratch: &mut Scratch) -> Option<bool> {
            let (mean, std) = Self::pandas_mean_std(self.values, &mut scratch.a);
            let t = self.tail_avg()?;
            Some((t - mean).abs() > 3.0 * std)
        }

        /// pandas: the deviations' *sample* std (the analyzer's numba path uses ddof 0).
        fn mean_subtraction_cumulation(&self, scratch: &mut Scratch) -> Option<bool> {
            let (&last, head) = self.values.split_last()?;
            let m = stats::pandas_mean(head, &mut scratch.a);
            scratch.b.clear();
            scratch.b.extend(head.iter().map(|&v| v - m));
            let std = stats::bottleneck_std(&scratch.b);
            Some((last - m).abs() > 3.0 * std)
        }

        /// numpy's population std of the residuals, and Python 2's `round()`.
        fn least_squares(&self, scratch: &mut Scratch) -> Option<bool> {
            let (m, c) = least_squares_fit(self.points)?;
            let n = self.points.len();
            if n < 3 {
                return Some(false);
            }
            let errors = &mut scratch.a;
            errors.clear();
            errors.extend(self.points.iter().map(|p| p.1 - (m * p.0 + c)));
            let mean = stats::pairwise_sum(errors) / n as f64;
            scratch.b.clear();
            scratch
                .b
                .extend(errors.iter().map(|e| (e - mean) * (e - mean)));
            let std = (stats::pairwise_sum(&scratch.b) / n as f64).sqrt();
            let t = (errors[n - 1] + errors[n - 2] + errors[n - 3]) / 3.0;
            Some(t.abs() > std * 3.0 && std.round() != 0.0 && t.round() != 0.0)
        }

        /// `np.histogram(values, bins=15)`: edges `min + i·step` with the last pinned to max,
        /// each value in the bin whose edges bracket it (the last bin closed), and a constant
        /// series given the range `[c - 0.5, c + 0.5]`.
        fn histogram_bins(&self) -> Option<bool> {
            let t = self.tail_avg()?;
            let (mut lo, mut hi) = self
                .values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            if lo > hi {
                return None;
            }
            if lo == hi {
                lo -= 0.5;
                hi += 0.5;
            }
            let step = (hi - lo) / BINS as f64;
            let mut edges = [0.0; BINS + 1];
            for (i, e) in edges.iter_mut().enumerate() {
                *e = i as f64 * step + lo;
            }
            edges[BINS] = hi;
            let mut candidates = [false; BINS];
            candidates[0] = t <= edges[0];
            for i in 1..BINS {
                candidates[i] = t >= edges[i] && t < edges[i + 1];
            }
            if !candidates.iter().any(|&c| c) {
                return Some(false);
            }
            let norm = BINS as f64 / (hi - lo);
            let mut counts = [0usize; BINS];
            for &x in self.values {
                let mut idx = (((x - lo) * norm) as usize).min(BINS - 1);
                if x < edges[idx] && idx > 0 {
                    idx -= 1;
                } else if idx + 1 < BINS && x >= edges[idx + 1] {
                    idx += 1;
                }
                counts[idx] += 1;
            }
            Some((0..BINS).any(|i| candidates[i] && counts[i] <= 20))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!("skyline-nab-{tag}-{}-{nanos}", std::process::id()))
    }

    /// 5-minute rows with a daily cycle, two level shifts and a spike every 350 rows.
    fn synthetic(rows: usize, seed: u64) -> Vec<(f64, f64)> {
        let mut state = seed.max(1);
        (0..rows)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let day = (i as f64 / 288.0 * std::f64::consts::TAU).sin();
                let shift = if i > rows * 2 / 3 {
                    40.0
                } else if i > rows / 3 {
                    15.0
                } else {
                    0.0
                };
                let spike = if i % 350 == 349 { 150.0 } else { 0.0 };
                let v = 50.0 + 10.0 * day + 3.0 * noise + shift + spike;
                (1_400_000_000.0 + 300.0 * i as f64, v)
            })
            .collect()
    }

    /// The naive definition: every prefix analysed from scratch with every algorithm.
    fn naive(points: &[(f64, f64)], integer_values: bool, opts: &NabOptions) -> Vec<bool> {
        let mut scratch = reference::Scratch::default();
        let mut last: Option<f64> = None;
        let mut out = Vec::new();
        for i in 0..points.len() {
            let t = points[i].0;
            if last.is_some_and(|t0| t - t0 < opts.expiry as f64) {
                out.push(false);
                continue;
            }
            let history: Vec<(f64, f64)> = points[..=i]
                .iter()
                .copied()
                .filter(|p| opts.window.is_none_or(|w| p.0 > t - w as f64))
                .collect();
            let values: Vec<f64> = history.iter().map(|p| p.1).collect();
            let series = reference::Series {
                points: &history,
                values: &values,
                integer_values,
                now: t,
                full_duration: opts.full_duration,
            };
            let votes = opts
                .algorithms
                .iter()
                .filter(|&&a| {
                    let vote = match opts.variant {
                        NabVariant::Analyzer => a.run(&history, t, opts.full_duration),
                        NabVariant::Reference => series.vote(a, &mut scratch),
                    };
                    vote == Some(true)
                })
                .count();
            let hit = votes >= opts.consensus;
            if hit {
                last = Some(t);
            }
            out.push(hit);
        }
        out
    }

    #[test]
    fn streaming_equals_the_naive_definition() {
        let points = synthetic(700, 7);
        let rounded: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1.round())).collect();
        for variant in [NabVariant::Reference, NabVariant::Analyzer] {
            let default = NabOptions {
                variant,
                ..NabOptions::default()
            };
            let fast = detect(&points, &default);
            assert_eq!(fast.scores, naive(&points, false, &default), "{variant:?}");
            assert!(fast.scores.iter().any(|&s| s), "the spikes are detected");
            let ints = detect_with(&rounded, true, &default);
            assert_eq!(
                ints.scores,
                naive(&rounded, true, &default),
                "{variant:?} ints"
            );
            let windowed = NabOptions {
                window: Some(43_200),
                consensus: 4,
                expiry: 3600,
                variant,
                ..NabOptions::default()
            };
            assert_eq!(
                detect(&points, &windowed).scores,
                naive(&points, false, &windowed),
                "{variant:?} windowed"
            );
            let all = NabOptions {
                algorithms: Algorithm::ALL.to_vec(),
                consensus: 6,
                expiry: 0,
                variant,
                ..NabOptions::default()
            };
            assert_eq!(
                detect(&points, &all).scores,
                naive(&points, false, &all),
                "{variant:?} all nine"
            );
        }
    }

    #[test]
    fn reference_variant_quirks() {
        assert!(is_integer_literal("42") && is_integer_literal("-7"));
        assert!(
            !is_integer_literal("4.0") && !is_integer_literal("") && !is_integer_literal("1e3")
        );
        let points: Vec<(f64, f64)> = (0..31).map(|i| (f64::from(i) * 300.0, 1.0)).collect();
        let mut values = vec![1.0; 31];
        values[30] = 2.0;
        let series = reference::Series {
            points: &points,
            values: &values,
            integer_values: true,
            now: 9000.0,
            full_duration: 86_400,
        };
        let mut scratch = reference::Scratch::default();
        // Python 2: (1 + 1 + 2) / 3 == 1, the minimum, whose bin holds 30 values: no vote.
        assert_eq!(
            series.vote(Algorithm::HistogramBins, &mut scratch),
            Some(false)
        );
        // As floats the tail average 1.33 falls in an empty bin.
        let floats = reference::Series {
            integer_values: false,
            ..series
        };
        assert_eq!(
            floats.vote(Algorithm::HistogramBins, &mut scratch),
            Some(true)
        );
        // np.histogram gives a constant series the range c ± 0.5: nothing fires.
        let flat = reference::Series {
            values: &[3.0; 31],
            ..floats
        };
        assert_eq!(
            flat.vote(Algorithm::HistogramBins, &mut scratch),
            Some(false)
        );
    }

    #[test]
    fn expiry_suppresses_twelve_hours_after_a_detection() {
        let points = synthetic(2000, 3);
        let d = detect(&points, &NabOptions::default());
        let hits: Vec<f64> = points
            .iter()
            .zip(&d.scores)
            .filter(|(_, &s)| s)
            .map(|(p, _)| p.0)
            .collect();
        assert!(!hits.is_empty());
        for w in hits.windows(2) {
            assert!(w[1] - w[0] >= 43_200.0, "{w:?}");
        }
        assert!(d.analysed < points.len());
    }

    #[test]
    fn run_nab_writes_nab_layout() {
        let root = temp_dir("layout");
        let data = root.join("data");
        let out = root.join("results").join("skyline");
        for (category, name, rows, seed) in [
            ("realA", "one.csv", 900, 11u64),
            ("artificialB", "two.csv", 400, 5),
        ] {
            let dir = data.join(category);
            std::fs::create_dir_all(&dir).expect("data dir");
            let mut text = String::from("timestamp,value\n");
            for (t, v) in synthetic(rows, seed) {
                text.push_str(&format!(
                    "{},{v}\n",
                    super::super::crucible::format_timestamp(t)
                ));
            }
            std::fs::write(dir.join(name), text).expect("data file");
        }
        let report = run_nab(&data, &out, &NabOptions::default()).expect("nab run");
        assert_eq!(report.detector, "skyline");
        assert_eq!(report.files.len(), 2);
        assert_eq!(report.rows(), 1300);
        for (category, name, rows) in [("realA", "one.csv", 900), ("artificialB", "two.csv", 400)] {
            let result = out.join(category).join(format!("skyline_{name}"));
            let text = std::fs::read_to_string(&result).expect("results file");
            let source = std::fs::read_to_string(data.join(category).join(name)).expect("data");
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
            let body: Vec<&str> = lines.collect();
            assert_eq!(body.len(), rows);
            for (out_line, in_line) in body.iter().zip(source.lines().skip(1)) {
                let (prefix, score) = out_line.rsplit_once(',').expect("three columns");
                assert_eq!(prefix, in_line, "timestamp and value are copied verbatim");
                assert!(score == "1.0" || score == "0.0", "{score}");
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn run_nab_stream_writes_graded_scores() {
        let root = temp_dir("stream");
        let data = root.join("data");
        let out = root.join("results").join("stream");
        std::fs::create_dir_all(data.join("cat")).expect("data dir");
        let mut text = String::from("timestamp,value\n");
        for i in 0..600i64 {
            let v = if i == 500 {
                900.0
            } else {
                10.0 + (i % 9) as f64
            };
            let t = super::super::crucible::format_timestamp(1_400_000_000.0 + i as f64 * 300.0);
            text.push_str(&format!("{t},{v}\n"));
        }
        std::fs::write(data.join("cat").join("x.csv"), text).expect("data file");
        let opts = NabOptions {
            engine: NabEngine::Stream(super::super::stream::StreamParams::default()),
            ..NabOptions::default()
        };
        let report = run_nab(&data, &out, &opts).expect("nab run");
        assert_eq!(report.rows(), 600);
        assert_eq!(report.detections(), 1);
        let text = std::fs::read_to_string(out.join("cat").join("stream_x.csv")).expect("results");
        let scores: Vec<f64> = text
            .lines()
            .skip(1)
            .map(|l| {
                l.rsplit(',')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("score")
            })
            .collect();
        assert_eq!(scores.len(), 600);
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        let threshold = super::super::stream::DEFAULT_THRESHOLD;
        assert!(scores[500] >= threshold);
        assert!(scores[..500].iter().all(|&s| s < threshold));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn combined_scores_threshold_to_the_analyzers_rule() {
        use super::super::streaming::Combine;
        for (skyline, stream) in [
            (false, 0.0),
            (false, 0.3),
            (false, 0.9),
            (true, 0.0),
            (true, 0.3),
            (true, 0.9),
        ] {
            for threshold in [0.2, 0.5, 1.0] {
                let stream_hit = stream >= threshold;
                for (combine, want) in [
                    (Combine::Any, skyline || stream_hit),
                    (Combine::All, skyline && stream_hit),
                    (Combine::Skyline, skyline),
                    (Combine::Stream, stream_hit),
                ] {
                    let got = combined_score(combine, skyline, stream) >= threshold;
                    assert_eq!(got, want, "{combine:?} {skyline} {stream} at {threshold}");
                    assert_eq!(
                        combine.decide(Some(skyline), Some(stream_hit)),
                        want,
                        "the analyzer's rule agrees"
                    );
                }
            }
        }
    }

    #[test]
    fn run_nab_reports_bad_input() {
        let root = temp_dir("bad");
        let data = root.join("data");
        std::fs::create_dir_all(data.join("c")).expect("dir");
        assert!(matches!(
            run_nab(&data, &root.join("out"), &NabOptions::default()),
            Err(NabError::NoData(_))
        ));
        std::fs::write(
            data.join("c").join("x.csv"),
            "timestamp,value\n2014-01-01 00:00:00,1\nzzz,2\n",
        )
        .expect("write");
        match run_nab(&data, &root.join("out"), &NabOptions::default()) {
            Err(NabError::Parse { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a parse error, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
