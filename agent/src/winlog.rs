//! Windows event channels the agent follows: antivirus detections (Defender
//! 1116/1117, Kaspersky) and firewall changes (the firewall's own channel,
//! and the Service Control Manager for the firewall service). Reading uses
//! [`crate::av::windows::EventLogReader`]; decoding is the pure, tested
//! [`crate::winevent`], [`crate::av::defender`] and
//! [`crate::firewall::winevents`] code.

use crate::av::defender;
use crate::av::model::Detection;
use crate::av::windows::EventLogReader;
use crate::firewall::winevents::{self, FwChange};
use crate::winevent;

/// A channel, opened when it exists; retried later when it does not (yet).
struct Followed {
    channel: &'static str,
    query: &'static str,
    reader: Option<EventLogReader>,
    last_error: Option<String>,
}

impl Followed {
    fn new(channel: &'static str, query: &'static str) -> Self {
        Followed {
            channel,
            query,
            reader: None,
            last_error: None,
        }
    }

    /// New events, parsed; unparsable ones are counted in the second value.
    fn read(&mut self) -> (Vec<winevent::WinEvent>, u64) {
        if self.reader.is_none() {
            match EventLogReader::new(self.channel, self.query) {
                Ok(r) => {
                    self.reader = Some(r);
                    self.last_error = None;
                }
                Err(e) => {
                    self.last_error = Some(format!("{}: {e}", self.channel));
                    return (vec![], 0);
                }
            }
        }
        let Some(r) = self.reader.as_mut() else {
            return (vec![], 0);
        };
        match r.next_batch() {
            Ok(xmls) => {
                let mut bad = 0;
                let evs = xmls
                    .iter()
                    .filter_map(|x| match winevent::parse(x) {
                        Ok(e) => Some(e),
                        Err(_) => {
                            bad += 1;
                            None
                        }
                    })
                    .collect();
                (evs, bad)
            }
            Err(e) => {
                self.last_error = Some(format!("{}: {e}", self.channel));
                self.reader = None;
                (vec![], 0)
            }
        }
    }
}

/// Detection channels: Defender's operational log and Kaspersky's own log.
pub struct DetectionLogs(Vec<Followed>);

impl Default for DetectionLogs {
    fn default() -> Self {
        DetectionLogs(vec![
            Followed::new(
                "Microsoft-Windows-Windows Defender/Operational",
                "*[System[(EventID=1116 or EventID=1117)]]",
            ),
            Followed::new("Kaspersky Event Log", "*"),
            // Kaspersky Endpoint Security writes its own channel.
            Followed::new("Kaspersky Endpoint Security", "*"),
        ])
    }
}

impl DetectionLogs {
    /// Detections since the last call, and problems reading the channels
    /// (a product that is not installed has no channel: that is not a problem
    /// if another channel works).
    pub fn read(&mut self) -> (Vec<(Detection, serde_json::Value)>, Vec<String>) {
        let mut out = Vec::new();
        for f in &mut self.0 {
            let (evs, _) = f.read();
            out.extend(evs.iter().filter_map(|e| {
                defender::detection_from_event(e)
                    .or_else(|| defender::kaspersky_detection_from_event(e))
                    .map(|d| (d, winevent::winlog_fields(e)))
            }));
        }
        let problems = if self.0.iter().any(|f| f.reader.is_some()) {
            vec![]
        } else {
            self.0.iter().filter_map(|f| f.last_error.clone()).collect()
        };
        (out, problems)
    }
}

/// Firewall change channels.
pub struct FirewallLogs(Vec<Followed>);

impl Default for FirewallLogs {
    fn default() -> Self {
        FirewallLogs(vec![
            Followed::new(
                "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",
                "*",
            ),
            Followed::new(
                "System",
                "*[System[Provider[@Name='Service Control Manager'] and (EventID=7034 or EventID=7036 or EventID=7040)]]",
            ),
        ])
    }
}

impl FirewallLogs {
    /// Firewall changes since the last call, with the malformed count and problems.
    pub fn read(&mut self) -> (Vec<(FwChange, serde_json::Value)>, u64, Vec<String>) {
        let mut out = Vec::new();
        let mut bad = 0;
        for f in &mut self.0 {
            let (evs, b) = f.read();
            bad += b;
            out.extend(
                evs.iter()
                    .filter_map(|e| winevents::classify(e).map(|c| (c, winevent::winlog_fields(e)))),
            );
        }
        let problems = self.0.iter().filter_map(|f| f.last_error.clone()).collect();
        (out, bad, problems)
    }
}
