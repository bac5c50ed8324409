//! Group commit for PostgreSQL: event batches and heartbeats of many agents
//! in one transaction, with set-based statements.
//!
//! One transaction per request cost seven round trips and a WAL flush for
//! every batch and heartbeat; 20,000 agents send ~2,700 of those a second,
//! which the server's per-statement work could not follow on a small
//! machine. Here the writer thread (`store::group`), with a connection of
//! its own, stores whatever requests are waiting with a fixed number of
//! statements, whatever their count:
//!
//! 1. the event gate, shared (see `store::postgres`);
//! 2. the per-agent ingest locks of every agent in the group, in one sorted
//!    order (the same in every instance, so two instances' groups cannot
//!    deadlock on them);
//! 3. the agents' rows, locked in id order, with what the statements below
//!    need from before (dropped count, silence, host name);
//! 4. one INSERT of every new event (sequence numbers already stored, or
//!    repeated within the group, are left out: the first copy wins);
//! 5. one UPDATE of the senders' counters, one of the heartbeats' facts;
//! 6. the collector's own events (spool drops, resumed agents), if any.
//!
//! A reply is sent only after the commit. An error fails the whole group;
//! a deadlock with another writer of agent rows is retried once.

use std::collections::{HashMap, HashSet};

use ::postgres::Client;
use canhgac_proto::wire::Heartbeat;

use super::{AGENT_NS, PgTarget, connect, gate_shared, insert_collector_event};
use crate::store::group::{Commit, Job, Work};
use crate::store::{Result, StoreError, now, resumed_event, spool_dropped_event};

/// PostgreSQL's group commit, on a connection of its own (made again after a failure).
pub(super) struct PgCommit {
    pub(super) target: PgTarget,
    pub(super) client: Option<Client>,
}

impl Commit for PgCommit {
    fn commit(&mut self, jobs: &[Job]) -> std::result::Result<Vec<Result<u64>>, String> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = Some(connect(&self.target).map_err(|e| e.to_string())?);
        }
        let Some(c) = self.client.as_mut() else {
            return Err("no connection to PostgreSQL".into());
        };
        let mut outcome = commit_group(c, jobs);
        if matches!(&outcome, Err(StoreError::Backend(m)) if m.starts_with("40P01")) {
            tracing::warn!(
                "store writer: deadlock with another writer of agent rows; retrying the group once"
            );
            outcome = commit_group(c, jobs);
        }
        outcome.map_err(|e| e.to_string())
    }
}

/// The newest heartbeat of an agent in the group.
struct Beat<'a> {
    id: &'a str,
    hb: &'a Heartbeat,
    inventory: &'a str,
}

fn commit_group(client: &mut Client, jobs: &[Job]) -> Result<Vec<Result<u64>>> {
    let received = now();
    // Per job, the events it contributes (the first copy of a sequence number wins).
    let mut seen: HashSet<(&str, u64)> = HashSet::new();
    let mut ev_job: Vec<usize> = Vec::new();
    let (mut ev_agent, mut ev_seq, mut ev_ts, mut ev_kind, mut ev_body) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut beats: HashMap<&str, usize> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        match &j.work {
            Work::Events { events, .. } => {
                for ev in events {
                    if let Some(s) = ev.seq
                        && !seen.insert((j.agent_id.as_str(), s))
                    {
                        continue;
                    }
                    ev_job.push(i);
                    ev_agent.push(j.agent_id.as_str());
                    ev_seq.push(ev.seq.map(|s| s as i64));
                    ev_ts.push(ev.timestamp.as_str());
                    ev_kind.push(ev.kind.as_str());
                    ev_body.push(ev.body.as_str());
                }
            }
            Work::Heartbeat { .. } => {
                beats.insert(j.agent_id.as_str(), i);
            }
        }
    }
    let mut agents: Vec<&str> = jobs.iter().map(|j| j.agent_id.as_str()).collect();
    agents.sort_unstable();
    agents.dedup();

    let mut tx = client.transaction()?;
    gate_shared(&mut tx)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(a)) FROM (SELECT a FROM unnest($2::text[]) AS a ORDER BY a) s",
        &[&AGENT_NS, &agents],
    )?;
    // Row locks in id order; what the updates below change, as it was.
    let before: HashMap<String, (i64, bool, String)> = tx
        .query(
            "SELECT id, dropped_total, silent, hostname FROM agents WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&agents],
        )?
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();

    // 4. Events: which rows went in, counted per job.
    let mut stored = vec![0u64; jobs.len()];
    if !ev_job.is_empty() {
        let inserted = tx.query(
            "INSERT INTO events (agent_id, seq, ts, received_at, kind, body)
             SELECT u.agent, u.seq, u.ts, $1, u.kind, u.body
             FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                  WITH ORDINALITY AS u(agent, seq, ts, kind, body, n)
             WHERE u.seq IS NULL OR NOT EXISTS (SELECT 1 FROM events e WHERE e.agent_id = u.agent AND e.seq = u.seq)
             ORDER BY u.n
             RETURNING agent_id, seq",
            &[
                &received,
                &ev_agent,
                &ev_seq,
                &ev_ts,
                &ev_kind,
                &ev_body,
            ],
        )?;
        let mut owner: HashMap<(&str, Option<i64>), usize> = HashMap::new();
        for (k, &i) in ev_job.iter().enumerate() {
            if ev_seq[k].is_some() {
                owner.insert((ev_agent[k], ev_seq[k]), i);
            }
        }
        // Events without a sequence number: counted for the first job of that agent.
        for r in &inserted {
            let (a, s): (String, Option<i64>) = (r.get(0), r.get(1));
            let i = owner.get(&(a.as_str(), s)).copied().or_else(|| {
                jobs.iter()
                    .position(|j| j.agent_id == a && matches!(j.work, Work::Events { .. }))
            });
            if let Some(i) = i {
                stored[i] += 1;
            }
        }
    }

    // 5a. Senders' counters, one row per agent.
    let mut per_agent: HashMap<&str, (i64, i64, i64)> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if let Work::Events {
            events,
            dropped_total,
        } = &j.work
        {
            let e = per_agent.entry(j.agent_id.as_str()).or_insert((0, 0, 0));
            let last = events.iter().filter_map(|e| e.seq).max().unwrap_or(0) as i64;
            e.0 = e.0.max(last);
            e.1 += stored[i] as i64;
            e.2 = e.2.max(*dropped_total as i64);
        }
    }
    if !per_agent.is_empty() {
        let (mut ids, mut last, mut count, mut dropped) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (a, (l, c, d)) in &per_agent {
            ids.push(*a);
            last.push(*l);
            count.push(*c);
            dropped.push(*d);
        }
        tx.execute(
            "UPDATE agents a SET last_seq = GREATEST(a.last_seq, u.last), event_count = a.event_count + u.n,
             last_seen = $1, dropped_total = GREATEST(a.dropped_total, u.dropped)
             FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS u(id, last, n, dropped)
             WHERE a.id = u.id",
            &[&received, &ids, &last, &count, &dropped],
        )?;
    }

    // 5b. Heartbeats: the newest of each agent.
    let mut results: Vec<Option<Result<u64>>> = jobs.iter().map(|_| None).collect();
    let mut hb_rows: Vec<Beat<'_>> = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let Work::Heartbeat { hb, inventory } = &j.work else {
            continue;
        };
        if !before.contains_key(&j.agent_id) {
            results[i] = Some(Err(StoreError::NotFound(format!("agent {}", j.agent_id))));
            continue;
        }
        if beats.get(j.agent_id.as_str()) != Some(&i) {
            results[i] = Some(Ok(0));
            continue;
        }
        hb_rows.push(Beat {
            id: &j.agent_id,
            hb,
            inventory,
        });
    }
    if !hb_rows.is_empty() {
        let col = |f: &dyn for<'b> Fn(&'b Beat<'_>) -> &'b str| hb_rows.iter().map(f).collect::<Vec<&str>>();
        tx.execute(
            "UPDATE agents a SET last_seen = $1, silent = FALSE, inventory_json = u.inv,
             dropped_total = GREATEST(a.dropped_total, u.dropped), hostname = u.hostname, os_family = u.os_family,
             os_version = u.os_version, kernel_version = u.kernel_version, arch = u.arch, agent_version = u.agent_version
             FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
                         $9::text[], $10::text[])
                  AS u(id, inv, dropped, hostname, os_family, os_version, kernel_version, arch, agent_version)
             WHERE a.id = u.id",
            &[
                &received,
                &col(&|b| b.id),
                &col(&|b| b.inventory),
                &hb_rows.iter().map(|b| b.hb.dropped_total as i64).collect::<Vec<_>>(),
                &col(&|b| &b.hb.host.hostname),
                &col(&|b| &b.hb.host.os_family),
                &col(&|b| &b.hb.host.os_version),
                &col(&|b| &b.hb.host.kernel_version),
                &col(&|b| &b.hb.host.arch),
                &col(&|b| &b.hb.host.agent_version),
            ],
        )?;
    }

    // 6. The collector's own events.
    for (a, (_, _, dropped)) in &per_agent {
        if let Some((old, _, host)) = before.get(*a)
            && *dropped > *old
        {
            let ev = spool_dropped_event(a, host.clone(), *dropped as u64, *old as u64);
            insert_collector_event(&mut tx, a, &ev)?;
        }
    }
    for b in &hb_rows {
        if let Some((_, true, host)) = before.get(b.id) {
            insert_collector_event(&mut tx, b.id, &resumed_event(b.id, host.clone()))?;
        }
    }
    tx.commit()?;
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or(Ok(stored[i])))
        .collect())
}
