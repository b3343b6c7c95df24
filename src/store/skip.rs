//! SKIP_LIST / DO_NOT_SKIP_LIST matching, as earthgecko Skyline's Horizon worker does it.
//!
//! An entry matches a name when it is a substring of the name, or when every dot-separated
//! element of the entry occurs among the name's dot-separated elements (a set test: order and
//! position are ignored, so an entry with a trailing dot or a repeated element can only match
//! as a substring). A name is skipped when any SKIP_LIST entry matches and no DO_NOT_SKIP_LIST
//! entry does. Pure; the metric actors cache the decision per name.

use std::collections::HashSet;

/// Compiled skip rules.
#[derive(Debug, Clone, Default)]
pub struct SkipRules {
    skip: Vec<Entry>,
    keep: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    text: String,
    elements: Vec<String>,
    /// False when the element test can never pass (empty or repeated element).
    elements_usable: bool,
}

impl Entry {
    fn new(text: &str) -> Self {
        let elements: Vec<String> = text.split('.').map(str::to_string).collect();
        let distinct: HashSet<&str> = elements.iter().map(String::as_str).collect();
        let elements_usable =
            distinct.len() == elements.len() && !elements.iter().any(String::is_empty);
        Entry {
            text: text.to_string(),
            elements,
            elements_usable,
        }
    }

    fn matches(&self, name: &str, name_elements: &HashSet<&str>) -> bool {
        if name.contains(self.text.as_str()) {
            return true;
        }
        self.elements_usable
            && self
                .elements
                .iter()
                .all(|e| name_elements.contains(e.as_str()))
    }
}

impl SkipRules {
    /// Compiles the two lists.
    pub fn new(skip_list: &[String], do_not_skip_list: &[String]) -> Self {
        SkipRules {
            skip: skip_list
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| Entry::new(s))
                .collect(),
            keep: do_not_skip_list
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| Entry::new(s))
                .collect(),
        }
    }

    /// True when there is no SKIP_LIST entry (nothing is ever skipped).
    pub fn is_empty(&self) -> bool {
        self.skip.is_empty()
    }

    /// True when `name` must not be stored.
    pub fn skips(&self, name: &str) -> bool {
        if self.skip.is_empty() {
            return false;
        }
        let elements: HashSet<&str> = name.split('.').collect();
        self.skip.iter().any(|e| e.matches(name, &elements))
            && !self.keep.iter().any(|e| e.matches(name, &elements))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(skip: &[&str], keep: &[&str]) -> SkipRules {
        let s: Vec<String> = skip.iter().map(|x| x.to_string()).collect();
        let k: Vec<String> = keep.iter().map(|x| x.to_string()).collect();
        SkipRules::new(&s, &k)
    }

    #[test]
    fn substring_and_elements() {
        let r = rules(
            &["skyline.analyzer.", "web.cpu"],
            &["skyline.analyzer.run_time"],
        );
        assert!(r.skips("skyline.analyzer.host.total"));
        assert!(!r.skips("skyline.analyzer.run_time"));
        // dotted elements, order-free
        assert!(r.skips("cpu.host1.web"));
        assert!(!r.skips("web.host1"));
        // trailing-dot entries only match as substrings
        assert!(!r.skips("analyzer.skyline.x"));
    }

    #[test]
    fn repeated_element_only_substring() {
        let r = rules(&["a.a"], &[]);
        assert!(r.skips("x.a.a.y"));
        assert!(!r.skips("a.b"));
    }

    #[test]
    fn empty_lists_skip_nothing() {
        assert!(!rules(&[], &[]).skips("anything"));
    }
}
