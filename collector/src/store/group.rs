//! Group commit, shared by both backends: agents' event batches and
//! heartbeats queue for one writer thread, which stores whatever is waiting
//! in one transaction and answers each request after the commit.

use std::sync::{Mutex, mpsc};

use canhgac_proto::wire::Heartbeat;

use super::{NewEvent, Result, StoreError};

/// Most events in one transaction.
const MAX_EVENTS: usize = 20_000;
/// Most requests in one transaction.
const MAX_JOBS: usize = 2_000;

/// One agent's write.
pub(crate) enum Work {
    Events {
        events: Vec<NewEvent>,
        dropped_total: u64,
    },
    /// A heartbeat with its inventory already encoded, so the one writer
    /// thread does not spend its time on JSON.
    Heartbeat { hb: Box<Heartbeat>, inventory: String },
}

impl Work {
    pub(crate) fn heartbeat(hb: &Heartbeat) -> Result<Self> {
        let inventory = serde_json::to_string(hb).map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Work::Heartbeat {
            hb: Box::new(hb.clone()),
            inventory,
        })
    }
}

pub(crate) struct Job {
    pub agent_id: String,
    pub work: Work,
    reply: mpsc::SyncSender<Result<u64>>,
}

impl Job {
    /// What the job weighs against [`MAX_EVENTS`].
    fn weight(&self) -> usize {
        match &self.work {
            Work::Events { events, .. } => events.len().max(1),
            Work::Heartbeat { .. } => 1,
        }
    }
}

/// A backend's way to store one group.
pub(crate) trait Commit: Send + 'static {
    /// Stores `jobs` in one transaction: a result per job (its new events, or
    /// its own refusal), or one error that fails them all.
    fn commit(&mut self, jobs: &[Job]) -> std::result::Result<Vec<Result<u64>>, String>;
}

/// The writer thread: started on first use, stopped after its queue on drop.
pub(crate) struct GroupWriter {
    name: &'static str,
    tx: Mutex<Option<mpsc::SyncSender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupWriter {
    pub(crate) fn new(name: &'static str) -> Self {
        GroupWriter {
            name,
            tx: Mutex::new(None),
            thread: Mutex::new(None),
        }
    }

    /// Queues one agent's write and waits for its commit; `start` makes the
    /// backend's committer when the thread is not running yet.
    pub(crate) fn write(
        &self,
        agent_id: &str,
        work: Work,
        start: impl FnOnce() -> Result<Box<dyn Commit>>,
    ) -> Result<u64> {
        let stopped = || StoreError::Backend("the store writer has stopped".into());
        let sender = {
            let mut tx = lock(&self.tx);
            match tx.as_ref() {
                Some(s) => s.clone(),
                None => {
                    let committer = start()?;
                    let (s, r) = mpsc::sync_channel::<Job>(4_096);
                    let handle = std::thread::Builder::new()
                        .name(self.name.into())
                        .spawn(move || run(committer, r))
                        .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
                    *lock(&self.thread) = Some(handle);
                    *tx = Some(s.clone());
                    s
                }
            }
        };
        let (reply, rx) = mpsc::sync_channel(1);
        sender
            .send(Job {
                agent_id: agent_id.to_string(),
                work,
                reply,
            })
            .map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }
}

impl Drop for GroupWriter {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has drained its queue.
        lock(&self.tx).take();
        if let Some(h) = lock(&self.thread).take() {
            let _ = h.join();
        }
    }
}

fn run(mut committer: Box<dyn Commit>, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut n = first.weight();
        let mut jobs = vec![first];
        while n < MAX_EVENTS && jobs.len() < MAX_JOBS {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.weight();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        match committer.commit(&jobs) {
            Ok(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = jobs.len(), "group commit failed");
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Backend(e.clone())));
                }
            }
        }
    }
}
