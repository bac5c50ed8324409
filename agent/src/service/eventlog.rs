//! A tracing layer that writes to the Windows Event Log (Application log,
//! source `canhgac-agent`). The logging setup sends it only the service's
//! start, stop and fatal-error records. Windows only.

use std::fmt::Write as _;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::EventLog::{
    DeregisterEventSource, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE, EVENTLOG_WARNING_TYPE,
    RegisterEventSourceW, ReportEventW,
};

/// Event ids: 1 information (start, stop), 2 warning, 3 error (fatal).
pub fn event_id(level: &tracing::Level) -> u32 {
    match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 2,
        _ => 1,
    }
}

pub struct Layer {
    handle: HANDLE,
}

// SAFETY: an event source handle may be used from any thread.
unsafe impl Send for Layer {}
unsafe impl Sync for Layer {}

impl Layer {
    pub fn new(source: &str) -> Self {
        let name: Vec<u16> = source.encode_utf16().chain(Some(0)).collect();
        // SAFETY: NUL-terminated name; a null handle makes on_event a no-op.
        let handle = unsafe { RegisterEventSourceW(std::ptr::null(), name.as_ptr()) };
        Layer { handle }
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            // SAFETY: a handle from RegisterEventSourceW, closed once.
            unsafe { DeregisterEventSource(self.handle) };
        }
    }
}

struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        if self.handle.is_null() {
            return;
        }
        let mut t = Text(String::new());
        event.record(&mut t);
        let level = event.metadata().level();
        let kind = match *level {
            tracing::Level::ERROR => EVENTLOG_ERROR_TYPE,
            tracing::Level::WARN => EVENTLOG_WARNING_TYPE,
            _ => EVENTLOG_INFORMATION_TYPE,
        };
        let wide: Vec<u16> = t.0.encode_utf16().filter(|&c| c != 0).chain(Some(0)).collect();
        let strings = [wide.as_ptr()];
        // SAFETY: one valid NUL-terminated string, no raw data.
        unsafe {
            ReportEventW(
                self.handle,
                kind,
                0,
                event_id(level),
                std::ptr::null_mut(),
                1,
                0,
                strings.as_ptr(),
                std::ptr::null(),
            );
        }
    }
}
