//! Which collector instance runs the background jobs (rule worker, silence
//! watch, retention; notifications follow the rule worker).
//!
//! On the embedded database there is one instance: it always leads. On
//! PostgreSQL the leader is the instance holding a session-level advisory
//! lock on a connection of its own. The lock lives exactly as long as that
//! database session: when the instance dies (even by SIGKILL) its socket
//! closes, the server ends the session and frees the lock, and another
//! instance, which retries every second, takes it. An instance that loses
//! its lease connection stops its jobs before it tries again. A leader that
//! hangs instead of dying (frozen, or cut off by the network) loses the
//! lease too: the lease connection is set up so that the server ends the
//! session after 10 s without the leader's once-a-second poll, and the
//! leader's side gives up after 10 s without an answer (`connect_lease`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::postgres::{LEADER_KEY, LOCK_NS, PgTarget, connect_lease};

/// How often a follower asks for the lease and the leader checks its session.
const POLL: Duration = Duration::from_secs(1);

/// Leadership as a watch: true while this instance runs the background jobs.
pub struct Lease {
    pub leading: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The sender of a lease that never changes, kept with its receiver.
    _sole: Option<watch::Sender<bool>>,
}

impl Lease {
    /// The only instance: always the leader.
    pub fn sole() -> Self {
        let (tx, rx) = watch::channel(true);
        Lease {
            leading: rx,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            _sole: Some(tx),
        }
    }

    /// Competes for the lease on `target` until dropped.
    pub fn postgres(target: PgTarget) -> Self {
        let (tx, rx) = watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("leader-lease".into())
            .spawn(move || lease_loop(target, tx, s))
            .ok();
        Lease {
            leading: rx,
            stop,
            thread,
            _sole: None,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            // Closing the connection frees the lock at once.
            let _ = t.join();
        }
    }
}

fn lease_loop(target: PgTarget, tx: watch::Sender<bool>, stop: Arc<AtomicBool>) {
    let set = |v: bool| {
        tx.send_if_modified(|cur| {
            let changed = *cur != v;
            *cur = v;
            changed
        })
    };
    while !stop.load(Ordering::SeqCst) {
        let mut client = match connect_lease(&target) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "leader lease: cannot reach the database; retrying");
                std::thread::sleep(POLL * 2);
                continue;
            }
        };
        let mut holding = false;
        while !stop.load(Ordering::SeqCst) {
            let r = if holding {
                client.simple_query("SELECT 1").map(|_| true)
            } else {
                client
                    .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_NS, &LEADER_KEY])
                    .map(|r| r.get::<_, bool>(0))
            };
            match r {
                Ok(true) if !holding => {
                    holding = true;
                    set(true);
                    tracing::info!("leader lease taken: this instance runs the background jobs");
                }
                Ok(_) => {}
                Err(e) => {
                    if holding {
                        tracing::warn!(error = %e, "leader lease lost: background jobs stop here");
                    }
                    set(false);
                    break;
                }
            }
            std::thread::sleep(POLL);
        }
        if holding && stop.load(Ordering::SeqCst) {
            let _ = client.execute("SELECT pg_advisory_unlock($1, $2)", &[&LOCK_NS, &LEADER_KEY]);
            set(false);
            return;
        }
    }
}
