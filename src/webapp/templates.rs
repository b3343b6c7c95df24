//! The page templates (`templates/*.hbs`) and static assets (`assets/*`), compiled into the
//! binary, and the few escaping and formatting helpers every page uses.
//!
//! Escaping rules: handlebars escapes every `{{value}}` for HTML (`& < > " ' \` =`); the only
//! triple-stash `{{{…}}}` values are HTML built here from escaped parts (rendered markdown,
//! SVG of numbers) and JSON made safe for a `<script type="application/json">` block by
//! [`json_for_html`] (`<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes, so no metric name can
//! close the block). URLs put in attributes are percent-encoded first ([`query_value`]).
//!
//! Every page loads only `/assets/*.js` (no inline script: the CSP forbids it).

use handlebars::Handlebars;
use serde::Serialize;

use super::error::WebError;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/layout.hbs")),
    ("now", include_str!("../../templates/now.hbs")),
    ("panorama", include_str!("../../templates/panorama.hbs")),
    ("rebrow", include_str!("../../templates/rebrow.hbs")),
    ("rebrow_key", include_str!("../../templates/rebrow_key.hbs")),
    ("docs", include_str!("../../templates/docs.hbs")),
    ("monitor", include_str!("../../templates/monitor.hbs")),
    (
        "monitor_view",
        include_str!("../../templates/monitor_view.hbs"),
    ),
    ("errors", include_str!("../../templates/errors.hbs")),
    ("ionosphere", include_str!("../../templates/ionosphere.hbs")),
];

/// `(path under /assets/, content type, bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "skyline.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/skyline.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/common.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/chart.js"),
    ),
    (
        "now.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/now.js"),
    ),
    (
        "panorama.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/panorama.js"),
    ),
    (
        "rebrow.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/rebrow.js"),
    ),
    (
        "train.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/train.js"),
    ),
    (
        "ionosphere.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/ionosphere.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/favicon.svg"),
    ),
];

/// A static asset by name: `(content type, bytes)`.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, t, b)| (*t, *b))
}

/// The compiled templates.
pub struct Templates {
    hb: Handlebars<'static>,
}

impl Templates {
    /// Registers every template. Fails only on a syntax error in a template (a bug, caught by
    /// the tests).
    pub fn new() -> Result<Self, String> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(false);
        for (name, text) in TEMPLATES {
            hb.register_template_string(name, *text)
                .map_err(|err| format!("template {name}: {err}"))?;
        }
        Ok(Templates { hb })
    }

    /// Renders `name` with `data`; a render failure is logged and becomes a 500.
    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> Result<String, WebError> {
        crate::monitor::spans::time_sync(crate::monitor::spans::Kind::Template, || {
            self.hb.render(name, data)
        })
        .map_err(|err| WebError::internal(&format!("rendering template {name}"), &err))
    }
}

/// A metric name as HTML that wraps only between its parts: escaped, with `<wbr>` after each
/// `.`, `,` and `_` and before `{` (so a long name breaks at a dot or a label, never mid-word).
pub fn breakable_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + name.len() / 4);
    for c in name.chars() {
        if c == '{' {
            out.push_str("<wbr>");
        }
        out.push_str(&escape_html(c.encode_utf8(&mut [0u8; 4])));
        if matches!(c, '.' | ',' | '_') {
            out.push_str("<wbr>");
        }
    }
    out
}

/// HTML-escapes text for element content and quoted attributes, as the templates'
/// `{{…}}` does (handlebars also escapes `=` and backtick).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '=' => out.push_str("&#x3D;"),
            '`' => out.push_str("&#x60;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text safe inside `<script type="application/json">…</script>`: nothing in it can end
/// the element or be read as markup.
pub fn json_for_html<T: Serialize>(value: &T) -> Result<String, WebError> {
    let json = serde_json::to_string(value)
        .map_err(|err| WebError::internal("serialising page data", &err))?;
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub fn query_value(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

pub use crate::model::time::{civil_from_days, days_from_civil};

/// `2026-11-21 10:00:00 UTC` (the server-side rendering; the pages' script re-renders every
/// `<time data-ts>` in the configured or browser zone).
pub fn fmt_utc(ts: i64) -> String {
    format!("{} UTC", crate::model::time::format_utc(ts))
}

/// `2026-11-21T10:00:00Z` for `<time datetime>`.
pub fn iso_utc(ts: i64) -> String {
    crate::model::time::rfc3339(ts)
}

/// `1h 5m`, `3d 2h`, `42s`.
pub fn fmt_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

/// A value for display: integers without decimals, others with up to 6 significant decimals.
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_break_only_between_parts() {
        assert_eq!(
            breakable_name("stats.web_01.cpu"),
            "stats.<wbr>web_<wbr>01.<wbr>cpu"
        );
        assert_eq!(
            breakable_name(r#"up{a="<b>",c="d"}"#),
            "up<wbr>{a&#x3D;&quot;&lt;b&gt;&quot;,<wbr>c&#x3D;&quot;d&quot;}"
        );
        // Nothing but <wbr> is inserted: no break inside an element.
        let html = breakable_name("carbon.agents.graphiteserver01-a.cache.queues");
        assert_eq!(
            html.replace("<wbr>", ""),
            "carbon.agents.graphiteserver01-a.cache.queues"
        );
    }

    #[test]
    fn templates_compile_and_assets_exist() {
        Templates::new().unwrap();
        for name in [
            "skyline.css",
            "common.js",
            "chart.js",
            "now.js",
            "panorama.js",
            "rebrow.js",
        ] {
            assert!(asset(name).is_some(), "{name}");
        }
        assert!(asset("../Cargo.toml").is_none());
    }

    #[test]
    fn json_cannot_close_a_script_block() {
        let j =
            json_for_html(&serde_json::json!({"m": "</script><script>alert(1)</script>&\u{2028}"}))
                .unwrap();
        assert!(!j.contains('<') && !j.contains('>') && !j.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["m"], "</script><script>alert(1)</script>&\u{2028}");
    }

    #[test]
    fn escaping_and_encoding() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href&#x3D;&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
        assert_eq!(query_value("a.b c&d=<e>"), "a.b%20c%26d%3D%3Ce%3E");
    }

    #[test]
    fn dates() {
        assert_eq!(fmt_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(days_from_civil(2023, 11, 14), 1_700_000_000 / 86_400);
        for d in [-1000, 0, 59, 60, 365, 19_000, 20_000, 100_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(fmt_duration(90), "1m 30s");
        assert_eq!(fmt_duration(86_400 + 7200), "1d 2h");
        assert_eq!(fmt_value(12.0), "12");
        assert_eq!(fmt_value(1.25), "1.25");
        assert_eq!(fmt_value(0.1 + 0.2), "0.3");
    }
}
