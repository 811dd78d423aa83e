//! What one Envoy has asked for: its subscribed secret names, least
//! recently requested first, bounded. Envoy 1.40 never evicts an
//! on-demand secret by itself, so the bound is kept from this side. One
//! name (the fallback for clients without SNI) is held outside the bound.

use std::collections::{BTreeMap, HashMap};

pub struct Session {
    max: usize,
    tick: u64,
    /// name -> tick of its last request.
    names: HashMap<String, u64>,
    /// tick -> name, oldest first.
    order: BTreeMap<u64, String>,
    /// Never pushed out, not counted: every Envoy needs it.
    pinned: &'static str,
    pinned_held: bool,
}

impl Session {
    pub fn new(max: usize, pinned: &'static str) -> Session {
        Session { max: max.max(1), tick: 0, names: HashMap::new(), order: BTreeMap::new(), pinned, pinned_held: false }
    }

    /// Records a request for `name`; the names pushed out to keep the bound.
    pub fn subscribe(&mut self, name: &str) -> Vec<String> {
        if name == self.pinned {
            self.pinned_held = true;
            return Vec::new();
        }
        self.tick += 1;
        if let Some(old) = self.names.insert(name.to_string(), self.tick) {
            self.order.remove(&old);
        }
        self.order.insert(self.tick, name.to_string());
        let mut evicted = Vec::new();
        while self.names.len() > self.max {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.names.remove(&oldest);
            evicted.push(oldest);
        }
        evicted
    }

    pub fn unsubscribe(&mut self, name: &str) {
        if name == self.pinned {
            self.pinned_held = false;
        } else if let Some(t) = self.names.remove(name) {
            self.order.remove(&t);
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        (name == self.pinned && self.pinned_held) || self.names.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        let pinned = self.pinned_held.then_some(self.pinned);
        self.names.keys().map(String::as_str).chain(pinned)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_name_is_never_pushed_out_nor_counted() {
        let mut s = Session::new(1, "fallback");
        assert!(s.subscribe("fallback").is_empty());
        assert!(s.subscribe("a").is_empty());
        assert_eq!(s.subscribe("b"), vec!["a".to_string()]);
        assert!(s.contains("fallback") && s.contains("b"));
        let mut names: Vec<&str> = s.names().collect();
        names.sort();
        assert_eq!(names, ["b", "fallback"]);
        s.unsubscribe("fallback");
        assert!(!s.contains("fallback"));
    }

    #[test]
    fn keeps_the_most_recently_requested() {
        let mut s = Session::new(2, "fallback");
        assert!(s.subscribe("a").is_empty());
        assert!(s.subscribe("b").is_empty());
        assert!(s.subscribe("a").is_empty(), "a again: now the newest");
        assert_eq!(s.subscribe("c"), vec!["b".to_string()]);
        assert!(s.contains("a") && s.contains("c") && !s.contains("b"));
        s.unsubscribe("a");
        assert_eq!(s.len(), 1);
        assert!(s.subscribe("d").is_empty());
        for i in 0..1000 {
            s.subscribe(&format!("n{i}"));
            assert!(s.len() <= 2);
        }
    }
}
