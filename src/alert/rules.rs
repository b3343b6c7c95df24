//! Which `[[alerts]]` rules an anomalous metric matches. Pure: no I/O, no clock.
//!
//! A pattern is one of three kinds, decided by its text:
//! - starts with `^`: a regular expression, matched from the start of the name (Python's
//!   `re.match`; add `$` to anchor the end);
//! - holds `*`, `?`, `[` or `{`: a Graphite glob over the whole name, as graphite-web expands
//!   targets: `*` and `?` stay inside one dotted element, `[a-z]`/`[!0-9]` are character
//!   classes, `{a,b}` alternatives;
//! - anything else: a namespace, matched with Skyline G's `matched_or_regexed_in_list`
//!   (core-spec §6.9), trying in order exact equality, substring, every dotted element of the
//!   pattern among the name's elements (a set test), then the pattern as a regex from the
//!   start (invalid regexes are ignored there, as in G).
//!
//! Rules are tried in order; per alerter only the first matching rule counts (Skyline's
//! `last_alert.<alerter>.<metric>` key makes later ones no-ops within its expiration).

use std::collections::HashSet;

use regex::Regex;

use super::config::AlertRule;

/// How a pattern matched (G's `matched_by`), for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The pattern is the name.
    Exact,
    /// The pattern occurs in the name.
    Substring,
    /// Every dotted element of the pattern is an element of the name.
    Elements,
    /// The pattern, as a regex, matches from the start of the name.
    Regex,
    /// The Graphite glob matches the whole name.
    Glob,
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// `^…`.
    Regex(Regex),
    /// A glob, compiled to an anchored regex.
    Glob(Regex),
    /// A plain namespace (G's matcher).
    Namespace(Namespace),
}

/// A plain namespace pattern, precompiled for G's four tests.
#[derive(Debug, Clone)]
pub struct Namespace {
    text: String,
    elements: Vec<String>,
    elements_usable: bool,
    regex: Option<Regex>,
}

impl Namespace {
    fn new(text: &str) -> Self {
        let elements: Vec<String> = text.split('.').map(str::to_string).collect();
        let distinct: HashSet<&str> = elements.iter().map(String::as_str).collect();
        Namespace {
            text: text.to_string(),
            elements_usable: distinct.len() == elements.len(),
            elements,
            regex: Regex::new(&format!("^(?:{text})")).ok(),
        }
    }

    fn matches(&self, name: &str) -> Option<MatchedBy> {
        if self.text == name {
            return Some(MatchedBy::Exact);
        }
        if name.contains(self.text.as_str()) {
            return Some(MatchedBy::Substring);
        }
        if self.elements_usable {
            let have: HashSet<&str> = name.split('.').collect();
            if self.elements.iter().all(|e| have.contains(e.as_str())) {
                return Some(MatchedBy::Elements);
            }
        }
        match &self.regex {
            Some(r) if r.is_match(name) => Some(MatchedBy::Regex),
            _ => None,
        }
    }
}

fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '[', '{'])
}

/// Translates a Graphite glob into an anchored regex.
pub fn glob_to_regex(glob: &str) -> Result<String, String> {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    let mut in_brace = false;
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str("[^.]*"),
            '?' => out.push_str("[^.]"),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'!') || chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                let mut closed = false;
                let mut empty = true;
                for c in chars.by_ref() {
                    if c == ']' && !empty {
                        closed = true;
                        break;
                    }
                    empty = false;
                    if c == '\\' || c == '[' || c == ']' || c == '&' || c == '~' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                if !closed {
                    return Err(format!("unclosed '[' in glob {glob:?}"));
                }
                out.push(']');
            }
            '{' if !in_brace => {
                in_brace = true;
                out.push_str("(?:");
            }
            ',' if in_brace => out.push('|'),
            '}' if in_brace => {
                in_brace = false;
                out.push(')');
            }
            '{' => return Err(format!("nested '{{' in glob {glob:?}")),
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    if in_brace {
        return Err(format!("unclosed '{{' in glob {glob:?}"));
    }
    out.push('$');
    Ok(out)
}

impl Matcher {
    /// Compiles `pattern`; an invalid explicit regex or glob is an error (a namespace never is).
    pub fn parse(pattern: &str) -> Result<Matcher, String> {
        if pattern.is_empty() {
            return Err("must not be empty".into());
        }
        if pattern.starts_with('^') {
            return Regex::new(pattern)
                .map(Matcher::Regex)
                .map_err(|e| format!("invalid regex: {e}"));
        }
        if has_glob(pattern) {
            let re = glob_to_regex(pattern)?;
            return Regex::new(&re)
                .map(Matcher::Glob)
                .map_err(|e| format!("invalid glob: {e}"));
        }
        Ok(Matcher::Namespace(Namespace::new(pattern)))
    }

    /// How `name` matches, if it does.
    pub fn matches(&self, name: &str) -> Option<MatchedBy> {
        match self {
            Matcher::Regex(r) => r.is_match(name).then_some(MatchedBy::Regex),
            Matcher::Glob(r) => r.is_match(name).then_some(MatchedBy::Glob),
            Matcher::Namespace(n) => n.matches(name),
        }
    }
}

/// Skyline G's `matched_or_regexed_in_list(base_name, match_list)`: the first entry that
/// matches `name` by exact equality, substring, dotted elements or `re.match`, and how.
pub fn matched_or_regexed_in_list(name: &str, list: &[&str]) -> Option<(usize, MatchedBy)> {
    list.iter()
        .enumerate()
        .find_map(|(i, e)| Namespace::new(e).matches(name).map(|m| (i, m)))
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule as configured.
    pub rule: AlertRule,
    matcher: Matcher,
}

/// The compiled `[[alerts]]` list.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Compiles the rules; fails on the first invalid pattern (config validation reports all).
    pub fn new(rules: &[AlertRule]) -> Result<RuleSet, String> {
        let rules = rules
            .iter()
            .map(|r| {
                Matcher::parse(&r.pattern)
                    .map(|matcher| Rule {
                        rule: r.clone(),
                        matcher,
                    })
                    .map_err(|e| format!("pattern {:?}: {e}", r.pattern))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RuleSet { rules })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Skyline's Mirage membership (`metrics_manager.py:1955-2009`): the hours of the **first
    /// matching `smtp` rule** when its `second_order_resolution_hours` is above 24; `None`
    /// otherwise (non-smtp rules are ignored and the search stops at that first smtp rule).
    pub fn mirage_hours(&self, metric: &str) -> Option<u64> {
        let r = self
            .rules
            .iter()
            .find(|r| r.rule.alerter == "smtp" && r.matcher.matches(metric).is_some())?;
        r.rule.second_order_resolution_hours.filter(|h| *h > 24)
    }

    /// The first matching rule of each alerter, in rule order.
    pub fn matching(&self, metric: &str) -> Vec<(&AlertRule, MatchedBy)> {
        let mut seen: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for r in &self.rules {
            if seen.contains(&r.rule.alerter.as_str()) {
                continue;
            }
            if let Some(by) = r.matcher.matches(metric) {
                seen.push(&r.rule.alerter);
                out.push((&r.rule, by));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, name: &str) -> Option<MatchedBy> {
        Matcher::parse(p).unwrap().matches(name)
    }

    #[test]
    fn g_matcher_order_and_semantics() {
        use MatchedBy::*;
        // 1. exact
        assert_eq!(m("horizon.test.pickle", "horizon.test.pickle"), Some(Exact));
        // 2. substring (anywhere, not only a prefix: E's `pattern in base_name`)
        assert_eq!(m("skyline", "stats.skyline.x"), Some(Substring));
        assert_eq!(m("web", "webapp.requests"), Some(Substring));
        // 3. every dotted element, in any order and position
        assert_eq!(m("requests.web", "web.host1.requests"), Some(Elements));
        assert_eq!(m("nginx.5xx", "stats.nginx.host.5xx"), Some(Elements));
        // a repeated element can never match by elements
        assert_eq!(m("a.a", "a.b"), None);
        // a trailing dot contributes an empty element: substring only
        assert_eq!(m("stats.", "x.stats"), None);
        assert_eq!(m("stats.", "stats.x"), Some(Substring));
        // 4. re.match: anchored at the start only
        assert_eq!(m("web\\d+", "web12.requests"), Some(Regex));
        assert_eq!(m("\\d+", "web12"), None);
        assert_eq!(m("stats.(a|b)", "stats.b.c"), Some(Regex));
        // invalid regex ignored
        assert_eq!(m("web(", "other"), None);
        assert_eq!(m("web(", "xweb(x"), Some(Substring));
    }

    #[test]
    fn g_list_function() {
        let list = ["nomatch", "b.a", "^c"];
        assert_eq!(
            matched_or_regexed_in_list("a.b.c", &list),
            Some((1, MatchedBy::Elements))
        );
        assert_eq!(matched_or_regexed_in_list("zzz", &list), None);
    }

    #[test]
    fn explicit_regex_starts_with_caret() {
        assert_eq!(
            m("^web\\.[a-z]+\\.requests$", "web.a.requests"),
            Some(MatchedBy::Regex)
        );
        assert_eq!(m("^web\\.[a-z]+\\.requests$", "web.a.requests.x"), None);
        assert_eq!(m("^web", "xweb"), None);
        assert!(Matcher::parse("^web(").is_err());
    }

    #[test]
    fn globs_follow_graphite() {
        use MatchedBy::Glob;
        assert_eq!(m("web.*.requests", "web.host1.requests"), Some(Glob));
        assert_eq!(m("web.*.requests", "web.host1.errors"), None);
        // * stays within one element
        assert_eq!(m("web.*.requests", "web.a.b.requests"), None);
        assert_eq!(m("web.*", "web.a"), Some(Glob));
        assert_eq!(m("web.*", "web.a.b"), None);
        assert_eq!(m("web.host?.x", "web.host1.x"), Some(Glob));
        assert_eq!(m("web.host[0-9].x", "web.host7.x"), Some(Glob));
        assert_eq!(m("web.host[!0-9].x", "web.host7.x"), None);
        assert_eq!(m("web.{a,b}.x", "web.b.x"), Some(Glob));
        assert_eq!(m("web.{a,b}.x", "web.c.x"), None);
        // regex metacharacters are literal in a glob
        assert_eq!(m("a+b.*", "a+b.c"), Some(Glob));
        assert_eq!(m("a+b.*", "aab.c"), None);
        assert_eq!(m("a(b).*", "a(b).c"), Some(Glob));
        assert!(Matcher::parse("web.[a").is_err());
        assert!(Matcher::parse("web.{a,b").is_err());
        assert!(Matcher::parse("").is_err());
    }

    #[test]
    fn first_rule_per_alerter_wins() {
        let rule = |p: &str, a: &str, e: u64| AlertRule {
            pattern: p.into(),
            alerter: a.into(),
            expiration_secs: e,
            to: vec![],
            second_order_resolution_hours: None,
        };
        let set = RuleSet::new(&[
            rule("web.*.requests", "smtp", 3600),
            rule("web", "smtp", 60),
            rule("web", "webhook", 600),
            rule("db", "slack", 600),
        ])
        .unwrap();
        let got: Vec<(String, u64)> = set
            .matching("web.h1.requests")
            .into_iter()
            .map(|(r, _)| (r.alerter.clone(), r.expiration_secs))
            .collect();
        assert_eq!(
            got,
            vec![("smtp".to_string(), 3600), ("webhook".to_string(), 600)]
        );
        let got: Vec<u64> = set
            .matching("web.h1.errors")
            .into_iter()
            .map(|(r, _)| r.expiration_secs)
            .collect();
        assert_eq!(got, vec![60, 600]);
        assert!(set.matching("cpu.idle").is_empty());
    }

    #[test]
    fn mirage_membership_is_the_first_matching_smtp_rule_above_24_hours() {
        let rule = |p: &str, a: &str, h: Option<u64>| AlertRule {
            pattern: p.into(),
            alerter: a.into(),
            expiration_secs: 3600,
            to: vec![],
            second_order_resolution_hours: h,
        };
        let set = RuleSet::new(&[
            rule("web", "slack", Some(168)),
            rule("web.h1", "smtp", Some(24)),
            rule("web", "smtp", Some(168)),
            rule("db", "smtp", Some(168)),
            rule("db", "smtp", Some(24)),
        ])
        .unwrap();
        // The slack rule is ignored; the first smtp rule (24 h: not > 24) decides for web.h1.
        assert_eq!(set.mirage_hours("web.h1.requests"), None);
        assert_eq!(set.mirage_hours("web.h2.requests"), Some(168));
        assert_eq!(set.mirage_hours("db.queries"), Some(168));
        assert_eq!(set.mirage_hours("cache.hits"), None);
    }
}
