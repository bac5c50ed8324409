//! Running a rule set: event rules on each event (with threshold counters), posture rules on a
//! host's state document.
//!
//! *Threshold counting:* per (rule, `group_by` values) a sorted `VecDeque` of the timestamps of
//! matching events, never longer than the rule's largest `count`; entries older than the window
//! (measured from the newest) are dropped. A rule keeps at most [`MAX_GROUPS`] groups (fewer for
//! large counts, so one rule holds at most [`MAX_TIMESTAMPS`] timestamps); past that, expired
//! groups go first, then the least recently matched tenth.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::RuleSet;
use crate::rule::{Rule, Severity, Threshold};

/// Most groups one threshold rule tracks.
pub const MAX_GROUPS: usize = 100_000;
/// Most timestamps one threshold rule holds over all its groups.
pub const MAX_TIMESTAMPS: usize = 10_000_000;
/// Every this many recorded matches, a rule's expired groups are swept.
const SWEEP_EVERY: u64 = 1 << 16;

/// A rule firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    pub rule_id: String,
    /// See [`Rule::dedup_key`].
    pub dedup_key: String,
    pub severity: Severity,
}

impl Hit {
    fn new(rule: &Rule, doc: &Value) -> Hit {
        Hit {
            rule_id: rule.id.clone(),
            dedup_key: rule.dedup_key(doc),
            severity: rule.severity,
        }
    }
}

/// Threshold counters of one rule.
#[derive(Debug)]
struct Counter {
    groups: HashMap<String, VecDeque<i64>>,
    window_ms: i64,
    /// Longest a group's deque gets (the largest count over the rule's levels).
    keep: usize,
    max_groups: usize,
    recorded: u64,
}

impl Counter {
    fn new(t: &Threshold) -> Counter {
        let mut c = Counter {
            groups: HashMap::new(),
            window_ms: 0,
            keep: 1,
            max_groups: 1,
            recorded: 0,
        };
        c.configure(t);
        c
    }

    fn configure(&mut self, t: &Threshold) {
        self.window_ms = millis(t.window);
        self.keep = usize::try_from(t.max_count()).unwrap_or(usize::MAX).max(1);
        self.max_groups = (MAX_TIMESTAMPS / self.keep).clamp(1, MAX_GROUPS);
        for dq in self.groups.values_mut() {
            while dq.len() > self.keep {
                dq.pop_front();
            }
        }
        if self.groups.len() > self.max_groups {
            self.evict(i64::MIN);
        }
    }

    /// Records a match at `t` (ms) in `group`; whether at least `count` of the group's matches
    /// now lie within the window ending at its newest match (`t`, unless events arrive out of
    /// order). A match older than that window counts for nothing.
    fn record(&mut self, group: String, t: i64, count: u64) -> bool {
        self.recorded += 1;
        if self.recorded.is_multiple_of(SWEEP_EVERY) {
            let horizon = t.saturating_sub(self.window_ms);
            self.groups
                .retain(|_, dq| dq.back().is_some_and(|&b| b >= horizon));
        }
        if self.groups.len() >= self.max_groups && !self.groups.contains_key(&group) {
            self.evict(t);
        }
        let dq = self.groups.entry(group).or_default();
        let pos = dq.partition_point(|&x| x <= t);
        dq.insert(pos, t);
        let newest = dq.back().copied().unwrap_or(t);
        let horizon = newest.saturating_sub(self.window_ms);
        while dq.front().is_some_and(|&f| f < horizon) || dq.len() > self.keep {
            dq.pop_front();
        }
        t >= horizon && dq.len() as u64 >= count
    }

    /// Makes room: drops groups expired at `now`, then (if still full) the least recently
    /// matched tenth.
    fn evict(&mut self, now: i64) {
        let horizon = now.saturating_sub(self.window_ms);
        self.groups
            .retain(|_, dq| dq.back().is_some_and(|&b| b >= horizon));
        if self.groups.len() < self.max_groups {
            return;
        }
        let n = (self.max_groups / 10).max(1).min(self.groups.len());
        let mut newest: Vec<i64> = self
            .groups
            .values()
            .map(|dq| dq.back().copied().unwrap_or(i64::MIN))
            .collect();
        let (_, cut, _) = newest.select_nth_unstable(n - 1);
        let cut = *cut;
        let mut removed = 0;
        self.groups.retain(|_, dq| {
            if removed < n && dq.back().copied().unwrap_or(i64::MIN) <= cut {
                removed += 1;
                false
            } else {
                true
            }
        });
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn epoch_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => millis(d),
        Err(e) => millis(e.duration()).saturating_neg(),
    }
}

/// Evaluates a [`RuleSet`]; holds the threshold counters.
#[derive(Debug)]
pub struct Engine {
    set: Arc<RuleSet>,
    /// By rule id.
    counters: HashMap<String, Counter>,
}

impl Engine {
    pub fn new(set: Arc<RuleSet>) -> Self {
        Engine {
            set,
            counters: HashMap::new(),
        }
    }

    /// Replaces the rules; keeps the counters of threshold rules that still exist (resized to
    /// their new count and window).
    pub fn set_rules(&mut self, set: Arc<RuleSet>) {
        self.counters
            .retain(|id, c| match set.get(id).and_then(|r| r.threshold.as_ref()) {
                Some(t) => {
                    c.configure(t);
                    true
                }
                None => false,
            });
        self.set = set;
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.set
    }

    /// Event rules applicable at `level` that fire for `ev`. A threshold rule fires once the
    /// count of its matches (in the event's group) within the window reaches its count at `level`,
    /// and again for every further match while that holds. `now` is the event's time.
    pub fn on_event(&mut self, ev: &Value, level: u8, now: SystemTime) -> Vec<Hit> {
        let set = Arc::clone(&self.set);
        let mut hits = Vec::new();
        let t = epoch_millis(now);
        for rule in set.event_rules(level) {
            if !rule.matches(ev, level) {
                continue;
            }
            match &rule.threshold {
                None => hits.push(Hit::new(rule, ev)),
                Some(th) => {
                    let Some(count) = th.count(level) else { continue };
                    let counter = self
                        .counters
                        .entry(rule.id.clone())
                        .or_insert_with(|| Counter::new(th));
                    if counter.record(th.group_key(ev), t, count) {
                        hits.push(Hit::new(rule, ev));
                    }
                }
            }
        }
        hits
    }

    /// Posture rules applicable at `level` whose detection matches the host `state`.
    pub fn posture(&self, state: &Value, level: u8) -> Vec<Hit> {
        self.set
            .posture_rules(level)
            .filter(|r| r.matches(state, level))
            .map(|r| Hit::new(r, state))
            .collect()
    }

    /// Threshold groups currently tracked, over all rules (for metrics).
    pub fn tracked_groups(&self) -> usize {
        self.counters.values().map(|c| c.groups.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(count: u64, window_s: u64) -> Counter {
        let mut c = Counter {
            groups: HashMap::new(),
            window_ms: 0,
            keep: 1,
            max_groups: 1,
            recorded: 0,
        };
        c.window_ms = (window_s * 1000) as i64;
        c.keep = count as usize;
        c.max_groups = 3;
        c
    }

    #[test]
    fn counts_within_the_window() {
        let mut c = counter(3, 60);
        assert!(!c.record("g".into(), 0, 3));
        assert!(!c.record("g".into(), 10_000, 3));
        assert!(c.record("g".into(), 20_000, 3));
        assert!(c.record("g".into(), 30_000, 3), "fires again while it holds");
        assert!(!c.record("g".into(), 200_000, 3), "window passed");
        assert!(c.groups["g"].len() <= 3);
        // Out of order: an older event inside the window still counts; one outside does not.
        let mut c = counter(2, 60);
        assert!(!c.record("g".into(), 50_000, 2));
        assert!(c.record("g".into(), 20_000, 2));
        let mut c = counter(2, 60);
        assert!(!c.record("g".into(), 100_000, 2));
        assert!(!c.record("g".into(), 20_000, 2));
        assert_eq!(c.groups["g"].len(), 1);
    }

    #[test]
    fn groups_are_bounded() {
        let mut c = counter(2, 60);
        for i in 0..100 {
            c.record(format!("g{i}"), i * 1000, 2);
            assert!(c.groups.len() <= 3);
        }
        // The most recent group survived.
        assert!(c.groups.contains_key("g99"));
    }

    #[test]
    fn epoch_conversion() {
        assert_eq!(epoch_millis(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
        assert_eq!(epoch_millis(UNIX_EPOCH - Duration::from_millis(1500)), -1500);
    }
}
