//! Per-channel pacing, pure and clock-injected: the digest window, the rate
//! limit, and the retry backoff.
//!
//! A channel sends an alert at once when it has sent nothing within its
//! digest window; alerts arriving inside the window are gathered and go out
//! as one digest when the window ends. The rate limit (messages per hour)
//! holds messages back the same way, so a storm of any size becomes a
//! handful of messages. Memory is bounded: a digest keeps counts for at most
//! [`MAX_LINES`] (rule, host) pairs and the first [`FIRST`] alerts in full.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::channel::severity_rank;
use super::message::{AlertView, Digest, DigestLine, Message};

/// (rule, host) pairs counted one by one in a digest.
pub const MAX_LINES: usize = 50;
/// Alerts shown in full in a digest.
pub const FIRST: usize = 5;
const HOUR: Duration = Duration::from_secs(3600);

/// Alerts kept in full for a channel without a digest window, sent one by
/// one; past that many the backlog goes as one digest.
pub const KEEP_ONE_BY_ONE: usize = 500;

/// Alerts waiting to be sent on one channel.
#[derive(Debug, Default)]
pub struct Pending {
    /// Alerts kept in full (at least [`FIRST`]).
    keep: usize,
    total: u64,
    opened: u64,
    resolved: u64,
    severity: String,
    first: Vec<AlertView>,
    lines: HashMap<(String, String), DigestLine>,
    other: u64,
    first_seen: String,
    last_seen: String,
}

impl Pending {
    /// Keeps the first `keep` alerts in full (at least [`FIRST`]).
    pub fn new(keep: usize) -> Self {
        Pending {
            keep: keep.max(FIRST),
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn push(&mut self, a: AlertView) {
        self.total += 1;
        if a.change == "resolved" {
            self.resolved += 1;
        } else {
            self.opened += 1;
        }
        if self.severity.is_empty() || severity_rank(&a.severity) > severity_rank(&self.severity) {
            self.severity = a.severity.clone();
        }
        if self.first_seen.is_empty() || a.last_seen < self.first_seen {
            self.first_seen = a.last_seen.clone();
        }
        if a.last_seen > self.last_seen {
            self.last_seen = a.last_seen.clone();
        }
        let key = (a.rule_id.clone(), a.host.clone());
        if let Some(l) = self.lines.get_mut(&key) {
            l.alerts += 1;
        } else if self.lines.len() < MAX_LINES {
            self.lines.insert(
                key,
                DigestLine {
                    rule_id: a.rule_id.clone(),
                    host: a.host.clone(),
                    severity: a.severity.clone(),
                    title_vi: a.title_vi.clone(),
                    title_en: a.title_en.clone(),
                    alerts: 1,
                },
            );
        } else {
            self.other += 1;
        }
        if self.first.len() < self.keep.max(FIRST) {
            self.first.push(a);
        }
    }

    /// Takes everything as one message: the alert itself when there is one,
    /// a digest otherwise.
    pub fn take(&mut self, link: Option<String>) -> Option<Message> {
        let mut p = std::mem::replace(self, Pending::new(self.keep));
        p.first.truncate(FIRST);
        match p.total {
            0 => None,
            1 => p.first.into_iter().next().map(|a| Message::Alert(Box::new(a))),
            _ => {
                let mut lines: Vec<DigestLine> = p.lines.into_values().collect();
                lines.sort_by(|a, b| {
                    b.alerts
                        .cmp(&a.alerts)
                        .then(severity_rank(&b.severity).cmp(&severity_rank(&a.severity)))
                        .then(a.rule_id.cmp(&b.rule_id))
                        .then(a.host.cmp(&b.host))
                });
                Some(Message::Digest(Box::new(Digest {
                    total: p.total,
                    opened: p.opened,
                    resolved: p.resolved,
                    severity: p.severity,
                    lines,
                    other: p.other,
                    first: p.first,
                    first_seen: p.first_seen,
                    last_seen: p.last_seen,
                    link,
                })))
            }
        }
    }

    /// Takes the oldest waiting alert alone, if every waiting alert is
    /// still kept in full (no-digest channels); otherwise None.
    pub fn take_one(&mut self) -> Option<Message> {
        if self.first.is_empty() || self.total != self.first.len() as u64 {
            return None;
        }
        let mut rest = std::mem::take(&mut self.first).into_iter();
        let one = rest.next()?;
        let mut again = Pending::new(self.keep);
        for a in rest {
            again.push(a);
        }
        *self = again;
        Some(Message::Alert(Box::new(one)))
    }
}

/// When a channel may send, from its digest window and rate limit.
#[derive(Debug, Clone)]
pub struct Gate {
    digest: Duration,
    per_hour: u32,
    last_sent: Option<Instant>,
    sent: VecDeque<Instant>,
}

impl Gate {
    pub fn new(digest: Duration, per_hour: u32) -> Self {
        Gate {
            digest,
            per_hour,
            last_sent: None,
            sent: VecDeque::new(),
        }
    }

    /// Keeps the send history when a channel's settings change.
    pub fn reconfigure(&mut self, digest: Duration, per_hour: u32) {
        self.digest = digest;
        self.per_hour = per_hour;
    }

    /// The earliest time a message may go.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= HOUR)
        {
            self.sent.pop_front();
        }
        let mut at = now;
        if let Some(last) = self.last_sent {
            at = at.max(last + self.digest);
        }
        if self.per_hour > 0 && self.sent.len() >= self.per_hour as usize {
            let n = self.sent.len() - self.per_hour as usize;
            if let Some(t) = self.sent.get(n) {
                at = at.max(*t + HOUR);
            }
        }
        at
    }

    pub fn record_sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.sent.push_back(now);
        // The history never needs more than the limit's worth of entries.
        let keep = (self.per_hour as usize).max(1);
        while self.sent.len() > keep {
            self.sent.pop_front();
        }
    }

    pub fn digest(&self) -> Duration {
        self.digest
    }
}

/// Decides what a channel sends now, if anything: the message and, when
/// nothing can go yet, the time to look again.
pub fn poll(gate: &mut Gate, pending: &mut Pending, now: Instant, link: Option<String>) -> Poll {
    if pending.is_empty() {
        return Poll::Idle;
    }
    let at = gate.ready_at(now);
    if at > now {
        return Poll::Wait(at);
    }
    // No digest window: alerts go one by one while there are few; a backlog
    // (the rate limit held it) goes as one digest.
    let msg = if gate.digest().is_zero() {
        pending.take_one().or_else(|| pending.take(link))
    } else {
        pending.take(link)
    };
    match msg {
        Some(m) => {
            gate.record_sent(now);
            Poll::Send(m)
        }
        None => Poll::Idle,
    }
}

#[derive(Debug)]
pub enum Poll {
    Idle,
    Wait(Instant),
    Send(Message),
}

/// The wait before retry number `attempt` (1 = the first retry): `initial`,
/// doubling each time, at most 10 minutes.
pub fn backoff(initial: Duration, attempt: u32) -> Duration {
    let cap = Duration::from_secs(600);
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    initial.checked_mul(factor).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::message::tests::hostile_alert;

    fn alert(i: i64, rule: &str, host: &str, sev: &str) -> AlertView {
        let mut a = hostile_alert();
        a.id = i;
        a.rule_id = rule.into();
        a.host = host.into();
        a.severity = sev.into();
        a.last_seen = format!("2026-11-27T01:00:{:02}.000Z", i % 60);
        a
    }

    #[test]
    fn first_alert_goes_at_once_then_a_storm_becomes_one_digest_per_window() {
        let t0 = Instant::now();
        let mut g = Gate::new(Duration::from_secs(60), 0);
        let mut p = Pending::default();
        p.push(alert(1, "r", "h", "high"));
        let Poll::Send(Message::Alert(a)) = poll(&mut g, &mut p, t0, None) else {
            panic!("the first alert goes alone and at once")
        };
        assert_eq!(a.id, 1);
        let mut sent = 1;
        // 1,000 alerts over 150 s, one every 150 ms.
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(150 * i);
            p.push(alert(
                2 + i as i64,
                &format!("r{}", i % 3),
                &format!("h{}", i % 70),
                "medium",
            ));
            if let Poll::Send(m) = poll(&mut g, &mut p, now, None) {
                assert!(matches!(m, Message::Digest(_)));
                sent += 1;
            }
        }
        // And the rest when the window ends.
        let end = t0 + Duration::from_secs(400);
        if let Poll::Send(_) = poll(&mut g, &mut p, end, None) {
            sent += 1;
        }
        assert!(p.is_empty());
        assert!(sent <= 5, "{sent} messages for 1,001 alerts");
    }

    #[test]
    fn digests_count_per_rule_and_host_with_bounded_memory() {
        let mut p = Pending::default();
        for i in 0..1000 {
            p.push(alert(
                i,
                &format!("r{}", i % 2),
                &format!("host-{}", i % 100),
                if i == 500 { "critical" } else { "low" },
            ));
        }
        let Some(Message::Digest(d)) = p.take(Some("https://c/alerts".into())) else {
            panic!()
        };
        assert_eq!(d.total, 1000);
        assert_eq!(d.opened, 1000);
        assert_eq!(d.severity, "critical");
        assert_eq!(d.lines.len(), MAX_LINES);
        assert_eq!(d.lines.iter().map(|l| l.alerts).sum::<u64>() + d.other, 1000);
        assert_eq!(d.first.len(), FIRST);
        assert_eq!(d.first[0].id, 0);
        assert!(p.is_empty());
        assert!(p.take(None).is_none());
    }

    #[test]
    fn the_rate_limit_holds_messages_back_and_then_sends_one_digest() {
        let t0 = Instant::now();
        let mut g = Gate::new(Duration::ZERO, 3);
        let mut p = Pending::new(3);
        let mut sent = Vec::new();
        for i in 0..10 {
            p.push(alert(i, "r", "h", "high"));
            if let Poll::Send(m) = poll(&mut g, &mut p, t0 + Duration::from_secs(i as u64), None) {
                sent.push(m);
            }
        }
        assert_eq!(sent.len(), 3, "three per hour");
        assert!(sent.iter().all(|m| matches!(m, Message::Alert(_))));
        let Poll::Wait(at) = poll(&mut g, &mut p, t0 + Duration::from_secs(20), None) else {
            panic!()
        };
        assert_eq!(at, t0 + HOUR, "the oldest send leaves the hour");
        let Poll::Send(Message::Digest(d)) = poll(&mut g, &mut p, at, None) else {
            panic!()
        };
        assert_eq!(d.total, 7);
    }

    #[test]
    fn without_a_window_alerts_go_one_by_one() {
        let t0 = Instant::now();
        let mut g = Gate::new(Duration::ZERO, 0);
        let mut p = Pending::new(KEEP_ONE_BY_ONE);
        for i in 0..3 {
            p.push(alert(i, "r", "h", "high"));
        }
        for i in 0..3 {
            let Poll::Send(Message::Alert(a)) = poll(&mut g, &mut p, t0, None) else {
                panic!()
            };
            assert_eq!(a.id, i, "oldest first");
        }
        assert!(matches!(poll(&mut g, &mut p, t0, None), Poll::Idle));
        // More than it keeps in full: one digest.
        for i in 0..(KEEP_ONE_BY_ONE as i64 + 1) {
            p.push(alert(i, "r", "h", "high"));
        }
        let Poll::Send(Message::Digest(d)) = poll(&mut g, &mut p, t0, None) else {
            panic!()
        };
        assert_eq!(d.total, KEEP_ONE_BY_ONE as u64 + 1);
        assert_eq!(d.first.len(), FIRST);
    }

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        let i = Duration::from_secs(5);
        assert_eq!(backoff(i, 1), Duration::from_secs(5));
        assert_eq!(backoff(i, 2), Duration::from_secs(10));
        assert_eq!(backoff(i, 3), Duration::from_secs(20));
        assert_eq!(backoff(i, 8), Duration::from_secs(600));
        assert_eq!(backoff(i, 40), Duration::from_secs(600));
        assert_eq!(backoff(i, u32::MAX), Duration::from_secs(600));
        assert_eq!(backoff(Duration::from_millis(100), 0), Duration::from_millis(100));
    }
}
