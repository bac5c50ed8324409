//! Antivirus state and event logs on Windows: the OS calls. Decisions are made by the pure
//! functions of [`super::wsc`], [`super::defender`] and [`crate::winevent`].
//!
//! - [`snapshot`]: Security Center (`root\SecurityCenter2`, absent on Windows Server),
//!   Defender's status (`root\Microsoft\Windows\Defender`) and the service list
//!   (`root\cimv2` `Win32_Service`), merged by [`defender::merge_windows_products`].
//! - [`EventLogReader`]: new events of one channel, as XML, through `EvtQuery`/`EvtNext`/
//!   `EvtRender`.
//!
//! WMI connections come from the `wmi` crate, which initialises COM for the calling thread when
//! needed (multithreaded apartment, default security) and leaves it initialised; a connection
//! cannot move between threads, so [`snapshot`] opens and drops its own.

use std::collections::HashMap;
use std::io;
use std::ptr;

use serde::Deserialize;
use windows_sys::Win32::Foundation::{ERROR_INSUFFICIENT_BUFFER, ERROR_NO_MORE_ITEMS};
use windows_sys::Win32::System::EventLog::{
    EVT_HANDLE, EvtClose, EvtNext, EvtQuery, EvtQueryChannelPath, EvtQueryForwardDirection,
    EvtQueryReverseDirection, EvtRender, EvtRenderEventXml,
};
use wmi::{Variant, WMIConnection, WMIError};

use super::defender::{self, MpStatus};
use super::model::AvProduct;
use super::wsc;
use crate::winevent;

/// `WBEM_E_INVALID_NAMESPACE`: the namespace does not exist (Security Center on Windows Server,
/// Defender's namespace where Defender is not installed).
const WBEM_E_INVALID_NAMESPACE: u32 = 0x8004_100E;
/// `WBEM_E_INVALID_CLASS`: the class does not exist.
const WBEM_E_INVALID_CLASS: u32 = 0x8004_1010;

fn hresult(e: &WMIError) -> Option<u32> {
    match e {
        // HRESULTs are bit patterns; the cast reinterprets the sign bit, nothing is lost.
        WMIError::HResultError { hres } => Some(*hres as u32),
        _ => None,
    }
}

fn is_absent(e: &WMIError) -> bool {
    matches!(hresult(e), Some(WBEM_E_INVALID_NAMESPACE | WBEM_E_INVALID_CLASS))
}

/// One `AntiVirusProduct` instance.
#[derive(Debug, Deserialize)]
struct WscRow {
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "productState")]
    product_state: Option<u32>,
    #[serde(rename = "pathToSignedProductExe")]
    path: Option<String>,
    timestamp: Option<String>,
}

/// One `Win32_Service` instance.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceRow {
    name: Option<String>,
    display_name: Option<String>,
    state: Option<String>,
}

/// Security Center's antivirus products; `Ok(None)` when Security Center does not exist here
/// (Windows Server).
fn security_center() -> Result<Option<Vec<AvProduct>>, String> {
    let con = match WMIConnection::with_namespace_path("ROOT\\SecurityCenter2") {
        Ok(con) => con,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot open Security Center (root\\SecurityCenter2): {e}"
            ));
        }
    };
    let rows: Vec<WscRow> = match con.raw_query(
        "SELECT displayName, productState, pathToSignedProductExe, timestamp FROM AntiVirusProduct",
    ) {
        Ok(rows) => rows,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot query Security Center's AntiVirusProduct: {e}")),
    };
    let mut out = Vec::new();
    for row in rows {
        let name = row.display_name.unwrap_or_default();
        match row.product_state {
            Some(state) => out.push(wsc::product(
                &name,
                state,
                row.path.as_deref(),
                row.timestamp.as_deref(),
            )),
            None => out.push(AvProduct {
                name,
                source: "wsc".to_string(),
                path: row.path,
                problems: vec!["Security Center reports no productState".to_string()],
                ..Default::default()
            }),
        }
    }
    Ok(Some(out))
}

/// A WMI value as JSON, so that [`MpStatus`] can be deserialized from whatever properties this
/// Defender platform has (a typed WMI query fails as a whole when one property is missing).
fn json_of(v: &Variant) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Variant::String(s) => Value::from(s.clone()),
        Variant::Bool(b) => Value::from(*b),
        Variant::I1(x) => Value::from(*x),
        Variant::I2(x) => Value::from(*x),
        Variant::I4(x) => Value::from(*x),
        Variant::I8(x) => Value::from(*x),
        Variant::UI1(x) => Value::from(*x),
        Variant::UI2(x) => Value::from(*x),
        Variant::UI4(x) => Value::from(*x),
        Variant::UI8(x) => Value::from(*x),
        Variant::R4(x) => serde_json::Number::from_f64(f64::from(*x)).map_or(Value::Null, Value::Number),
        Variant::R8(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        Variant::Array(items) => Value::Array(items.iter().map(json_of).collect()),
        _ => Value::Null,
    }
}

/// Defender's status; `Ok(None)` when Defender's namespace or class does not exist.
fn defender_status() -> Result<Option<AvProduct>, String> {
    let con = match WMIConnection::with_namespace_path("ROOT\\Microsoft\\Windows\\Defender") {
        Ok(con) => con,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot open Defender's WMI namespace: {e}")),
    };
    let rows: Vec<HashMap<String, Variant>> = match con.raw_query("SELECT * FROM MSFT_MpComputerStatus") {
        Ok(rows) => rows,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot query MSFT_MpComputerStatus: {e}")),
    };
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let map: serde_json::Map<String, serde_json::Value> =
        row.iter().map(|(k, v)| (k.clone(), json_of(v))).collect();
    let status: MpStatus = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| format!("unexpected MSFT_MpComputerStatus values: {e}"))?;
    Ok(Some(defender::product_from_mp_status(&status)))
}

/// All services as (name, display name, running).
fn services() -> Result<Vec<(String, String, bool)>, String> {
    let con = WMIConnection::new().map_err(|e| format!("cannot open WMI (root\\cimv2): {e}"))?;
    let rows: Vec<ServiceRow> = con
        .raw_query("SELECT Name, DisplayName, State FROM Win32_Service")
        .map_err(|e| format!("cannot list services: {e}"))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let name = r.name?;
            let running = r
                .state
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("Running"));
            Some((name, r.display_name.unwrap_or_default(), running))
        })
        .collect())
}

/// The antivirus products of this machine and the problems met while asking.
///
/// Security Center gives the products registered with Windows (Kaspersky, Defender, …) on
/// workstations; Windows Server has no Security Center, so there Defender's status and the
/// service list are what we have. One failing source is a problem, not a failure: the others
/// are still reported.
pub fn snapshot() -> (Vec<AvProduct>, Vec<String>) {
    let mut problems = Vec::new();
    let wsc = security_center().unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let defender = defender_status().unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let services = services().unwrap_or_else(|e| {
        problems.push(e);
        Vec::new()
    });
    let products =
        defender::merge_windows_products(wsc, defender, defender::products_from_services(&services));
    (products, problems)
}

/// An event log handle, closed when dropped.
struct Handle(EVT_HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        if self.0 != 0 {
            // SAFETY: the handle came from EvtQuery/EvtNext, is owned by this value alone and is
            // closed exactly once, here.
            unsafe {
                EvtClose(self.0);
            }
        }
    }
}

/// NUL-terminated UTF-16 for the API; interior NULs are refused.
fn wide(s: &str) -> io::Result<Vec<u16>> {
    if s.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NUL character in an event log query",
        ));
    }
    Ok(s.encode_utf16().chain(std::iter::once(0)).collect())
}

/// The calling thread's last OS error, named after the call that failed. Some implementations
/// (wine) fail without setting an error code; that is said plainly rather than as "success".
fn os_error(what: &str) -> io::Error {
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(0) | None => io::Error::other(format!("{what} failed without an error code")),
        Some(_) => io::Error::new(err.kind(), format!("{what}: {err}")),
    }
}

fn evt_query(path: Option<&str>, query: &str, flags: u32) -> io::Result<Handle> {
    let path = path.map(wide).transpose()?;
    let query = wide(query)?;
    let path_ptr = path.as_ref().map_or(ptr::null(), |p| p.as_ptr());
    // SAFETY: both strings are NUL-terminated and outlive the call; session 0 is the local
    // computer.
    let h = unsafe { EvtQuery(0, path_ptr, query.as_ptr(), flags) };
    if h == 0 {
        Err(os_error("EvtQuery"))
    } else {
        Ok(Handle(h))
    }
}

/// Up to `max` more events of a result set; empty at the end.
fn evt_next(results: &Handle, max: usize) -> io::Result<Vec<Handle>> {
    let mut raw: Vec<EVT_HANDLE> = vec![0; max.max(1)];
    let mut returned: u32 = 0;
    let count = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    // SAFETY: `raw` has room for `count` handles; `returned` receives how many were written.
    let ok = unsafe { EvtNext(results.0, count, raw.as_mut_ptr(), 1000, 0, &mut returned) };
    if ok == 0 {
        if io::Error::last_os_error().raw_os_error() == Some(ERROR_NO_MORE_ITEMS as i32) {
            return Ok(Vec::new());
        }
        return Err(os_error("EvtNext"));
    }
    let n = (returned as usize).min(raw.len());
    Ok(raw[..n].iter().map(|&h| Handle(h)).collect())
}

/// Largest rendered event accepted (a record holds at most 64 KiB of data).
const MAX_RENDER_BYTES: u32 = 16 * 1024 * 1024;

/// One event as XML.
fn evt_render_xml(event: &Handle) -> io::Result<String> {
    let mut used: u32 = 0;
    let mut props: u32 = 0;
    // SAFETY: a zero-sized buffer with a null pointer asks for the size needed.
    let ok = unsafe {
        EvtRender(
            0,
            event.0,
            EvtRenderEventXml,
            0,
            ptr::null_mut(),
            &mut used,
            &mut props,
        )
    };
    if ok == 0 && io::Error::last_os_error().raw_os_error() != Some(ERROR_INSUFFICIENT_BUFFER as i32) {
        return Err(os_error("EvtRender"));
    }
    if used > MAX_RENDER_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("event XML of {used} bytes"),
        ));
    }
    let mut buf: Vec<u16> = vec![0; (used as usize).div_ceil(2)];
    let size = u32::try_from(buf.len() * 2).unwrap_or(u32::MAX);
    // SAFETY: `buf` holds `size` bytes; EvtRender writes at most that many and reports `used`.
    let ok = unsafe {
        EvtRender(
            0,
            event.0,
            EvtRenderEventXml,
            size,
            buf.as_mut_ptr().cast(),
            &mut used,
            &mut props,
        )
    };
    if ok == 0 {
        return Err(os_error("EvtRender"));
    }
    let n = (used as usize / 2).min(buf.len());
    Ok(String::from_utf16_lossy(&buf[..n])
        .trim_end_matches('\0')
        .to_string())
}

/// The record id of the newest event of `channel` matching `xpath`, if any.
fn newest_record(channel: &str, xpath: &str) -> io::Result<Option<u64>> {
    let results = evt_query(
        Some(channel),
        xpath,
        EvtQueryChannelPath | EvtQueryReverseDirection,
    )?;
    let Some(event) = evt_next(&results, 1)?.into_iter().next() else {
        return Ok(None);
    };
    Ok(winevent::record_id_of(&evt_render_xml(&event)?))
}

/// Reads the events of one channel that arrived since the reader was created, in order, a
/// batch at a time.
///
/// The reader remembers the highest `EventRecordID` it returned and asks Windows only for
/// later records (a structured query with a `Suppress` clause, see
/// [`winevent::structured_query`]), so nothing is returned twice and nothing is skipped while
/// the agent keeps up. If the channel's newest record id falls below the remembered one, the
/// log was cleared: reading starts again from its beginning. Events older than the reader are
/// never returned: the first batch starts after the newest record present at creation.
pub struct EventLogReader {
    channel: String,
    query: String,
    last: u64,
}

/// Events returned by one [`EventLogReader::next_batch`] at most; the rest come next time.
pub const MAX_BATCH: usize = 256;

impl EventLogReader {
    /// A reader of `channel` (e.g. `Microsoft-Windows-Windows Defender/Operational`, `System`)
    /// for events matching the XPath `query` (as in Event Viewer's XML filter, e.g.
    /// `*[System[(EventID=1116 or EventID=1117)]]`, or `*` for all). Fails if the channel does
    /// not exist, cannot be read, or the query is invalid.
    pub fn new(channel: &str, query: &str) -> io::Result<Self> {
        let last = newest_record(channel, "*")?.unwrap_or(0);
        let reader = EventLogReader {
            channel: channel.to_string(),
            query: query.to_string(),
            last,
        };
        // Validate the query now rather than at the first batch.
        drop(evt_query(
            None,
            &winevent::structured_query(&reader.channel, &reader.query, last),
            EvtQueryChannelPath,
        )?);
        Ok(reader)
    }

    /// The events that arrived since the previous call (or since [`new`](Self::new)), oldest
    /// first, as XML for [`winevent::parse`]; at most [`MAX_BATCH`]. An error leaves the
    /// position unchanged, so the same events are offered again by the next call.
    pub fn next_batch(&mut self) -> io::Result<Vec<String>> {
        match newest_record(&self.channel, "*")? {
            Some(newest) if newest < self.last => self.last = 0,
            None if self.last > 0 => self.last = 0,
            _ => {}
        }
        let query = winevent::structured_query(&self.channel, &self.query, self.last);
        let results = evt_query(None, &query, EvtQueryChannelPath | EvtQueryForwardDirection)?;
        let mut out = Vec::new();
        let mut last = self.last;
        while out.len() < MAX_BATCH {
            let events = evt_next(&results, (MAX_BATCH - out.len()).min(64))?;
            if events.is_empty() {
                break;
            }
            for event in &events {
                let xml = evt_render_xml(event)?;
                if let Some(id) = winevent::record_id_of(&xml) {
                    last = last.max(id);
                }
                out.push(xml);
            }
        }
        self.last = last;
        Ok(out)
    }

    /// The highest record id returned so far (or the newest at creation).
    pub fn position(&self) -> u64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    //! These run on Windows only (under wine in the cross-build): they check that the OS calls
    //! behave, whatever this machine has installed.

    use super::*;

    #[test]
    fn snapshot_reports_without_panicking() {
        let (products, problems) = snapshot();
        for p in &products {
            assert!(!p.name.is_empty());
            assert!(
                matches!(p.source.as_str(), "wsc" | "defender" | "service"),
                "{p:?}"
            );
        }
        eprintln!("products: {products:#?}\nproblems: {problems:#?}");
    }

    #[test]
    fn nul_in_a_query_is_refused() {
        assert_eq!(wide("a\0b").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(wide("ab").unwrap(), [u16::from(b'a'), u16::from(b'b'), 0]);
        assert!(EventLogReader::new("Application", "*\0").is_err());
    }

    #[test]
    fn unknown_channel_is_an_error() {
        assert!(EventLogReader::new("canhgac-no-such-channel/Operational", "*").is_err());
    }

    /// Writes an Application event after the reader is created and expects to read it back,
    /// exactly once. Skipped (with a message) where the event log API is not available.
    #[test]
    fn reader_returns_new_events_once() {
        use windows_sys::Win32::System::EventLog::{
            DeregisterEventSource, EVENTLOG_INFORMATION_TYPE, RegisterEventSourceW, ReportEventW,
        };

        const SOURCE: &str = "canhgac-test";
        let query = "*[System[Provider[@Name='canhgac-test']]]";
        let mut reader = match EventLogReader::new("Application", query) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("event log API not available here ({e}); test skipped");
                return;
            }
        };
        let before = reader.next_batch().unwrap();
        assert!(
            before.is_empty(),
            "events older than the reader were returned: {before:?}"
        );

        let marker = format!("canhgac reader test {}", std::process::id());
        let source = wide(SOURCE).unwrap();
        let text = wide(&marker).unwrap();
        // SAFETY: NUL-terminated strings that outlive the calls; the handle is checked and
        // released with DeregisterEventSource.
        unsafe {
            let h = RegisterEventSourceW(ptr::null(), source.as_ptr());
            assert!(
                !h.is_null(),
                "RegisterEventSourceW: {}",
                io::Error::last_os_error()
            );
            let strings = [text.as_ptr()];
            let ok = ReportEventW(
                h,
                EVENTLOG_INFORMATION_TYPE,
                0,
                1,
                ptr::null_mut(),
                1,
                0,
                strings.as_ptr(),
                ptr::null(),
            );
            DeregisterEventSource(h);
            assert!(ok != 0, "ReportEventW: {}", io::Error::last_os_error());
        }

        let mut seen = Vec::new();
        for _ in 0..50 {
            seen.extend(reader.next_batch().unwrap());
            if seen.iter().any(|x| x.contains(&marker)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let ours: Vec<&String> = seen.iter().filter(|x| x.contains(&marker)).collect();
        assert_eq!(ours.len(), 1, "{seen:#?}");
        let ev = winevent::parse(ours[0]).unwrap();
        assert_eq!(ev.provider, SOURCE);
        assert_eq!(ev.event_id, 1);
        assert!(ev.unnamed().any(|d| d == marker));
        assert!(reader.next_batch().unwrap().iter().all(|x| !x.contains(&marker)));
    }
}
