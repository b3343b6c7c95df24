//! The augmented Dickey–Fuller step of ks_test, as statsmodels'
//! `adfuller(x, maxlag=10)` (constant term, lag length chosen by AIC) computes it, reduced to
//! what Skyline uses: whether the p-value is below 0.05, which for MacKinnon's constant-term
//! approximation is exactly a t-statistic below [`ADF_T_CRITICAL`].
//!
//! The regressions use Householder QR instead of statsmodels' pseudo-inverse. Both give the
//! least-squares fit; they differ only in the last bits, far from any realistic threshold.

/// The ADF t-statistic at which MacKinnon's p-value (N = 1, constant term) equals 0.05.
pub const ADF_T_CRITICAL: f64 = -2.8615927630969753;

/// `maxlag` as Skyline passes it.
const MAXLAG: usize = 10;

/// A column whose norm left after projecting out the previous columns is below this fraction
/// of its own norm is treated as linearly dependent (pinv's rank cut-off does the same).
const RANK_TOL: f64 = 1e-10;

/// The ADF t-statistic of `x` (the level coefficient's t-value of the chosen regression).
///
/// `None` where statsmodels raises: fewer than 24 observations (maxlag 10 is then too large),
/// a constant series, or non-finite data. NaN if the level regressor is degenerate.
pub fn adf_tstat(x: &[f64]) -> Option<f64> {
    let n = x.len();
    // statsmodels: `maxlag > nobs // 2 - ntrend - 1` raises, with ntrend = 1.
    if n / 2 < MAXLAG + 2 {
        return None;
    }
    if x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let (lo, hi) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo == hi {
        return None;
    }
    let diff: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let best_lag = select_lag(x, &diff);
    Some(level_tstat(x, &diff, best_lag))
}

/// The regressors of the ADF regression with `lag` lagged differences, on the rows
/// `first_row..diff.len()` (indices into `diff`): the level `x[k]`, then `diff[k - j]`.
fn regressors(x: &[f64], diff: &[f64], first_row: usize, lag: usize) -> Vec<Vec<f64>> {
    let rows = first_row..diff.len();
    let mut cols = Vec::with_capacity(lag + 1);
    cols.push(rows.clone().map(|k| x[k]).collect());
    for j in 1..=lag {
        cols.push(rows.clone().map(|k| diff[k - j]).collect());
    }
    cols
}

/// statsmodels' `add_trend(..., has_constant='skip')`: no constant is added when some column
/// is already a non-zero constant.
fn has_nonzero_constant_column(cols: &[Vec<f64>]) -> bool {
    cols.iter().any(|c| match c.first() {
        Some(&first) => first != 0.0 && c.iter().all(|&v| v == first),
        None => false,
    })
}

/// `_autolag(OLS, ..., 'aic')`: every lag 0..=10 is fitted on the common sample of
/// `n - 11` rows; the smallest AIC wins, ties going to the smaller lag.
fn select_lag(x: &[f64], diff: &[f64]) -> usize {
    let mut cols = regressors(x, diff, MAXLAG, MAXLAG);
    let y: Vec<f64> = diff[MAXLAG..].to_vec();
    let nobs = y.len();
    let with_const = !has_nonzero_constant_column(&cols);
    if with_const {
        cols.insert(0, vec![1.0; nobs]);
    }
    // Models are column prefixes: [const,] level, then one lagged difference per lag.
    let start = if with_const { 2 } else { 1 };
    let fits = prefix_fits(&mut cols, y);
    let mut best: Option<(f64, usize)> = None;
    for lag in 0..=MAXLAG {
        let fit = fits[start + lag - 1];
        let aic = aic(fit.ssr, nobs, fit.rank);
        let better = match best {
            None => true,
            Some((best_aic, _)) => aic < best_aic,
        };
        if better {
            best = Some((aic, lag));
        }
    }
    best.map_or(0, |b| b.1)
}

/// statsmodels' OLS AIC: `-2 llf + 2 k` with the profile log-likelihood and k = rank.
fn aic(ssr: f64, nobs: usize, rank: usize) -> f64 {
    let nobs_f = nobs as f64;
    let nobs2 = nobs_f / 2.0;
    let llf = -nobs2 * (2.0 * std::f64::consts::PI).ln() - nobs2 * (ssr / nobs_f).ln() - nobs2;
    -2.0 * llf + 2.0 * rank as f64
}

/// The final regression with the chosen lag, on its own `n - 1 - lag` rows; returns the level
/// coefficient's t-value.
fn level_tstat(x: &[f64], diff: &[f64], lag: usize) -> f64 {
    let mut cols = regressors(x, diff, lag, lag);
    let y: Vec<f64> = diff[lag..].to_vec();
    let nobs = y.len();
    let with_const = !has_nonzero_constant_column(&cols);
    // Put the level column last: its t-value is then read straight off the factorisation.
    cols.rotate_left(1);
    if with_const {
        cols.insert(0, vec![1.0; nobs]);
    }
    let k = cols.len();
    let fits = prefix_fits(&mut cols, y);
    let last = fits[k - 1];
    let prev_rank = if k >= 2 { fits[k - 2].rank } else { 0 };
    if last.rank == prev_rank || nobs <= last.rank {
        return f64::NAN;
    }
    let s = (last.ssr / (nobs - last.rank) as f64).sqrt();
    last.last_z * last.last_r.signum() / s
}

/// Residual sum of squares and rank of the least-squares fit on the first `j + 1` columns,
/// for every `j`, plus the last Householder step's `(Qᵀy)` entry and diagonal of `R`.
#[derive(Debug, Clone, Copy)]
struct PrefixFit {
    ssr: f64,
    rank: usize,
    last_z: f64,
    last_r: f64,
}

/// Householder QR applied column by column; `cols` and `y` are overwritten.
fn prefix_fits(cols: &mut [Vec<f64>], mut y: Vec<f64>) -> Vec<PrefixFit> {
    let m = y.len();
    let mut rank = 0usize;
    let mut out = Vec::with_capacity(cols.len());
    for j in 0..cols.len() {
        let (head, tail) = cols.split_at_mut(j + 1);
        let col = &mut head[j];
        let full_norm = norm(col);
        let r = rank;
        let rest_norm = if r < m { norm(&col[r..]) } else { 0.0 };
        let independent = r < m && rest_norm > RANK_TOL * full_norm && rest_norm > 0.0;
        let (last_z, last_r) = if independent {
            // Reflect col[r..] onto ±rest_norm·e₁ (sign chosen to avoid cancellation).
            let alpha = if col[r] > 0.0 { -rest_norm } else { rest_norm };
            let v0 = col[r] - alpha;
            let vnorm2 = v0 * v0 + col[r + 1..].iter().map(|v| v * v).sum::<f64>();
            let mut v = Vec::with_capacity(m - r);
            v.push(v0);
            v.extend_from_slice(&col[r + 1..]);
            for other in tail.iter_mut() {
                reflect(&v, vnorm2, &mut other[r..]);
            }
            reflect(&v, vnorm2, &mut y[r..]);
            col[r] = alpha;
            for c in &mut col[r + 1..] {
                *c = 0.0;
            }
            rank += 1;
            (y[r], alpha)
        } else {
            (f64::NAN, f64::NAN)
        };
        let ssr = y[rank.min(m)..].iter().map(|v| v * v).sum::<f64>();
        out.push(PrefixFit {
            ssr,
            rank,
            last_z,
            last_r,
        });
    }
    out
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `w ← (I - 2 v vᵀ / vᵀv) w`.
fn reflect(v: &[f64], vnorm2: f64, w: &mut [f64]) {
    let dot: f64 = v.iter().zip(w.iter()).map(|(a, b)| a * b).sum();
    let scale = 2.0 * dot / vnorm2;
    for (wi, vi) in w.iter_mut().zip(v) {
        *wi -= scale * vi;
    }
}
