//! An event serialized once: its JSON for the event log and its SSE frame
//! for live readers share one encoding.

use bytes::Bytes;

use crate::api::ResponseStreamEvent;

/// An event serialized once: its JSON for the event log, and its SSE frame.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// `sequence_number`.
    pub seq: i64,
    /// The whole SSE frame (`event: …\ndata: …\n\n`); the JSON is a slice
    /// of it, so each event is held once.
    pub frame: Bytes,
    /// Where the JSON starts and ends in `frame`.
    json: (usize, usize),
    /// Whether this event ends the stream.
    pub terminal: bool,
}

impl Encoded {
    /// Serializes an event.
    pub fn new(ev: &ResponseStreamEvent, seq: i64) -> Encoded {
        let json = serde_json::to_string(ev).unwrap_or_else(|_| {
            // Our own types always serialize; keep the stream well-formed
            // even if that ever changes.
            format!(r#"{{"type":"error","sequence_number":{seq}}}"#)
        });
        Encoded::from_json(ev.type_name(), &json, seq, ev.is_terminal())
    }

    /// Wraps stored event JSON (replay from the event log).
    pub fn from_json(kind: &str, json: &str, seq: i64, terminal: bool) -> Self {
        let mut frame = String::with_capacity(json.len() + kind.len() + 16);
        frame.push_str("event: ");
        frame.push_str(kind);
        frame.push_str("\ndata: ");
        let start = frame.len();
        frame.push_str(json);
        let end = frame.len();
        frame.push_str("\n\n");
        Encoded { seq, frame: Bytes::from(frame), json: (start, end), terminal }
    }

    /// Re-frames an event read back from the log.
    pub fn from_log(seq: i64, json: &str) -> Self {
        let kind = event_type(json).unwrap_or("message");
        let terminal = is_terminal_type(kind);
        Encoded::from_json(kind, json, seq, terminal)
    }

    /// The event JSON as shared bytes (a WebSocket text frame), without
    /// a copy.
    pub fn json_bytes(&self) -> Bytes {
        self.frame.slice(self.json.0..self.json.1)
    }

    /// The event JSON (the `data:` payload).
    pub fn json(&self) -> &str {
        // The frame was built from a String; the range is on its bounds.
        std::str::from_utf8(&self.frame[self.json.0..self.json.1])
            .unwrap_or_default()
    }
}

/// The `type` of a serialized event (always its first field).
fn event_type(json: &str) -> Option<&str> {
    let rest = json.strip_prefix(r#"{"type":""#)?;
    rest.split('"').next()
}

fn is_terminal_type(t: &str) -> bool {
    matches!(
        t,
        "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "error"
    )
}
