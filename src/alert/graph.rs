//! The graph in alert emails: a self-contained SVG line chart of a metric's series with the
//! anomalous point marked. Pure: series in, string out; every text is XML-escaped, so any
//! metric name is safe inline in HTML.
//!
//! At most two points per horizontal pixel are drawn (each column's min and max, in time
//! order), so a day of 10-second data stays a few kilobytes.

use std::fmt::Write as _;

use super::notification::{utc_fields, xml_escape};

/// Width of the image, pixels.
pub const WIDTH: f64 = 720.0;
/// Height of the image, pixels.
pub const HEIGHT: f64 = 300.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 42.0;
const BOTTOM: f64 = 34.0;

fn label(v: f64, span: f64) -> String {
    let a = v.abs().max(span.abs());
    if a >= 1e7 || (a > 0.0 && a < 1e-3) {
        format!("{v:.2e}")
    } else if span >= 20.0 {
        format!("{v:.0}")
    } else if span >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn hhmm(ts: f64) -> String {
    let (_, mo, d, h, mi, _) = utc_fields(ts as i64);
    format!("{mo:02}-{d:02} {h:02}:{mi:02}")
}

/// Renders `series` (`(timestamp, value)`, any order) titled `title`, with `mark` (the
/// anomalous `(timestamp, value)`) circled in red. Non-finite points are skipped.
pub fn render_svg(title: &str, series: &[(f64, f64)], mark: Option<(f64, f64)>) -> String {
    let mut pts: Vec<(f64, f64)> = series
        .iter()
        .copied()
        .filter(|(t, v)| t.is_finite() && v.is_finite())
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mark = mark.filter(|(t, v)| t.is_finite() && v.is_finite());

    let mut s = String::with_capacity(8192);
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica,Arial,sans-serif" font-size="11">"##
    );
    let _ = write!(
        s,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/><text x="{LEFT}" y="18" font-size="14" font-weight="bold" fill="#222222">{}</text>"##,
        xml_escape(title)
    );
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    if pts.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888888">no data in Redis for this metric</text></svg>"##,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        return s;
    }
    let (t0, t1) = (pts[0].0, pts[pts.len() - 1].0);
    let (mut lo, mut hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.1), h.max(p.1))
        });
    if let Some((_, v)) = mark {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi - lo < f64::EPSILON * hi.abs().max(1.0) {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let tspan = (t1 - t0).max(1.0);
    let x = |t: f64| LEFT + (t - t0) / tspan * pw;
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * ph;

    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="33" fill="#666666">{} to {} UTC, {} points</text>"##,
        hhmm(t0),
        hhmm(t1),
        pts.len()
    );
    // Grid and value labels.
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555555">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            xml_escape(&label(v, hi - lo))
        );
    }
    // Time labels.
    for i in 0..=3 {
        let t = t0 + tspan * f64::from(i) / 3.0;
        let anchor = match i {
            0 => "start",
            3 => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" fill="#555555">{}</text>"##,
            x(t),
            HEIGHT - BOTTOM + 16.0,
            hhmm(t)
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#bbbbbb"/>"##
    );
    // The line: per pixel column, the min and max in time order.
    let cols = pw.max(1.0) as usize;
    let mut path = String::with_capacity(cols * 24);
    let mut i = 0;
    let mut first = true;
    while i < pts.len() {
        let col = (((pts[i].0 - t0) / tspan * (cols as f64 - 1.0)) as usize).min(cols - 1);
        let mut j = i;
        let (mut min_i, mut max_i) = (i, i);
        while j < pts.len()
            && (((pts[j].0 - t0) / tspan * (cols as f64 - 1.0)) as usize).min(cols - 1) == col
        {
            if pts[j].1 < pts[min_i].1 {
                min_i = j;
            }
            if pts[j].1 > pts[max_i].1 {
                max_i = j;
            }
            j += 1;
        }
        let (a, b) = if min_i <= max_i {
            (min_i, max_i)
        } else {
            (max_i, min_i)
        };
        for k in if a == b { vec![a] } else { vec![a, b] } {
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if first { "M" } else { " L" },
                x(pts[k].0),
                y(pts[k].1)
            );
            first = false;
        }
        i = j;
    }
    let _ = write!(
        s,
        r##"<path d="{path}" fill="none" stroke="#1f6fb2" stroke-width="1.3" stroke-linejoin="round"/>"##
    );
    if let Some((t, v)) = mark {
        let (mx, my) = (x(t.clamp(t0, t1)), y(v));
        let _ = write!(
            s,
            r##"<line x1="{mx:.1}" y1="{TOP}" x2="{mx:.1}" y2="{:.1}" stroke="#d62728" stroke-dasharray="3,3"/><circle cx="{mx:.1}" cy="{my:.1}" r="5" fill="none" stroke="#d62728" stroke-width="2"><title>anomalous: {}</title></circle><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#d62728">anomalous: {}</text>"##,
            TOP + ph,
            xml_escape(&label(v, hi - lo)),
            (mx - 8.0).max(LEFT + 90.0),
            (my - 8.0).max(TOP + 10.0),
            xml_escape(&super::notification::value_str(v))
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_anomaly_and_escapes_the_name() {
        let series: Vec<(f64, f64)> = (0..1000)
            .map(|i| {
                (
                    1_700_000_000.0 + f64::from(i) * 60.0,
                    (f64::from(i) / 10.0).sin(),
                )
            })
            .collect();
        let last = series[999];
        let svg = render_svg("a<b>&\"c\".requests", &series, Some((last.0, 25.0)));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(
            svg.contains("a&lt;b&gt;&amp;&quot;c&quot;.requests"),
            "{svg}"
        );
        assert!(!svg.contains("a<b>"));
        assert!(svg.contains("<circle"), "anomaly marked");
        assert!(svg.contains("anomalous: 25.0"));
        // Downsampled: no more than two points per column.
        let path_points = svg.matches(" L").count() + 1;
        assert!(
            path_points <= 2 * (WIDTH - LEFT - RIGHT) as usize,
            "{path_points}"
        );
        assert!(path_points >= 600, "{path_points}");
        // Balanced tags (well-formed enough for mail clients and browsers).
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn empty_and_flat_series() {
        let svg = render_svg("m", &[], None);
        assert!(svg.contains("no data"));
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 5.0)).collect();
        let svg = render_svg("m", &flat, Some((9.0, 5.0)));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let one = render_svg("m", &[(1.0, f64::NAN), (2.0, 3.0)], None);
        assert!(!one.contains("NaN"), "{one}");
    }
}
