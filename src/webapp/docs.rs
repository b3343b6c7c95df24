//! `/docs`: the project's own documentation, compiled into the binary and rendered from
//! markdown with pulldown-cmark: the README (`/docs`, `/docs/readme`), the webapp guide
//! (`docs/webapp.md`), ARCHITECTURE.md and the shipped `conf/skyline.toml`.
//!
//! Raw HTML in the markdown is escaped (rendered as text), links with a `javascript:`,
//! `vbscript:` or `data:` scheme are dropped, and links between these files are rewritten to
//! their `/docs/…` pages. Images under `docs/screenshots/` are served from that directory
//! (relative to the working directory, `[a-z0-9_-]+.png` names only).

use std::sync::OnceLock;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use serde::Serialize;

use super::error::{PageError, WebError};
use super::panorama::html_response;
use super::templates::json_for_html;
use super::WebState;

/// `(slug, title, markdown)`.
const PAGES: &[(&str, &str, &str)] = &[
    (
        "readme",
        "Overview (README)",
        include_str!("../../README.md"),
    ),
    (
        "webapp",
        "Using the webapp",
        include_str!("../../docs/webapp.md"),
    ),
    (
        "mirage",
        "Mirage (second look over days)",
        include_str!("../../docs/mirage.md"),
    ),
    (
        "boundary",
        "Boundary (rules for key metrics)",
        include_str!("../../docs/boundary.md"),
    ),
    (
        "stream",
        "The stream detector",
        include_str!("../../docs/stream.md"),
    ),
    (
        "ionosphere",
        "Ionosphere (features profiles)",
        include_str!("../../docs/ionosphere.md"),
    ),
    (
        "prometheus",
        "Prometheus and Grafana",
        include_str!("../../docs/prometheus.md"),
    ),
    (
        "alerters",
        "Alertmanager and PagerDuty",
        include_str!("../../docs/alerters.md"),
    ),
    (
        "ingest",
        "Ingest at high cardinality",
        include_str!("../../docs/ingest.md"),
    ),
    (
        "monitor",
        "Endpoint monitoring",
        include_str!("../../docs/monitor.md"),
    ),
    (
        "cluster",
        "Scale-out on a Redis Cluster",
        include_str!("../../docs/cluster.md"),
    ),
    (
        "architecture",
        "Architecture",
        include_str!("../../ARCHITECTURE.md"),
    ),
];
const CONFIG: &str = include_str!("../../conf/skyline.toml");

/// The `/docs/<slug>` page of a `docs/<slug>.md` (or `<slug>.md`) link, when it is one of
/// [`PAGES`].
fn page_slug(path: &str) -> Option<&'static str> {
    let file = path.strip_prefix("docs/").unwrap_or(path);
    let slug = file.strip_suffix(".md")?;
    PAGES
        .iter()
        .map(|(s, _, _)| *s)
        .find(|s| *s == slug && !["readme", "architecture"].contains(s))
}

/// Where a link between the repository's files goes on `/docs`.
fn rewrite_link(url: &str) -> String {
    let lower = url.trim().to_ascii_lowercase();
    if ["javascript:", "vbscript:", "data:"]
        .iter()
        .any(|s| lower.starts_with(s))
    {
        return "#".into();
    }
    let (path, anchor) = match url.split_once('#') {
        Some((p, a)) => (p, format!("#{a}")),
        None => (url, String::new()),
    };
    let path = path.trim_start_matches("./").trim_start_matches("../");
    if let Some(slug) = page_slug(path) {
        return format!("/docs/{slug}{anchor}");
    }
    let page = match path {
        "README.md" => "/docs/readme",
        "ARCHITECTURE.md" => "/docs/architecture",
        "conf/skyline.toml" => "/docs/configuration",
        p if p.starts_with("docs/screenshots/") || p.starts_with("screenshots/") => {
            let file = p.rsplit('/').next().unwrap_or("");
            return format!("/docs/screenshots/{file}");
        }
        _ => return url.to_string(),
    };
    format!("{page}{anchor}")
}

/// Markdown → HTML with raw HTML escaped and links rewritten. A screenshot that is not on
/// disk (a daemon run away from the repository) is shown as its alt text, not a broken image.
pub fn render_markdown(md: &str) -> String {
    render_markdown_with(md, |file| {
        std::path::Path::new("docs/screenshots")
            .join(file)
            .is_file()
    })
}

fn render_markdown_with(md: &str, screenshot_exists: impl Fn(&str) -> bool) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut hidden_images = 0usize;
    let mut events = Vec::new();
    for ev in Parser::new_ext(md, opts) {
        let ev = match ev {
            Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
            // Column alignment would become inline `style` attributes, which the CSP refuses.
            Event::Start(Tag::Table(aligns)) => Event::Start(Tag::Table(vec![
                    pulldown_cmark::Alignment::None;
                    aligns.len()
                ])),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: CowStr::from(rewrite_link(&dest_url)),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let url = rewrite_link(&dest_url);
                match url.strip_prefix("/docs/screenshots/") {
                    Some(file) if !screenshot_exists(file) => {
                        hidden_images += 1;
                        Event::Start(Tag::Emphasis)
                    }
                    _ => Event::Start(Tag::Image {
                        link_type,
                        dest_url: CowStr::from(url),
                        title,
                        id,
                    }),
                }
            }
            Event::End(pulldown_cmark::TagEnd::Image) if hidden_images > 0 => {
                hidden_images -= 1;
                Event::End(pulldown_cmark::TagEnd::Emphasis)
            }
            other => other,
        };
        events.push(ev);
    }
    let mut html = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

struct Rendered {
    slug: &'static str,
    title: &'static str,
    html: String,
}

fn rendered() -> &'static [Rendered] {
    static DOCS: OnceLock<Vec<Rendered>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut v: Vec<Rendered> = PAGES
            .iter()
            .map(|(slug, title, md)| Rendered {
                slug,
                title,
                html: render_markdown(md),
            })
            .collect();
        v.push(Rendered {
            slug: "configuration",
            title: "Configuration (conf/skyline.toml)",
            html: render_markdown(&format!(
                "# Configuration\n\nThe shipped `conf/skyline.toml`: every key with its default and \
                 the Skyline setting it replaces. Any key can be overridden from the environment \
                 as `SKYLINE__SECTION__KEY=value`.\n\n```toml\n{CONFIG}\n```\n"
            )),
        });
        v
    })
}

#[derive(Serialize)]
struct NavItem {
    slug: &'static str,
    title: &'static str,
    active: bool,
}

#[derive(Serialize)]
struct DocsView {
    title: &'static str,
    nav_docs: bool,
    scripts: &'static [&'static str],
    page_config: String,
    pages: Vec<NavItem>,
    content: &'static str,
}

fn show(state: &WebState, slug: &str) -> Result<HttpResponse, PageError> {
    let docs = rendered();
    let doc = docs
        .iter()
        .find(|d| d.slug == slug)
        .ok_or_else(|| WebError::NotFound(format!("no documentation page {slug:?}")))?;
    let view = DocsView {
        title: doc.title,
        nav_docs: true,
        scripts: &["common.js"],
        page_config: json_for_html(&serde_json::json!({
            "page": "docs",
            "timezone": state.settings.timezone,
        }))?,
        pages: docs
            .iter()
            .map(|d| NavItem {
                slug: d.slug,
                title: d.title,
                active: d.slug == slug,
            })
            .collect(),
        content: &doc.html,
    };
    Ok(html_response(
        StatusCode::OK,
        state.templates.render("docs", &view)?,
    ))
}

/// `GET /docs`.
pub async fn index(state: web::Data<WebState>) -> Result<HttpResponse, PageError> {
    show(&state, "readme")
}

/// `GET /docs/{page}`.
pub async fn page(
    state: web::Data<WebState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    show(&state, &slug)
}

/// `GET /docs/screenshots/{file}`.
pub async fn screenshot(file: web::Path<String>) -> Result<HttpResponse, WebError> {
    let name = file.into_inner();
    let ok = name.strip_suffix(".png").is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    if !ok {
        return Err(WebError::NotFound("no such screenshot".into()));
    }
    let path = std::path::Path::new("docs/screenshots").join(&name);
    let bytes = web::block(move || std::fs::read(path))
        .await
        .map_err(|err| WebError::internal("screenshot task", &err))?
        .map_err(|_| WebError::NotFound("no such screenshot".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(("Cache-Control", "private, max-age=300"))
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_escaped() {
        let html = render_markdown(
            "# T\n\n<script>alert(1)</script>\n\ninline <img src=x onerror=alert(1)> text\n\n[x](javascript:alert(1))",
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        let table = render_markdown("| a | b |\n|:--|--:|\n| 1 | 2 |\n");
        assert!(
            table.contains("<table>") && !table.contains("style="),
            "{table}"
        );
    }

    #[test]
    fn missing_screenshots_become_text() {
        let md = "![The Now view](docs/screenshots/now.png) ![x](docs/screenshots/other.png)";
        let html = render_markdown_with(md, |f| f == "other.png");
        assert!(html.contains("<em>The Now view</em>"), "{html}");
        assert!(
            html.contains("<img src=\"/docs/screenshots/other.png\""),
            "{html}"
        );
    }

    #[test]
    fn links_rewritten() {
        assert_eq!(
            rewrite_link("ARCHITECTURE.md#actor-map"),
            "/docs/architecture#actor-map"
        );
        assert_eq!(
            rewrite_link("docs/screenshots/now.png"),
            "/docs/screenshots/now.png"
        );
        assert_eq!(rewrite_link("https://example.com/"), "https://example.com/");
        for slug in [
            "webapp",
            "mirage",
            "boundary",
            "stream",
            "ionosphere",
            "monitor",
        ] {
            assert_eq!(
                rewrite_link(&format!("docs/{slug}.md#x")),
                format!("/docs/{slug}#x")
            );
        }
        assert_eq!(rewrite_link("docs/unknown.md"), "docs/unknown.md");
        let all = rendered();
        assert!(all.iter().any(|d| d.slug == "configuration"));
        assert!(all.iter().all(|d| !d.html.is_empty()));
    }
}
