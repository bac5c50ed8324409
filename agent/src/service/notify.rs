//! Readiness, watchdog and stopping notifications to systemd (`Type=notify`).
//! Without `$NOTIFY_SOCKET` (not started by systemd) each call does nothing.

use std::time::Duration;

/// `READY=1` once the agent holds its state dir and spool.
pub fn ready() {
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("running"),
    ]);
}

/// `STOPPING=1` when a stop was requested; the spool is flushed and closed next.
pub fn stopping() {
    send(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: flushing the spool"),
    ]);
}

fn send(states: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The watchdog ping interval: half of `WatchdogSec`, when systemd set one
/// for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog from the async runtime (also while stopping), so a
/// wedged runtime gets the agent restarted. Runs until aborted.
pub async fn watchdog() {
    let Some(every) = watchdog_interval() else { return };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        send(&[sd_notify::NotifyState::Watchdog]);
    }
}
