//! Windows event XML, as rendered by `EvtRender(EvtRenderEventXml)` or exported by Event
//! Viewer, into a small [`WinEvent`].
//!
//! The parser understands exactly the XML subset the Windows Event Log writes: elements,
//! attributes in single or double quotes, character data, CDATA, comments, processing
//! instructions (the `<?xml …?>` prolog) and the five predefined entities plus numeric character
//! references. Anything else is refused with a clear error: a DTD (`<!DOCTYPE`, so no
//! user-defined entities and no entity expansion bombs), unknown entities, text outside the
//! root element, mismatched or unclosed tags, nesting deeper than [`MAX_DEPTH`], or input
//! larger than [`MAX_XML_BYTES`]. It never panics on any input.
//!
//! What it extracts (namespaces prefixes are ignored, elements are matched on their local
//! name):
//! - `Event/System/Provider/@Name` (falling back to `@EventSourceName`), `EventID`,
//!   `EventRecordID`, `TimeCreated/@SystemTime`, `Computer`, `Channel`;
//! - every `Event/EventData/Data` element in order, as (`@Name`, text), with `""` as the name
//!   of unnamed `Data` (classic events written by `ReportEvent` have no names);
//! - `Event/EventData/Binary` as hex text;
//! - the leaf elements of `Event/UserData/*` (events such as 104 "log cleared"), appended to
//!   `data` as (element name, text) after the `EventData` values.
//!
//! A quick-xml based parser would be the natural replacement if the subset ever grows; this
//! one exists so the agent needs no XML dependency for a fixed, machine-written format.

use std::fmt::Write as _;

/// Largest event XML accepted. Windows caps an event record at 64 KiB of data; rendered XML is
/// a few times larger at most, so 1 MiB leaves room while bounding memory and time.
pub const MAX_XML_BYTES: usize = 1024 * 1024;

/// Deepest element nesting accepted. Real events nest at most 4–5 levels (UserData a little
/// deeper); the limit stops pathological inputs early.
pub const MAX_DEPTH: usize = 32;

/// One Windows event, reduced to what the sensors use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WinEvent {
    /// `System/Provider/@Name`, e.g. `Microsoft-Windows-Windows Defender`, `avp`.
    pub provider: String,
    /// `System/EventID` (the `Qualifiers` attribute of classic events is ignored).
    pub event_id: u32,
    /// `System/EventRecordID`: increases by one per event within a channel.
    pub record_id: Option<u64>,
    /// `System/TimeCreated/@SystemTime` as written by Windows, normally RFC 3339 in UTC with
    /// seven fractional digits (`2023-03-27T14:42:48.3526591Z`).
    pub time_created: Option<String>,
    /// `System/Computer`.
    pub computer: Option<String>,
    /// `System/Channel`, e.g. `Microsoft-Windows-Windows Defender/Operational`.
    pub channel: Option<String>,
    /// `EventData/Data` values in document order as (`Name`, text); unnamed `Data` get `""`.
    /// Leaf elements of `UserData` follow as (element name, text).
    pub data: Vec<(String, String)>,
    /// `EventData/Binary`: hex digits as written (for example, Service Control Manager puts the
    /// service's key name there, UTF-16LE encoded).
    pub binary: Option<String>,
}

impl WinEvent {
    /// The text of the first `Data` element with this `Name` (exact match first, then ASCII
    /// case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.data
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| self.data.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v.as_str())
    }

    /// The texts of unnamed `Data` elements, in order.
    pub fn unnamed(&self) -> impl Iterator<Item = &str> {
        self.data
            .iter()
            .filter(|(n, _)| n.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// `Binary` decoded as UTF-16LE text (how Service Control Manager stores a service's key
    /// name, e.g. `MpsSvc/1`), without trailing NULs. `None` if absent or not valid hex.
    pub fn binary_utf16(&self) -> Option<String> {
        let hex = self.binary.as_deref()?.trim();
        if hex.is_empty() || hex.len() % 4 != 0 || hex.len() > 4096 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        let bytes = bytes?;
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let text = String::from_utf16(&units).ok()?;
        Some(text.trim_end_matches('\0').to_string())
    }
}

/// Finds the `EventRecordID` of an event without a full parse (for example to resume reading a
/// channel after an event that [`parse`] refused). Returns `None` if absent or not a number.
pub fn record_id_of(xml: &str) -> Option<u64> {
    let start = xml.find("<EventRecordID>")? + "<EventRecordID>".len();
    let rest = xml.get(start..)?;
    let end = rest.find('<')?;
    rest.get(..end)?.trim().parse().ok()
}

/// Parses one event's XML. Errors say what is wrong and where (byte offset).
pub fn parse(xml: &str) -> Result<WinEvent, String> {
    if xml.len() > MAX_XML_BYTES {
        return Err(format!(
            "event XML is {} bytes, more than the {} allowed",
            xml.len(),
            MAX_XML_BYTES
        ));
    }
    let mut p = Parser {
        src: xml,
        pos: 0,
        stack: Vec::new(),
        root_done: false,
        out: Collected::default(),
    };
    p.run()?;
    p.out.finish()
}

/// Which element of interest a stack frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    System,
    EventData,
    UserData,
    UserDataWrapper,
    /// A text-bearing element whose text we keep.
    Capture(Field),
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    EventId,
    RecordId,
    Computer,
    Channel,
    Data,
    Binary,
    UserDataLeaf,
}

struct Frame {
    name: String,
    kind: Kind,
    text: String,
    /// `@Name` of a `Data` element.
    data_name: Option<String>,
    has_children: bool,
}

#[derive(Default)]
struct Collected {
    provider: Option<String>,
    event_id: Option<String>,
    record_id: Option<String>,
    time_created: Option<String>,
    computer: Option<String>,
    channel: Option<String>,
    data: Vec<(String, String)>,
    user_data: Vec<(String, String)>,
    binary: Option<String>,
    saw_root: bool,
}

impl Collected {
    fn finish(self) -> Result<WinEvent, String> {
        if !self.saw_root {
            return Err("no <Event> element".into());
        }
        let provider = self
            .provider
            .filter(|p| !p.trim().is_empty())
            .ok_or("missing Event/System/Provider/@Name")?;
        let id_text = self.event_id.ok_or("missing Event/System/EventID")?;
        let event_id = id_text
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("EventID is not a number: {}", quote_short(&id_text)))?;
        let record_id = match self.record_id {
            None => None,
            Some(t) => Some(
                t.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("EventRecordID is not a number: {}", quote_short(&t)))?,
            ),
        };
        let mut data = self.data;
        data.extend(self.user_data);
        Ok(WinEvent {
            provider,
            event_id,
            record_id,
            time_created: self
                .time_created
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            computer: self
                .computer
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            channel: self
                .channel
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            data,
            binary: self
                .binary
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        })
    }
}

/// At most 40 characters of a value, quoted, for error messages.
fn quote_short(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    format!("{out:?}")
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    stack: Vec<Frame>,
    root_done: bool,
    out: Collected,
}

fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn run(&mut self) -> Result<(), String> {
        if self.rest().starts_with('\u{feff}') {
            self.pos += '\u{feff}'.len_utf8();
        }
        while self.pos < self.src.len() {
            let rest = self.rest();
            if rest.starts_with('<') {
                if rest.starts_with("<?") {
                    self.skip_past("?>", "unterminated processing instruction")?;
                } else if rest.starts_with("<!--") {
                    self.skip_past("-->", "unterminated comment")?;
                } else if rest.starts_with("<![CDATA[") {
                    self.cdata()?;
                } else if rest.starts_with("<!") {
                    return Err(self.err("DTD or markup declaration (<!…>) not allowed"));
                } else if rest.starts_with("</") {
                    self.end_tag()?;
                } else {
                    self.start_tag()?;
                }
            } else {
                self.text()?;
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(format!("truncated event XML: <{}> is not closed", open.name));
        }
        Ok(())
    }

    fn skip_past(&mut self, end: &str, what: &str) -> Result<(), String> {
        match self.rest().find(end) {
            Some(i) => {
                self.pos += i + end.len();
                Ok(())
            }
            None => Err(self.err(what)),
        }
    }

    fn cdata(&mut self) -> Result<(), String> {
        let body_start = self.pos + "<![CDATA[".len();
        let body = self.src.get(body_start..).unwrap_or("");
        let Some(end) = body.find("]]>") else {
            return Err(self.err("unterminated CDATA section"));
        };
        let content = &body[..end];
        match self.stack.last_mut() {
            Some(frame) => {
                if matches!(frame.kind, Kind::Capture(_)) {
                    frame.text.push_str(content);
                }
            }
            None => return Err(self.err("CDATA outside the root element")),
        }
        self.pos = body_start + end + "]]>".len();
        Ok(())
    }

    fn text(&mut self) -> Result<(), String> {
        let rest = self.rest();
        let len = rest.find('<').unwrap_or(rest.len());
        let raw = &rest[..len];
        match self.stack.last_mut() {
            None => {
                if !raw.trim().is_empty() {
                    let what = if self.root_done {
                        "text after the root element"
                    } else {
                        "text before the root element"
                    };
                    return Err(self.err(what));
                }
            }
            Some(frame) => {
                if matches!(frame.kind, Kind::Capture(_)) {
                    let start = self.pos;
                    decode_entities(raw, &mut frame.text).map_err(|e| format!("{e} at byte {start}"))?;
                } else if raw.contains('&') {
                    // Still validate entities in text we do not keep, so that malformed input
                    // is reported the same way wherever it is.
                    let mut sink = String::new();
                    let start = self.pos;
                    decode_entities(raw, &mut sink).map_err(|e| format!("{e} at byte {start}"))?;
                }
            }
        }
        self.pos += len;
        Ok(())
    }

    /// Reads a name at the current position and advances past it.
    fn name(&mut self) -> Result<&'a str, String> {
        let rest = self.rest();
        let len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        if len == 0 {
            return Err(self.err("expected a name"));
        }
        let name = &rest[..len];
        if name.len() > 256 {
            return Err(self.err("name longer than 256 bytes"));
        }
        self.pos += len;
        Ok(name)
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let n = rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
        self.pos += n;
    }

    fn end_tag(&mut self) -> Result<(), String> {
        self.pos += 2;
        let name = self.name()?;
        self.skip_ws();
        if !self.rest().starts_with('>') {
            return Err(self.err(&format!("malformed end tag </{name}")));
        }
        self.pos += 1;
        let Some(frame) = self.stack.pop() else {
            return Err(self.err(&format!("end tag </{name}> without a start tag")));
        };
        if frame.name != name {
            return Err(self.err(&format!("end tag </{name}> does not match <{}>", frame.name)));
        }
        if let Some(parent) = self.stack.last_mut() {
            parent.has_children = true;
        }
        self.close(frame);
        if self.stack.is_empty() {
            self.root_done = true;
        }
        Ok(())
    }

    fn start_tag(&mut self) -> Result<(), String> {
        let tag_pos = self.pos;
        self.pos += 1;
        let name = self.name()?;
        if self.root_done {
            return Err(format!("second root element <{name}> at byte {tag_pos}"));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!(
                "elements nested deeper than {MAX_DEPTH} at byte {tag_pos}"
            ));
        }
        let kind = self.kind_of(local_name(name))?;
        let mut frame = Frame {
            name: name.to_string(),
            kind,
            text: String::new(),
            data_name: None,
            has_children: false,
        };
        // Attributes.
        let self_closing = loop {
            let before = self.pos;
            self.skip_ws();
            let rest = self.rest();
            if rest.starts_with("/>") {
                self.pos += 2;
                break true;
            }
            if rest.starts_with('>') {
                self.pos += 1;
                break false;
            }
            if rest.is_empty() {
                return Err(format!("truncated event XML: start tag <{name} is not closed"));
            }
            if self.pos == before {
                return Err(self.err(&format!("expected whitespace between attributes of <{name}>")));
            }
            let attr = self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return Err(self.err(&format!("attribute {attr} of <{name}> has no value")));
            }
            self.pos += 1;
            self.skip_ws();
            let quote = match self.rest().chars().next() {
                Some(q @ ('"' | '\'')) => q,
                Some(_) => return Err(self.err(&format!("attribute {attr} of <{name}> is not quoted"))),
                None => return Err(format!("truncated event XML in attribute {attr} of <{name}>")),
            };
            self.pos += 1;
            let rest = self.rest();
            let Some(end) = rest.find(quote) else {
                return Err(format!(
                    "truncated event XML: attribute {attr} of <{name}> is not closed"
                ));
            };
            let raw = &rest[..end];
            if raw.contains('<') {
                return Err(self.err(&format!("'<' inside attribute {attr} of <{name}>")));
            }
            let mut value = String::new();
            let at = self.pos;
            decode_entities(raw, &mut value).map_err(|e| format!("{e} at byte {at}"))?;
            self.pos += end + 1;
            self.attribute(&mut frame, local_name(attr), value);
        };
        if let Some(parent) = self.stack.last_mut() {
            parent.has_children = true;
        }
        if self_closing {
            self.close(frame);
            if self.stack.is_empty() {
                self.root_done = true;
            }
        } else {
            self.stack.push(frame);
        }
        Ok(())
    }

    /// What an element with this local name is, given where it opens.
    fn kind_of(&mut self, local: &str) -> Result<Kind, String> {
        let parent = self.stack.last().map(|f| f.kind);
        Ok(match parent {
            None => {
                if local != "Event" {
                    return Err(self.err(&format!("root element is <{local}>, expected <Event>")));
                }
                self.out.saw_root = true;
                Kind::Event
            }
            Some(Kind::Event) => match local {
                "System" => Kind::System,
                "EventData" => Kind::EventData,
                "UserData" => Kind::UserData,
                _ => Kind::Other,
            },
            Some(Kind::System) => match local {
                "EventID" => Kind::Capture(Field::EventId),
                "EventRecordID" => Kind::Capture(Field::RecordId),
                "Computer" => Kind::Capture(Field::Computer),
                "Channel" => Kind::Capture(Field::Channel),
                _ => Kind::Other,
            },
            Some(Kind::EventData) => match local {
                "Data" => Kind::Capture(Field::Data),
                "Binary" => Kind::Capture(Field::Binary),
                _ => Kind::Other,
            },
            Some(Kind::UserData) => Kind::UserDataWrapper,
            Some(Kind::UserDataWrapper) => Kind::Capture(Field::UserDataLeaf),
            _ => Kind::Other,
        })
    }

    fn attribute(&mut self, frame: &mut Frame, local_attr: &str, value: String) {
        let parent = self.stack.last().map(|f| f.kind);
        if parent == Some(Kind::System) {
            match (local_name(&frame.name), local_attr) {
                ("Provider", "Name") => {
                    self.out.provider.get_or_insert(value);
                }
                // Kept only if no Name attribute follows (Name wins, see `close`).
                ("Provider", "EventSourceName") if self.out.provider.is_none() && !value.is_empty() => {
                    frame.data_name = Some(value);
                }
                ("TimeCreated", "SystemTime") => {
                    self.out.time_created.get_or_insert(value);
                }
                _ => {}
            }
        } else if frame.kind == Kind::Capture(Field::Data) && local_attr == "Name" {
            frame.data_name = Some(value);
        }
    }

    fn close(&mut self, frame: Frame) {
        match frame.kind {
            Kind::Capture(Field::EventId) => {
                self.out.event_id.get_or_insert(frame.text);
            }
            Kind::Capture(Field::RecordId) => {
                self.out.record_id.get_or_insert(frame.text);
            }
            Kind::Capture(Field::Computer) => {
                self.out.computer.get_or_insert(frame.text);
            }
            Kind::Capture(Field::Channel) => {
                self.out.channel.get_or_insert(frame.text);
            }
            Kind::Capture(Field::Binary) => {
                self.out.binary.get_or_insert(frame.text);
            }
            Kind::Capture(Field::Data) => {
                let text = if frame.text.trim().is_empty() {
                    String::new()
                } else {
                    frame.text
                };
                self.out.data.push((frame.data_name.unwrap_or_default(), text));
            }
            Kind::Capture(Field::UserDataLeaf) if !frame.has_children => {
                let text = if frame.text.trim().is_empty() {
                    String::new()
                } else {
                    frame.text
                };
                self.out
                    .user_data
                    .push((local_name(&frame.name).to_string(), text));
            }
            // <Provider EventSourceName="…"/> without Name.
            Kind::Other if local_name(&frame.name) == "Provider" && self.out.provider.is_none() => {
                self.out.provider = frame.data_name;
            }
            _ => {}
        }
    }
}

/// Appends `raw` to `out`, replacing the predefined entities and character references.
fn decode_entities(raw: &str, out: &mut String) -> Result<(), String> {
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(semi) = after.find(';').filter(|&s| s <= 10) else {
            return Err("'&' not followed by an entity reference".into());
        };
        let ent = &after[..semi];
        match ent {
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "amp" => out.push('&'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            _ => {
                let code = if let Some(hex) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = ent.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    return Err(format!("unknown entity &{ent};"));
                };
                match code.filter(|&c| c != 0).and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => return Err(format!("invalid character reference &{ent};")),
                }
            }
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

/// Escapes text for inclusion in XML (element text or a double-quoted attribute).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// An `EvtQuery` structured query (`<QueryList>`) selecting `xpath` (`*` when empty) in
/// `channel` and, when `after_record` is not zero, suppressing events whose `EventRecordID` is
/// at most `after_record`, so that only newer events are returned. Channel and XPath are
/// escaped; the XPath itself is passed to Windows unchanged.
pub fn structured_query(channel: &str, xpath: &str, after_record: u64) -> String {
    let channel = escape(channel);
    let xpath = if xpath.trim().is_empty() {
        "*".to_string()
    } else {
        escape(xpath.trim())
    };
    let suppress = if after_record == 0 {
        String::new()
    } else {
        format!("<Suppress Path=\"{channel}\">*[System[EventRecordID&lt;={after_record}]]</Suppress>")
    };
    format!(
        "<QueryList><Query Id=\"0\" Path=\"{channel}\"><Select Path=\"{channel}\">{xpath}</Select>{suppress}</Query></QueryList>"
    )
}

/// The event as Elastic's `winlog.*` fields (what Sigma field mappings
/// expect): channel, event id, record id, provider, computer, and every
/// `EventData` value under `event_data.<Name without spaces>`.
pub fn winlog_fields(ev: &WinEvent) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    for (name, value) in &ev.data {
        let key: String = name.chars().filter(|c| !c.is_whitespace()).collect();
        if !key.is_empty() && !data.contains_key(&key) {
            data.insert(key, serde_json::Value::String(value.clone()));
        }
    }
    let mut w = serde_json::json!({
        "event_id": ev.event_id,
        "provider_name": ev.provider,
        "event_data": data,
    });
    if let Some(c) = &ev.channel {
        w["channel"] = c.clone().into();
    }
    if let Some(r) = ev.record_id {
        w["record_id"] = r.into();
    }
    if let Some(c) = &ev.computer {
        w["computer_name"] = c.clone().into();
    }
    w
}

#[cfg(test)]
pub(crate) mod samples {
    //! Real event XML used by the tests of several modules.

    /// Defender 1116, rendered by EvtRender (single-quoted attributes), from the Detonator
    /// project's EDR documentation (dobin/DetonatorAgent, "Implement new EDR",
    /// DESKTOP-6ENUR41, 2025-07-04). The published copy is indented and stops before
    /// `</Event>`; the closing tag is restored here.
    pub const DEFENDER_1116: &str = r#"<Event
	xmlns='http://schemas.microsoft.com/win/2004/08/events/event'>
	<System>
		<Provider Name='Microsoft-Windows-Windows Defender' Guid='{11cd958a-c507-4ef3-b3f2-5fd9dfbd2c78}'/>
		<EventID>1116</EventID>
		<Version>0</Version>
		<Level>3</Level>
		<Task>0</Task>
		<Opcode>0</Opcode>
		<Keywords>0x8000000000000000</Keywords>
		<TimeCreated SystemTime='2025-07-04T14:55:39.8297448Z'/>
		<EventRecordID>39008</EventRecordID>
		<Correlation/>
		<Execution ProcessID='3196' ThreadID='8072'/>
		<Channel>Microsoft-Windows-Windows Defender/Operational</Channel>
		<Computer>DESKTOP-6ENUR41</Computer>
		<Security UserID='S-1-5-18'/>
	</System>
	<EventData>
		<Data Name='Product Name'>Microsoft Defender Antivirus</Data>
		<Data Name='Product Version'>4.18.25050.5</Data>
		<Data Name='Detection ID'>{3DC200B4-DC42-44EC-8B0C-8F88840A56A2}</Data>
		<Data Name='Detection Time'>2025-07-04T14:55:39.823Z</Data>
		<Data Name='Unused'></Data>
		<Data Name='Unused2'></Data>
		<Data Name='Threat ID'>2147728104</Data>
		<Data Name='Threat Name'>Behavior:Win32/Meterpreter.gen!D</Data>
		<Data Name='Severity ID'>5</Data>
		<Data Name='Severity Name'>Severe</Data>
		<Data Name='Category ID'>46</Data>
		<Data Name='Category Name'>Suspicious Behaviour</Data>
		<Data Name='FWLink'>https://go.microsoft.com/fwlink/?linkid=37020&amp;name=Behavior:Win32/Meterpreter.gen!D&amp;threatid=2147728104&amp;enterprise=0</Data>
		<Data Name='Status Code'>1</Data>
		<Data Name='Status Description'></Data>
		<Data Name='State'>1</Data>
		<Data Name='Source ID'>2</Data>
		<Data Name='Source Name'>System</Data>
		<Data Name='Process Name'>Unknown</Data>
		<Data Name='Detection User'>NT AUTHORITY\SYSTEM</Data>
		<Data Name='Unused3'></Data>
		<Data Name='Path'>behavior:_process: C:\NotWhitelisted\ShellcodeGuard-shc.exe, pid:11820:56844127554067; file:_C:\NotWhitelisted\ShellcodeGuard-shc.exe</Data>
		<Data Name='Origin ID'>1</Data>
		<Data Name='Origin Name'>Local machine</Data>
		<Data Name='Execution ID'>0</Data>
		<Data Name='Execution Name'>Unknown</Data>
		<Data Name='Type ID'>2</Data>
		<Data Name='Type Name'>Generic</Data>
		<Data Name='Pre Execution Status'>0</Data>
		<Data Name='Action ID'>9</Data>
		<Data Name='Action Name'>Not Applicable</Data>
		<Data Name='Unused4'></Data>
		<Data Name='Error Code'>0x00000000</Data>
		<Data Name='Error Description'>The operation completed successfully. </Data>
		<Data Name='Unused5'></Data>
		<Data Name='Post Clean Status'>0</Data>
		<Data Name='Additional Actions ID'>0</Data>
		<Data Name='Additional Actions String'>No additional actions required</Data>
		<Data Name='Remediation User'></Data>
		<Data Name='Unused6'></Data>
		<Data Name='Security intelligence Version'>AV: 1.431.401.0, AS: 1.431.401.0, NIS: 1.431.401.0</Data>
		<Data Name='Engine Version'>AM: 1.1.25050.6, NIS: 1.1.25050.6</Data>
	</EventData>
</Event>"#;

    /// Defender 1117 (action taken: quarantine) from the HTB Sherlock "Logjammer" write-up
    /// (DESKTOP-887GK2L, 2023-03-27), as exported by Event Viewer. The signed download URL
    /// inside `Path` is shortened (some query parameters removed); nothing else is changed.
    pub const DEFENDER_1117: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="Microsoft-Windows-Windows Defender" Guid="{11cd958a-c507-4ef3-b3f2-5fd9dfbd2c78}" />
    <EventID>1117</EventID>
    <Version>0</Version>
    <Level>4</Level>
    <Task>0</Task>
    <Opcode>0</Opcode>
    <Keywords>0x8000000000000000</Keywords>
    <TimeCreated SystemTime="2023-03-27T14:42:48.3526591Z" />
    <EventRecordID>443</EventRecordID>
    <Correlation />
    <Execution ProcessID="3300" ThreadID="3056" />
    <Channel>Microsoft-Windows-Windows Defender/Operational</Channel>
    <Computer>DESKTOP-887GK2L</Computer>
    <Security UserID="S-1-5-18" />
  </System>
  <EventData>
    <Data Name="Product Name">Microsoft Defender Antivirus</Data>
    <Data Name="Product Version">4.18.2302.7</Data>
    <Data Name="Detection ID">{0EBC4BEA-5532-4EFB-8A34-64F91CC8702E}</Data>
    <Data Name="Detection Time">2023-03-27T14:42:34.272Z</Data>
    <Data Name="Unused">
    </Data>
    <Data Name="Unused2">
    </Data>
    <Data Name="Threat ID">2147814944</Data>
    <Data Name="Threat Name">HackTool:MSIL/SharpHound!MSR</Data>
    <Data Name="Severity ID">4</Data>
    <Data Name="Severity Name">High</Data>
    <Data Name="Category ID">34</Data>
    <Data Name="Category Name">Tool</Data>
    <Data Name="FWLink">https://go.microsoft.com/fwlink/?linkid=37020&amp;name=HackTool:MSIL/SharpHound!MSR&amp;threatid=2147814944&amp;enterprise=0</Data>
    <Data Name="Status Code">103</Data>
    <Data Name="Status Description">
    </Data>
    <Data Name="State">2</Data>
    <Data Name="Source ID">4</Data>
    <Data Name="Source Name">Downloads and attachments</Data>
    <Data Name="Process Name">Unknown</Data>
    <Data Name="Detection User">DESKTOP-887GK2L\CyberJunkie</Data>
    <Data Name="Unused3">
    </Data>
    <Data Name="Path">containerfile:_C:\Users\CyberJunkie\Downloads\SharpHound-v1.1.0.zip; file:_C:\Users\CyberJunkie\Downloads\SharpHound-v1.1.0.zip-&gt;SharpHound.exe; webfile:_C:\Users\CyberJunkie\Downloads\SharpHound-v1.1.0.zip|https://objects.githubusercontent.com/github-production-release-asset-2e65be/385323486/70d776cc-8f83-44d5-b226-2dccc4f7c1e3?X-Amz-Algorithm=AWS4-HMAC-SHA256&amp;X-Amz-Date=20230327T144228Z&amp;response-content-type=application%2Foctet-stream|pid:3532,ProcessStart:133244017530289775</Data>
    <Data Name="Origin ID">4</Data>
    <Data Name="Origin Name">Internet</Data>
    <Data Name="Execution ID">0</Data>
    <Data Name="Execution Name">Unknown</Data>
    <Data Name="Type ID">0</Data>
    <Data Name="Type Name">Concrete</Data>
    <Data Name="Pre Execution Status">0</Data>
    <Data Name="Action ID">2</Data>
    <Data Name="Action Name">Quarantine</Data>
    <Data Name="Unused4">
    </Data>
    <Data Name="Error Code">0x80508023</Data>
    <Data Name="Error Description">The program could not find the malware and other potentially unwanted software on this device. </Data>
    <Data Name="Unused5">
    </Data>
    <Data Name="Post Clean Status">0</Data>
    <Data Name="Additional Actions ID">0</Data>
    <Data Name="Additional Actions String">No additional actions required</Data>
    <Data Name="Remediation User">NT AUTHORITY\SYSTEM</Data>
    <Data Name="Unused6">
    </Data>
    <Data Name="Security intelligence Version">AV: 1.385.1261.0, AS: 1.385.1261.0, NIS: 1.385.1261.0</Data>
    <Data Name="Engine Version">AM: 1.1.20100.6, NIS: 1.1.20100.6</Data>
  </EventData>
</Event>"#;

    /// System Center Endpoint Protection ("Microsoft Antimalware") 1116 with unnamed `Data`,
    /// a prolog, `Qualifiers` and `RenderingInfo`; from a public PowerShell test script
    /// (CO1-JUMP-MGR1, 2015-07-02), trimmed of RenderingInfo's long message text.
    pub const ANTIMALWARE_1116_CLASSIC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event" xml:lang="en-US">
  <System>
    <Provider Name="Microsoft Antimalware" />
    <EventID Qualifiers="0">1116</EventID>
    <Level>3</Level>
    <Task>0</Task>
    <Keywords>0x80000000000000</Keywords>
    <TimeCreated SystemTime="2015-07-02T19:42:44.000000000Z" />
    <EventRecordID>662111</EventRecordID>
    <Channel>System</Channel>
    <Computer>CO1-JUMP-MGR1.JUMP.local</Computer>
    <Security />
  </System>
  <EventData>
    <Data>%%860</Data>
    <Data>4.7.0209.0</Data>
    <Data>{EDDB363B-F881-4D14-B31B-CCAB566AD9C9}</Data>
    <Data>2015-07-02T19:42:40.881Z</Data>
    <Data />
    <Data />
    <Data>2147519003</Data>
    <Data>Virus:DOS/EICAR_Test_File</Data>
    <Data>5</Data>
    <Data>Severe</Data>
    <Data>42</Data>
    <Data>Virus</Data>
    <Data>http://go.microsoft.com/fwlink/?linkid=37020&amp;name=Virus:DOS/EICAR_Test_File&amp;threatid=2147519003</Data>
    <Data>1</Data>
    <Data />
    <Data>1</Data>
    <Data>3</Data>
    <Data>%%818</Data>
    <Data>C:\Windows\System32\notepad.exe</Data>
    <Data>JUMP\Jayowens</Data>
    <Data />
    <Data>file:_C:\Users\jayowens\Documents\eicar.txt</Data>
  </EventData>
  <RenderingInfo Culture="en-US">
    <Message>Microsoft Antimalware has detected malware or other potentially unwanted software.</Message>
    <Level>Warning</Level>
    <Task />
    <Opcode>Info</Opcode>
    <Channel />
    <Provider />
    <Keywords>
      <Keyword>Classic</Keyword>
    </Keywords>
  </RenderingInfo>
</Event>
"#;

    /// Windows Firewall 2004 (rule added) from the HTB Sherlock "Logjammer" write-up
    /// (DESKTOP-887GK2L, 2023-03-27).
    pub const FIREWALL_2004: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="Microsoft-Windows-Windows Firewall With Advanced Security" Guid="{d1bc9aff-2abf-4d71-9146-ecb2a986eb85}" />
    <EventID>2004</EventID>
    <Version>0</Version>
    <Level>4</Level>
    <Task>0</Task>
    <Opcode>0</Opcode>
    <Keywords>0x8000020000000000</Keywords>
    <TimeCreated SystemTime="2023-03-27T14:44:43.4157021Z" />
    <EventRecordID>1120</EventRecordID>
    <Correlation />
    <Execution ProcessID="2384" ThreadID="2868" />
    <Channel>Microsoft-Windows-Windows Firewall With Advanced Security/Firewall</Channel>
    <Computer>DESKTOP-887GK2L</Computer>
    <Security UserID="S-1-5-19" />
  </System>
  <EventData>
    <Data Name="RuleId">{11309293-FB68-4969-93F9-7F75A9032570}</Data>
    <Data Name="RuleName">Metasploit C2 Bypass</Data>
    <Data Name="Origin">1</Data>
    <Data Name="ApplicationPath">
    </Data>
    <Data Name="ServiceName">
    </Data>
    <Data Name="Direction">2</Data>
    <Data Name="Protocol">6</Data>
    <Data Name="LocalPorts">*</Data>
    <Data Name="RemotePorts">4444</Data>
    <Data Name="Action">3</Data>
    <Data Name="Profiles">2147483647</Data>
    <Data Name="LocalAddresses">*</Data>
    <Data Name="RemoteAddresses">*</Data>
    <Data Name="RemoteMachineAuthorizationList">
    </Data>
    <Data Name="RemoteUserAuthorizationList">
    </Data>
    <Data Name="EmbeddedContext">
    </Data>
    <Data Name="Flags">1</Data>
    <Data Name="Active">1</Data>
    <Data Name="EdgeTraversal">0</Data>
    <Data Name="LooseSourceMapped">0</Data>
    <Data Name="SecurityOptions">0</Data>
    <Data Name="ModifyingUser">S-1-5-21-3393683511-3463148672-371912004-1001</Data>
    <Data Name="ModifyingApplication">C:\Windows\System32\mmc.exe</Data>
    <Data Name="SchemaVersion">542</Data>
    <Data Name="RuleStatus">65536</Data>
    <Data Name="LocalOnlyMapped">0</Data>
  </EventData>
</Event>"#;

    /// Event log cleared (104, UserData) from the same write-up.
    pub const LOG_CLEARED_104: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="Microsoft-Windows-Eventlog" Guid="{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}" />
    <EventID>104</EventID>
    <Version>0</Version>
    <Level>4</Level>
    <Task>104</Task>
    <Opcode>0</Opcode>
    <Keywords>0x8000000000000000</Keywords>
    <TimeCreated SystemTime="2023-03-27T15:01:56.5158362Z" />
    <EventRecordID>2186</EventRecordID>
    <Correlation />
    <Execution ProcessID="1332" ThreadID="5332" />
    <Channel>System</Channel>
    <Computer>DESKTOP-887GK2L</Computer>
    <Security UserID="S-1-5-21-3393683511-3463148672-371912004-1001" />
  </System>
  <UserData>
    <LogFileCleared xmlns="http://manifests.microsoft.com/win/2004/08/windows/eventlog">
      <SubjectUserName>CyberJunkie</SubjectUserName>
      <SubjectDomainName>DESKTOP-887GK2L</SubjectDomainName>
      <Channel>Microsoft-Windows-Windows Firewall With Advanced Security/Firewall</Channel>
      <BackupPath>
      </BackupPath>
    </LogFileCleared>
  </UserData>
</Event>"#;
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;

    #[test]
    fn winlog_fields_follow_elastic_names() {
        let ev = parse(samples::DEFENDER_1116).unwrap();
        let w = winlog_fields(&ev);
        assert_eq!(w["event_id"], 1116);
        assert_eq!(w["channel"], "Microsoft-Windows-Windows Defender/Operational");
        assert!(
            w["event_data"]["ThreatName"].is_string(),
            "spaces removed from data names: {w}"
        );
    }

    #[test]
    fn defender_1116_rendered_by_evtrender() {
        let ev = parse(DEFENDER_1116).unwrap();
        assert_eq!(ev.provider, "Microsoft-Windows-Windows Defender");
        assert_eq!(ev.event_id, 1116);
        assert_eq!(ev.record_id, Some(39008));
        assert_eq!(ev.time_created.as_deref(), Some("2025-07-04T14:55:39.8297448Z"));
        assert_eq!(ev.computer.as_deref(), Some("DESKTOP-6ENUR41"));
        assert_eq!(
            ev.channel.as_deref(),
            Some("Microsoft-Windows-Windows Defender/Operational")
        );
        assert_eq!(ev.data.len(), 42);
        assert_eq!(
            ev.data[0],
            ("Product Name".into(), "Microsoft Defender Antivirus".into())
        );
        assert_eq!(ev.get("Threat Name"), Some("Behavior:Win32/Meterpreter.gen!D"));
        assert_eq!(ev.get("threat name"), Some("Behavior:Win32/Meterpreter.gen!D"));
        assert_eq!(ev.get("Unused"), Some(""));
        assert_eq!(ev.get("Detection User"), Some(r"NT AUTHORITY\SYSTEM"));
        assert_eq!(
            ev.get("FWLink"),
            Some(
                "https://go.microsoft.com/fwlink/?linkid=37020&name=Behavior:Win32/Meterpreter.gen!D&threatid=2147728104&enterprise=0"
            )
        );
        // Trailing space of a real value is kept.
        assert_eq!(
            ev.get("Error Description"),
            Some("The operation completed successfully. ")
        );
        assert_eq!(ev.get("No Such Field"), None);
        assert_eq!(ev.binary, None);
    }

    #[test]
    fn defender_1117_exported_by_event_viewer() {
        let ev = parse(DEFENDER_1117).unwrap();
        assert_eq!(ev.event_id, 1117);
        assert_eq!(ev.record_id, Some(443));
        // Pretty-printed empty values become "".
        assert_eq!(ev.get("Unused"), Some(""));
        assert!(
            ev.get("Path")
                .unwrap()
                .contains("SharpHound-v1.1.0.zip->SharpHound.exe")
        );
        assert_eq!(ev.get("Action Name"), Some("Quarantine"));
    }

    #[test]
    fn classic_event_with_unnamed_data_prolog_and_rendering_info() {
        let ev = parse(ANTIMALWARE_1116_CLASSIC).unwrap();
        assert_eq!(ev.provider, "Microsoft Antimalware");
        assert_eq!(ev.event_id, 1116);
        assert_eq!(ev.record_id, Some(662111));
        assert_eq!(ev.channel.as_deref(), Some("System"));
        let unnamed: Vec<&str> = ev.unnamed().collect();
        assert_eq!(unnamed.len(), 22);
        assert_eq!(unnamed[4], "");
        assert_eq!(unnamed[7], "Virus:DOS/EICAR_Test_File");
        assert_eq!(unnamed[21], r"file:_C:\Users\jayowens\Documents\eicar.txt");
        // RenderingInfo's Channel/Provider do not override System's.
        assert_eq!(ev.computer.as_deref(), Some("CO1-JUMP-MGR1.JUMP.local"));
    }

    #[test]
    fn firewall_2004() {
        let ev = parse(FIREWALL_2004).unwrap();
        assert_eq!(
            ev.provider,
            "Microsoft-Windows-Windows Firewall With Advanced Security"
        );
        assert_eq!(ev.event_id, 2004);
        assert_eq!(ev.record_id, Some(1120));
        assert_eq!(ev.get("RuleName"), Some("Metasploit C2 Bypass"));
        assert_eq!(ev.get("ApplicationPath"), Some(""));
        assert_eq!(ev.get("RemotePorts"), Some("4444"));
    }

    #[test]
    fn user_data_leaves_are_flattened() {
        let ev = parse(LOG_CLEARED_104).unwrap();
        assert_eq!(ev.event_id, 104);
        assert_eq!(ev.channel.as_deref(), Some("System"));
        assert_eq!(ev.get("SubjectUserName"), Some("CyberJunkie"));
        assert_eq!(
            ev.get("Channel"),
            Some("Microsoft-Windows-Windows Firewall With Advanced Security/Firewall")
        );
        assert_eq!(ev.get("BackupPath"), Some(""));
    }

    /// Service Control Manager 7036 from plaso's test data (WKS-WIN764BITB, 2012-03-14).
    #[test]
    fn binary_is_kept_and_decodes_as_utf16() {
        let xml = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
  <System>
    <Provider Name="Service Control Manager" Guid="{555908d1-a6d7-4695-8e1e-26931d2012f4}" EventSourceName="Service Control Manager"/>
    <EventID Qualifiers="16384">7036</EventID>
    <TimeCreated SystemTime="2012-03-14T04:17:38.276340200Z"/>
    <EventRecordID>12050</EventRecordID>
    <Channel>System</Channel>
    <Computer>WKS-WIN764BITB.shieldbase.local</Computer>
    <Security/>
  </System>
  <EventData>
    <Data Name="param1">Windows Modules Installer</Data>
    <Data Name="param2">stopped</Data>
    <Binary>540072007500730074006500640049006E007300740061006C006C00650072002F0031000000</Binary>
  </EventData>
</Event>"#;
        let ev = parse(xml).unwrap();
        assert_eq!(ev.provider, "Service Control Manager");
        assert_eq!(ev.get("param2"), Some("stopped"));
        assert_eq!(ev.binary_utf16().as_deref(), Some("TrustedInstaller/1"));
    }

    #[test]
    fn record_id_without_full_parse() {
        assert_eq!(record_id_of(DEFENDER_1116), Some(39008));
        assert_eq!(record_id_of("<EventRecordID> 7 </EventRecordID>"), Some(7));
        assert_eq!(record_id_of("<EventRecordID>x</EventRecordID>"), None);
        assert_eq!(record_id_of("<EventRecordID>12"), None);
        assert_eq!(record_id_of(""), None);
    }

    #[test]
    fn entities_are_decoded() {
        let xml = "<Event><System><Provider Name='a&amp;b &quot;c&quot; &apos;d&apos;'/><EventID>1</EventID>\
                   </System><EventData><Data Name='x'>&lt;&gt;&amp;&#65;&#x42;&#x1F600;<![CDATA[<raw&>]]></Data>\
                   </EventData></Event>";
        let ev = parse(xml).unwrap();
        assert_eq!(ev.provider, "a&b \"c\" 'd'");
        assert_eq!(ev.get("x"), Some("<>&AB😀<raw&>"));
    }

    #[test]
    fn structured_queries() {
        assert_eq!(
            structured_query("Microsoft-Windows-Windows Defender/Operational", "", 0),
            "<QueryList><Query Id=\"0\" Path=\"Microsoft-Windows-Windows Defender/Operational\">\
             <Select Path=\"Microsoft-Windows-Windows Defender/Operational\">*</Select></Query></QueryList>"
        );
        let q = structured_query(
            "Application",
            "*[System[Provider[@Name='avp'] and (EventID<400)]]",
            42,
        );
        assert_eq!(
            q,
            "<QueryList><Query Id=\"0\" Path=\"Application\"><Select Path=\"Application\">\
             *[System[Provider[@Name=&apos;avp&apos;] and (EventID&lt;400)]]</Select>\
             <Suppress Path=\"Application\">*[System[EventRecordID&lt;=42]]</Suppress></Query></QueryList>"
        );
        // A hostile channel name cannot break out of the attribute.
        let q = structured_query("a\"><Select Path=\"Security", "*", 1);
        assert!(
            q.contains("Path=\"a&quot;&gt;&lt;Select Path=&quot;Security\""),
            "{q}"
        );
    }

    #[test]
    fn escape_round_trips() {
        let raw = "a<b>&\"c\" 'd'\u{1}";
        let xml = format!(
            "<Event><System><Provider Name=\"{}\"/><EventID>1</EventID></System></Event>",
            escape(raw)
        );
        assert_eq!(parse(&xml).unwrap().provider, raw);
    }

    fn err(xml: &str) -> String {
        parse(xml).expect_err(xml)
    }

    #[test]
    fn clear_errors() {
        assert!(err("").contains("no <Event>"));
        assert!(err("   \n").contains("no <Event>"));
        assert!(err("hello").contains("text before the root"));
        assert!(err("<Foo/>").contains("expected <Event>"));
        assert!(err("<Event></Event>").contains("Provider"));
        assert!(err("<Event><System><Provider Name='p'/></System></Event>").contains("EventID"));
        let e = err("<Event><System><Provider Name='p'/><EventID>12a</EventID></System></Event>");
        assert!(e.contains("EventID is not a number") && e.contains("12a"), "{e}");
        assert!(
            err("<Event><System><Provider Name='p'/><EventID>-1</EventID></System></Event>")
                .contains("not a number")
        );
        assert!(
            err("<Event><System><Provider Name='p'/><EventID>99999999999</EventID></System></Event>")
                .contains("not a number")
        );
        assert!(err("<Event><System><Provider Name='p'/><EventID>1</EventID><EventRecordID>x</EventRecordID></System></Event>")
            .contains("EventRecordID"));
        assert!(err("<Event><System></Event>").contains("does not match"));
        assert!(err("<Event></System></Event>").contains("does not match"));
        assert!(err("<Event/><Event/>").contains("second root"));
        assert!(err("<Event/>junk").contains("after the root"));
        assert!(err("<Event a=b/>").contains("not quoted"));
        assert!(err("<Event a/>").contains("no value"));
        assert!(err("<Event a='<'/>").contains("'<' inside"));
        assert!(err("<Event a='1'b='2'/>").contains("whitespace"));
        assert!(err("<Event><System><Provider Name='&foo;'/></System></Event>").contains("unknown entity"));
        assert!(err("<Event>& </Event>").contains("entity reference"));
        assert!(err("<Event>&#0;</Event>").contains("invalid character reference"));
        assert!(err("<Event>&#xD800;</Event>").contains("invalid character reference"));
        assert!(err("<Event>&#x110000;</Event>").contains("invalid character reference"));
        assert!(err("<Event>&#xZZ;</Event>").contains("invalid character reference"));
        assert!(err("<Event><!-- unterminated").contains("comment"));
        assert!(err("<Event><![CDATA[ x").contains("CDATA"));
        assert!(err("<?xml version='1.0'").contains("processing instruction"));
        assert!(err("< Event/>").contains("expected a name"));
    }

    #[test]
    fn entity_bombs_and_dtds_are_refused() {
        let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Event><System><Provider Name="&lol2;"/><EventID>1</EventID></System></Event>"#;
        assert!(err(billion_laughs).contains("DTD"));
        let external = r#"<!DOCTYPE Event SYSTEM "http://evil.example.invalid/event.dtd"><Event/>"#;
        assert!(err(external).contains("DTD"));
        // An entity reference without a DTD is simply unknown.
        assert!(err("<Event><EventData><Data>&lol9;</Data></EventData></Event>").contains("unknown entity"));
    }

    #[test]
    fn huge_input_is_refused_without_parsing() {
        let mut xml =
            String::from("<Event><System><Provider Name='p'/><EventID>1</EventID></System><EventData><Data>");
        xml.push_str(&"A".repeat(MAX_XML_BYTES));
        xml.push_str("</Data></EventData></Event>");
        assert!(err(&xml).contains("allowed"));
        // Just under the limit is fine.
        let mut ok =
            String::from("<Event><System><Provider Name='p'/><EventID>1</EventID></System><EventData><Data>");
        let tail = "</Data></EventData></Event>";
        ok.push_str(&"A".repeat(MAX_XML_BYTES - ok.len() - tail.len()));
        ok.push_str(tail);
        assert_eq!(ok.len(), MAX_XML_BYTES);
        let overhead = ok.find("AAAA").unwrap() + tail.len();
        assert_eq!(parse(&ok).unwrap().data[0].1.len(), MAX_XML_BYTES - overhead);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let depth = 100_000;
        let xml = format!("<Event>{}{}</Event>", "<a>".repeat(depth), "</a>".repeat(depth));
        assert!(err(&xml).contains("nested deeper"));
        let open_only = format!("<Event>{}", "<a>".repeat(depth));
        assert!(err(&open_only).contains("nested deeper"));
    }

    #[test]
    fn every_truncation_of_a_real_event_is_an_error() {
        for sample in [
            DEFENDER_1116,
            FIREWALL_2004,
            LOG_CLEARED_104,
            ANTIMALWARE_1116_CLASSIC,
        ] {
            let full = parse(sample).unwrap();
            let mut ends: Vec<usize> = (0..sample.len())
                .filter(|&i| sample.is_char_boundary(i))
                .collect();
            // The end of the last tag is where the document becomes complete; everything before
            // must fail, except cuts that only drop trailing whitespace.
            let complete = sample.trim_end().len();
            ends.retain(|&i| i < complete);
            for end in ends {
                let cut = &sample[..end];
                assert!(parse(cut).is_err(), "prefix of {} bytes parsed", end);
            }
            assert_eq!(parse(sample.trim_end()).unwrap(), full);
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic generator over the characters that matter to the parser.
        let alphabet: Vec<char> = "<>/=&;#x'\"?!-[]CDATAEventSystemDataNameProviderID 01\n\u{feff}é😀"
            .chars()
            .collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 80) as usize;
            let mut s = String::new();
            let mut x = seed;
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            let _ = parse(&s);
            let _ = parse(&format!("<Event>{s}</Event>"));
            let _ = parse(&format!(
                "<Event><System><Provider Name='p'/><EventID>1</EventID></System><EventData><Data Name='{s}'>{s}</Data></EventData></Event>"
            ));
        }
    }

    #[test]
    fn nul_and_control_characters_in_text_are_kept_not_fatal() {
        let xml = "<Event><System><Provider Name='p'/><EventID>1</EventID></System><EventData><Data>a\u{0}b</Data></EventData></Event>";
        assert_eq!(parse(xml).unwrap().data[0].1, "a\u{0}b");
    }

    #[test]
    fn event_viewer_copy_artifacts_are_tolerated() {
        // Event Viewer's "Copy details" puts "- " before expandable nodes.
        let xml = "- \n<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\">\n-   <System>\n\t\t<Provider Name=\"p\" />\n\t\t<EventID>2006</EventID>\n\t</System>\n</Event>";
        // Text before the root is not whitespace: refused, clearly.
        assert!(err(xml).contains("before the root"));
        let inner = xml.trim_start_matches("- \n");
        assert_eq!(parse(inner).unwrap().event_id, 2006);
    }

    #[test]
    fn provider_event_source_name_fallback() {
        let xml = "<Event><System><Provider EventSourceName='Legacy'/><EventID>5</EventID></System></Event>";
        assert_eq!(parse(xml).unwrap().provider, "Legacy");
        let both = "<Event><System><Provider EventSourceName='Legacy' Name='Modern'/><EventID>5</EventID></System></Event>";
        assert_eq!(parse(both).unwrap().provider, "Modern");
    }

    #[test]
    fn binary_utf16_rejects_bad_hex() {
        let mut ev = WinEvent {
            binary: Some("4D00ZZ".into()),
            ..Default::default()
        };
        assert_eq!(ev.binary_utf16(), None);
        ev.binary = Some("4D0".into());
        assert_eq!(ev.binary_utf16(), None);
        ev.binary = Some("4D007000".into());
        assert_eq!(ev.binary_utf16().as_deref(), Some("Mp"));
    }
}
