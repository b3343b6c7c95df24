//! The per-series working state shared by the algorithm kernels: the series, its values as a
//! contiguous slice, the injected clock, reusable scratch buffers, and statistics that more
//! than one algorithm needs (computed once, on first use).

use super::{shortcut, stats};

/// Reusable buffers, so that analysing a series allocates nothing once they have grown.
#[derive(Debug, Default)]
pub struct Workspace {
    pub(crate) values: Vec<f64>,
    pub(crate) scratch: Scratch,
}

/// Scratch vectors lent to one kernel at a time.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub a: Vec<f64>,
    pub b: Vec<f64>,
}

/// Facts about the series gathered while its values are copied out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Timestamps are non-decreasing and none is NaN: windows can be found by binary search.
    pub sorted: bool,
    /// Some value is NaN (the libraries disagree on NaN, so the shared fast paths are off).
    pub has_nan: bool,
}

/// Exact statistics of all values that several algorithms need (the pandas mean is cached
/// on its own, see [`Ctx::mean`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moments {
    /// pandas `Series.std()` through bottleneck (stddev_from_average, grubbs).
    pub std: f64,
    /// mean_subtraction_cumulation's first two numba loops, when they could be shared.
    pub msc: Option<MscPartial>,
}

/// The first two of mean_subtraction_cumulation's three naive loops over `v[..n-1]`: its
/// mean `m` is bottleneck's running sum after n-1 values (same chain from 0.0, when there is
/// no NaN to skip), and `Σ(v - m)` is independent of bottleneck's second loop, so both run
/// together for the price of one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MscPartial {
    pub m: f64,
    pub sum_u: f64,
}

/// An approximate (vectorised) spread of all values around their pandas mean, for the
/// decide-or-defer shortcuts of `shortcut`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Approx {
    /// Sample variance (ddof 1).
    pub var: f64,
    /// `max |x|`.
    pub max_abs: f64,
}

/// Inputs of one analysis plus lazily computed shared statistics.
pub(crate) struct Ctx<'a> {
    pub points: &'a [(f64, f64)],
    pub values: &'a [f64],
    pub shape: Shape,
    pub now: f64,
    pub full_duration: i64,
    pub scratch: &'a mut Scratch,
    /// Whether kernels may try their decide-or-defer shortcuts (tests switch them off to
    /// compare against the exact path).
    pub shortcuts: bool,
    mean: Option<f64>,
    moments: Option<Moments>,
    approx: Option<Option<Approx>>,
}

impl<'a> Ctx<'a> {
    pub fn new(loaded: Loaded<'a>, points: &'a [(f64, f64)], now: f64, full_duration: i64) -> Self {
        Ctx {
            points,
            values: loaded.values,
            shape: loaded.shape,
            now,
            full_duration,
            scratch: loaded.scratch,
            shortcuts: true,
            mean: None,
            moments: None,
            approx: None,
        }
    }

    /// pandas' mean of all values (numpy's pairwise sum), computed once.
    pub fn mean(&mut self) -> f64 {
        if let Some(m) = self.mean {
            return m;
        }
        let m = stats::pandas_mean(self.values, &mut self.scratch.a);
        self.mean = Some(m);
        m
    }

    /// The exact shared statistics, computed on first use.
    pub fn moments(&mut self) -> Moments {
        if let Some(m) = self.moments {
            return m;
        }
        let m = if self.shape.has_nan {
            Moments {
                std: stats::bottleneck_std(self.values),
                msc: None,
            }
        } else {
            moments_without_nan(self.values)
        };
        self.moments = Some(m);
        m
    }

    /// The vectorised spread of all values, when a shortcut may be tried: shortcuts on, no
    /// NaN, and between 2 and `shortcut::MAX_LEN` values.
    pub fn approx(&mut self) -> Option<Approx> {
        if let Some(a) = self.approx {
            return a;
        }
        let n = self.values.len();
        let usable = self.shortcuts && !self.shape.has_nan && (2..=shortcut::MAX_LEN).contains(&n);
        let a = if usable {
            let mean = self.mean();
            let (ssd, max_abs) = shortcut::spread(self.values, mean);
            Some(Approx {
                var: ssd / (n - 1) as f64,
                max_abs,
            })
        } else {
            None
        };
        self.approx = Some(a);
        a
    }

    /// Indices `lo..hi` of the points whose timestamp satisfies `after(t) && before(t)`, when
    /// the series is sorted and both predicates are monotone (`after` false then true,
    /// `before` true then false). `None` for an unsorted series: scan instead.
    pub fn window(
        &self,
        after: impl Fn(f64) -> bool,
        before: impl Fn(f64) -> bool,
    ) -> Option<(usize, usize)> {
        if !self.shape.sorted {
            return None;
        }
        let lo = self.points.partition_point(|p| !after(p.0));
        let hi = self.points.partition_point(|p| before(p.0)).max(lo);
        Some((lo, hi))
    }
}

/// [`Moments`] for a NaN-free series, reproducing each library's own summation order.
fn moments_without_nan(v: &[f64]) -> Moments {
    let n = v.len();
    // bottleneck's first loop; its value after n-1 terms is numba's sum of v[..n-1].
    let mut sum = 0.0;
    let mut head_sum = 0.0;
    for (i, &x) in v.iter().enumerate() {
        if i + 1 == n {
            head_sum = sum;
        }
        sum += x;
    }
    if n < 2 {
        return Moments {
            std: f64::NAN,
            msc: None,
        };
    }
    let bn_mean = sum / n as f64;
    let m = head_sum / (n - 1) as f64;
    let (head, last) = v.split_at(n - 1);
    let mut ssd = 0.0;
    let mut sum_u = 0.0;
    for &x in head {
        let d = x - bn_mean;
        ssd += d * d;
        sum_u += x - m;
    }
    for &x in last {
        let d = x - bn_mean;
        ssd += d * d;
    }
    Moments {
        std: (ssd / (n - 1) as f64).sqrt(),
        msc: Some(MscPartial { m, sum_u }),
    }
}

/// A loaded series: its values and shape, plus the scratch buffers, borrowed together.
pub(crate) struct Loaded<'a> {
    pub values: &'a [f64],
    pub shape: Shape,
    pub scratch: &'a mut Scratch,
}

impl Workspace {
    /// An empty workspace; its buffers grow to the largest series analysed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copy the values of `points` into the values buffer (noting whether the timestamps are
    /// sorted and whether a value is NaN) and split the borrows so that a [`Ctx`] can hold the
    /// values and the scratch buffers at the same time.
    pub(crate) fn load(&mut self, points: &[(f64, f64)]) -> Loaded<'_> {
        self.values.clear();
        self.values.extend(points.iter().map(|p| p.1));
        // Folds without early exit, so that both scans vectorise; a NaN timestamp compares
        // false and so marks the series unsorted.
        let has_nan = self.values.iter().fold(false, |acc, v| acc | v.is_nan());
        let first_ok = points.first().is_none_or(|p| !p.0.is_nan());
        let sorted = points
            .windows(2)
            .fold(first_ok, |acc, w| acc & (w[0].0 <= w[1].0));
        Loaded {
            values: &self.values,
            shape: Shape { sorted, has_nan },
            scratch: &mut self.scratch,
        }
    }
}
