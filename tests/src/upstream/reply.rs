//! Renders a [`Plan`] as OpenAI renders a chat completion: one typed JSON
//! body, or SSE chunks written byte by byte around a pre-formatted prefix
//! (no `Value` trees on the common path: benchmarks come through here).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use serde_json::{Value, json};

use super::plan::{Choice, Fault, Plan, Usage};
use super::{
    Body, BoxError, Counter, Gauge, MID_STREAM_MESSAGE, State, UPSTREAM_DETAIL,
};

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

fn usage_json(plan: &Plan) -> String {
    // Serializing `Usage` cannot fail.
    serde_json::to_string(&plan.usage()).unwrap_or_default()
}

/// The non-streaming `chat.completion` body (typed: serializing a
/// `Value` tree costs a third more, and benchmarks come through here).
#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<CompletionChoice<'a>>,
    usage: Usage,
    service_tier: &'a str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: usize,
    message: Message<'a>,
    logprobs: Option<Value>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    /// OpenRouter's name for `reasoning_content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
}

pub(super) fn completion_json(plan: &Plan) -> String {
    let choices = plan
        .choices
        .iter()
        .enumerate()
        .map(|(index, c)| {
            let calls = !c.tool_calls.is_empty();
            let text = (!calls).then_some(c.text.as_str());
            let reasoning = |name: &str| {
                plan.reasoning.filter(|(f, _)| *f == name).map(|(_, r)| r)
            };
            let message = Message {
                role: "assistant",
                content: text.filter(|_| !c.refusal),
                refusal: text.filter(|_| c.refusal),
                tool_calls: calls.then(|| tool_calls_json(c)),
                annotations: (plan.annotate && !calls && !c.refusal)
                    .then(|| annotations(&c.text)),
                reasoning_content: reasoning("reasoning_content"),
                reasoning: reasoning("reasoning"),
            };
            let logprobs = plan
                .logprobs
                .filter(|_| !calls)
                .map(|top| logprobs(c, &c.pieces(), top));
            CompletionChoice {
                index,
                message,
                logprobs,
                finish_reason: c.finish_reason,
            }
        })
        .collect();
    let body = Completion {
        id: format!("chatcmpl-{}", plan.id),
        object: "chat.completion",
        created: now_secs(),
        model: &plan.model,
        choices,
        usage: plan.usage(),
        service_tier: &plan.service_tier,
        system_fingerprint: SYSTEM_FINGERPRINT,
    };
    // Serializing these types cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

enum Event {
    Data(Bytes),
    /// A chunk whose text starts with its send time: the bytes before and
    /// after the stamp.
    Stamped(String, String),
    /// Cut the connection (the body yields an error, hyper aborts).
    Reset,
    /// Wait until the test releases the pause (`PAUSE`).
    Pause,
}

/// One chunk being written, byte by byte: no `fmt` machinery and one
/// allocation per chunk, since every benchmark streams through here.
struct Chunk(Vec<u8>);

impl Chunk {
    fn new(head: &str, room: usize) -> Chunk {
        let mut buf = Vec::with_capacity(head.len() + room + 48);
        buf.extend_from_slice(head.as_bytes());
        Chunk(buf)
    }

    fn raw(mut self, s: &str) -> Chunk {
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// `s` as a JSON string.
    fn string(mut self, s: &str) -> Chunk {
        // Serializing a `str` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut self.0, s);
        self
    }

    fn done(self) -> Event {
        Event::Data(Bytes::from(self.0))
    }
}

const ROLE: &str = r#""role":"assistant","#;
/// Closes the delta of an unfinished choice, and the chunk.
const NO_FINISH: &str = "},\"finish_reason\":null}]}\n\n";

/// Formats the chunks of one streamed response: `prefix` opens every
/// chunk up to and including `"choices":[`.
struct Framer<'a> {
    plan: &'a Plan,
    prefix: String,
}

impl Framer<'_> {
    /// One choice's chunks, in order, each flagged when it carries content.
    fn choice(&self, index: usize, choice: &Choice) -> Vec<(Event, bool)> {
        let plan = self.plan;
        // Every chunk of this choice starts with this, up to the delta's `{`.
        let head = format!("{}{{\"index\":{index},\"delta\":{{", self.prefix);
        let mut events = Vec::new();
        let mut role = ROLE;
        if let Some((field, text)) = plan.reasoning {
            for piece in super::plan::word_chunks(text) {
                let ev = Chunk::new(&head, piece.len())
                    .raw(role)
                    .raw("\"")
                    .raw(field)
                    .raw("\":")
                    .string(piece)
                    .raw(NO_FINISH)
                    .done();
                events.push((ev, false));
                role = "";
            }
        }
        for (i, call) in choice.tool_calls.iter().enumerate() {
            let first = json!([{"index": i, "id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": ""}}]);
            let ev = Chunk::new(&head, 128)
                .raw(role)
                .raw("\"tool_calls\":")
                .raw(&first.to_string())
                .raw(NO_FINISH)
                .done();
            events.push((ev, false));
            role = "";
            let index = format!("\"tool_calls\":[{{\"index\":{i},");
            for piece in super::plan::equal_pieces(&call.arguments, 3) {
                let ev = Chunk::new(&head, piece.len() + 64)
                    .raw(&index)
                    .raw("\"function\":{\"arguments\":")
                    .string(piece)
                    .raw("}}]")
                    .raw(NO_FINISH)
                    .done();
                events.push((ev, false));
            }
        }
        let field =
            if choice.refusal { "\"refusal\":" } else { "\"content\":" };
        let mut pieces = choice.pieces();
        let last = pieces.len().checked_sub(1);
        let cut = plan.fault == Some(Fault::Reset);
        if cut {
            pieces.truncate(2);
        }
        for (i, piece) in pieces.iter().enumerate() {
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
            // `after_text` ends the delta, `logprobs` follows it.
            let ev = if plan.stamp {
                // The stamp goes right after the text's opening quote.
                let text = serde_json::to_string(piece).unwrap_or_default();
                Event::Stamped(
                    format!("{head}{role}{field}\""),
                    format!(
                        "{}{after_text}}}{logprobs}{}",
                        &text[1..],
                        &NO_FINISH[1..]
                    ),
                )
            } else if after_text.is_empty() && logprobs.is_empty() {
                Chunk::new(&head, piece.len() + 8)
                    .raw(role)
                    .raw(field)
                    .string(piece)
                    .raw(NO_FINISH)
                    .done()
            } else {
                Chunk::new(
                    &head,
                    piece.len() + after_text.len() + logprobs.len(),
                )
                .raw(role)
                .raw(field)
                .string(piece)
                .raw(&after_text)
                .raw("}")
                .raw(&logprobs)
                .raw(&NO_FINISH[1..])
                .done()
            };
            events.push((ev, true));
            role = "";
        }
        if !cut {
            let ev = Chunk::new(&head, 32)
                .raw("},\"finish_reason\":\"")
                .raw(choice.finish_reason)
                .raw("\"}]}\n\n")
                .done();
            events.push((ev, false));
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
    };
    let mut per_choice: Vec<std::vec::IntoIter<(Event, bool)>> = plan
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| framer.choice(i, c).into_iter())
        .collect();
    let mut out = VecDeque::new();
    let mut malformed = plan.fault == Some(Fault::Malformed);
    let mut pause = plan.pause;
    let mid_error = plan.fault == Some(Fault::MidStream);
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
            if pause && content {
                out.push_back(Event::Pause);
                pause = false;
            }
            if mid_error && content {
                // As vLLM and OpenRouter report a failure inside a 200
                // stream, with text a client must never see.
                let error = json!({"error": {
                    "message": format!("{MID_STREAM_MESSAGE} ({UPSTREAM_DETAIL})"),
                    "type": "server_error",
                    "code": "engine_overloaded",
                }});
                out.push_back(Event::Data(Bytes::from(format!(
                    "data: {error}\n\n"
                ))));
                return out;
            }
        }
    }
    if plan.fault == Some(Fault::Reset) {
        out.push_back(Event::Reset);
    } else {
        if plan.include_usage {
            let ev = format!(
                "{}],\"usage\":{}}}\n\n",
                framer.prefix,
                usage_json(plan)
            );
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
    let gate = state.pauses.clone();
    let body = futures::stream::unfold(st, move |mut st| {
        let gate = gate.clone();
        async move {
            let mut ev = st.events.pop_front()?;
            if matches!(ev, Event::Pause) {
                gate.acquire().await.ok()?.forget();
                ev = st.events.pop_front()?;
            }
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
                    Ok(Frame::data(Bytes::from(format!(
                        "{head}[t={sent}]{tail}"
                    ))))
                }
                Event::Reset => {
                    // Return Pending once so hyper flushes what came before
                    // (headers and chunks) before the error cuts the connection.
                    tokio::task::yield_now().await;
                    Err(BoxError::from("FAULT:reset"))
                }
                Event::Pause => Ok(Frame::data(Bytes::new())),
            };
            Some((item, st))
        }
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
