//! Renders a [`Plan`] as OpenAI renders a chat completion: one JSON body,
//! or SSE chunks built from pre-formatted strings (no per-chunk
//! serialization of a whole object: benchmarks stream through here).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::plan::{Choice, Fault, Plan};
use super::{Body, BoxError, Counter, Gauge, State};

/// The `system_fingerprint` of every completion and chunk.
pub const SYSTEM_FINGERPRINT: &str = "fp_fake";
/// The `logprob` of every token (the top alternative's; the others
/// follow at -1.25, -2.25, …).
pub const LOGPROB: f64 = -0.25;
/// The URL of the `ANNOTATE` citation.
pub const ANNOTATION_URL: &str = "https://example.com/fake";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One `logprobs.content` entry for `token`, with `top` alternatives (the
/// token itself first, then `alt1`, `alt2`, …).
fn logprob_entry(token: &str, top: usize) -> Value {
    let alternatives: Vec<Value> = (0..top)
        .map(|j| {
            let alt = if j == 0 { token.to_string() } else { format!("alt{j}") };
            json!({"token": alt, "logprob": LOGPROB - j as f64, "bytes": alt.as_bytes()})
        })
        .collect();
    json!({"token": token, "logprob": LOGPROB, "bytes": token.as_bytes(), "top_logprobs": alternatives})
}

/// A choice's `logprobs` for these pieces of its text.
fn logprobs(choice: &Choice, pieces: &[&str], top: usize) -> Value {
    let entries: Vec<Value> =
        pieces.iter().map(|p| logprob_entry(p, top)).collect();
    if choice.refusal {
        json!({"content": null, "refusal": entries})
    } else {
        json!({"content": entries, "refusal": null})
    }
}

fn annotations(text: &str) -> Value {
    json!([{"type": "url_citation", "url_citation": {
        "start_index": 0,
        "end_index": text.chars().count(),
        "url": ANNOTATION_URL,
        "title": "Fake",
    }}])
}

fn tool_calls_json(choice: &Choice) -> Value {
    choice
        .tool_calls
        .iter()
        .map(|c| {
            json!({"id": c.id, "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments}})
        })
        .collect()
}

/// The non-streaming `chat.completion` body.
pub(super) fn completion_json(plan: &Plan) -> String {
    let choices: Vec<Value> = plan
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut message = json!({"role": "assistant"});
            if !c.tool_calls.is_empty() {
                message["content"] = Value::Null;
                message["refusal"] = Value::Null;
                message["tool_calls"] = tool_calls_json(c);
            } else if c.refusal {
                message["content"] = Value::Null;
                message["refusal"] = json!(c.text);
            } else {
                message["content"] = json!(c.text);
                message["refusal"] = Value::Null;
                if plan.annotate {
                    message["annotations"] = annotations(&c.text);
                }
            }
            if let Some((field, text)) = plan.reasoning {
                message[field] = json!(text);
            }
            let logprobs = match plan.logprobs {
                Some(top) if c.tool_calls.is_empty() => {
                    logprobs(c, &c.pieces(), top)
                }
                _ => Value::Null,
            };
            json!({"index": i, "message": message, "logprobs": logprobs,
                   "finish_reason": c.finish_reason})
        })
        .collect();
    json!({
        "id": format!("chatcmpl-{}", plan.id),
        "object": "chat.completion",
        "created": now_secs(),
        "model": plan.model,
        "choices": choices,
        "usage": plan.usage(),
        "service_tier": plan.service_tier,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    })
    .to_string()
}

enum Event {
    Data(Bytes),
    /// A chunk whose text starts with its send time: the bytes before and
    /// after the stamp.
    Stamped(String, String),
    /// Cut the connection (the body yields an error, hyper aborts).
    Reset,
}

/// Formats the chunks of one streamed response: `prefix` opens every
/// chunk up to and including `"choices":[`, `suffix` closes it.
struct Framer<'a> {
    plan: &'a Plan,
    prefix: String,
    suffix: &'static str,
}

impl Framer<'_> {
    /// A chunk with one choice: `delta` is the delta object's inside.
    fn chunk(&self, index: usize, delta: &str, tail: &str) -> Bytes {
        let (prefix, suffix) = (&self.prefix, self.suffix);
        Bytes::from(format!(
            "{prefix}{{\"index\":{index},\"delta\":{{{delta}}}{tail}}}]{suffix}\n\n"
        ))
    }

    /// One choice's chunks, in order, each flagged when it carries content.
    fn choice(&self, index: usize, choice: &Choice) -> Vec<(Event, bool)> {
        const ROLE: &str = r#""role":"assistant","#;
        const NO_FINISH: &str = r#","finish_reason":null"#;
        let plan = self.plan;
        let mut events = Vec::new();
        let mut role = ROLE;
        if let Some((field, text)) = plan.reasoning {
            for piece in super::plan::word_chunks(text) {
                let piece = Value::String(piece.to_string());
                let delta = format!("{role}\"{field}\":{piece}");
                events.push((
                    Event::Data(self.chunk(index, &delta, NO_FINISH)),
                    false,
                ));
                role = "";
            }
        }
        for (i, call) in choice.tool_calls.iter().enumerate() {
            let head = json!([{"index": i, "id": call.id, "type": "function",
                               "function": {"name": call.name, "arguments": ""}}]);
            let delta = format!("{role}\"tool_calls\":{head}");
            events.push((
                Event::Data(self.chunk(index, &delta, NO_FINISH)),
                false,
            ));
            role = "";
            for piece in super::plan::equal_pieces(&call.arguments, 3) {
                let piece = Value::String(piece.to_string());
                let delta = format!(
                    "\"tool_calls\":[{{\"index\":{i},\"function\":{{\"arguments\":{piece}}}}}]"
                );
                events.push((
                    Event::Data(self.chunk(index, &delta, NO_FINISH)),
                    false,
                ));
            }
        }
        let field = if choice.refusal { "refusal" } else { "content" };
        let mut pieces = choice.pieces();
        let cut = plan.fault == Some(Fault::Reset);
        if cut {
            pieces.truncate(2);
        }
        let last = choice.pieces().len().checked_sub(1);
        for (i, piece) in pieces.iter().enumerate() {
            let text = Value::String((*piece).to_string()).to_string();
            let annotated = plan.annotate && !choice.refusal && Some(i) == last;
            let after_text = if annotated {
                format!(",\"annotations\":{}", annotations(&choice.text))
            } else {
                String::new()
            };
            let logprobs = match plan.logprobs {
                Some(top) => {
                    format!(",\"logprobs\":{}", logprobs(choice, &[piece], top))
                }
                None => String::new(),
            };
            let (prefix, suffix) = (&self.prefix, self.suffix);
            let ev = if plan.stamp {
                // `text` is a JSON string: the stamp goes after its quote.
                Event::Stamped(
                    format!(
                        "{prefix}{{\"index\":{index},\"delta\":{{{role}\"{field}\":\""
                    ),
                    format!(
                        "{}{after_text}}}{logprobs}{NO_FINISH}}}]{suffix}\n\n",
                        &text[1..]
                    ),
                )
            } else {
                // The hot path of every benchmark: one `format!` per chunk.
                Event::Data(Bytes::from(format!(
                    "{prefix}{{\"index\":{index},\"delta\":{{{role}\"{field}\":{text}{after_text}}}{logprobs}{NO_FINISH}}}]{suffix}\n\n"
                )))
            };
            events.push((ev, true));
            role = "";
        }
        if !cut {
            let finish =
                format!(",\"finish_reason\":\"{}\"", choice.finish_reason);
            events.push((Event::Data(self.chunk(index, "", &finish)), false));
        }
        events
    }
}

/// Every chunk of the response, choices interleaved: round `r` carries
/// the `r`-th chunk of each choice that still has one.
fn events(plan: &Plan) -> VecDeque<Event> {
    let framer = Framer {
        plan,
        prefix: format!(
            r#"data: {{"id":"chatcmpl-{}","object":"chat.completion.chunk","created":{},"model":{},"service_tier":{},"system_fingerprint":"{SYSTEM_FINGERPRINT}","choices":["#,
            plan.id,
            now_secs(),
            Value::String(plan.model.clone()),
            Value::String(plan.service_tier.clone()),
        ),
        suffix: if plan.include_usage { r#","usage":null}"# } else { "}" },
    };
    let mut per_choice: Vec<std::vec::IntoIter<(Event, bool)>> = plan
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| framer.choice(i, c).into_iter())
        .collect();
    let mut out = VecDeque::new();
    let mut malformed = plan.fault == Some(Fault::Malformed);
    let mut more = true;
    while more {
        more = false;
        for evs in &mut per_choice {
            let Some((ev, content)) = evs.next() else { continue };
            more = true;
            // `FAULT:malformed` breaks the stream after the first content
            // chunk (before the first finish chunk when there is none).
            let finish = !content && evs.len() == 0;
            if malformed && finish {
                out.push_back(Event::Data(Bytes::from_static(
                    b"data: {not json\n\n",
                )));
                malformed = false;
            }
            out.push_back(ev);
            if malformed && content {
                out.push_back(Event::Data(Bytes::from_static(
                    b"data: {not json\n\n",
                )));
                malformed = false;
            }
        }
    }
    if plan.fault == Some(Fault::Reset) {
        out.push_back(Event::Reset);
    } else {
        if plan.include_usage {
            let ev =
                format!("{}],\"usage\":{}}}\n\n", framer.prefix, plan.usage());
            out.push_back(Event::Data(Bytes::from(ev)));
        }
        out.push_back(Event::Data(Bytes::from_static(b"data: [DONE]\n\n")));
    }
    out
}

/// The streamed (SSE) answer.
pub(super) fn stream_response(
    state: &Arc<State>,
    plan: &Plan,
    in_flight: Gauge,
) -> Response<Body> {
    struct St {
        events: VecDeque<Event>,
        delay: Option<Duration>,
        guards: Option<(Gauge, Gauge)>,
    }
    let st = St {
        events: events(plan),
        delay: plan.slow,
        guards: Some((Gauge::new(state, Counter::OpenStreams), in_flight)),
    };
    let body = futures::stream::unfold(st, |mut st| async move {
        let ev = st.events.pop_front()?;
        if let Some(d) = st.delay {
            tokio::time::sleep(d).await;
        }
        if st.events.is_empty() {
            // The stream is over once its last event is handed over.
            st.guards = None;
        }
        let item = match ev {
            Event::Data(b) => Ok(Frame::data(b)),
            Event::Stamped(head, tail) => {
                let sent = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros());
                Ok(Frame::data(Bytes::from(format!("{head}[t={sent}]{tail}"))))
            }
            Event::Reset => {
                // Return Pending once so hyper flushes what came before
                // (headers and chunks) before the error cuts the connection.
                tokio::task::yield_now().await;
                Err(BoxError::from("FAULT:reset"))
            }
        };
        Some((item, st))
    });
    let mut rsp = Response::new(StreamBody::new(body).boxed_unsync());
    let h = rsp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    rsp
}
