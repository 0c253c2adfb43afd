//! The fake's answers: what to say for a request ([`plan`]) and how
//! OpenAI says it ([`render`]): a `Response` object, or its SSE events
//! in OpenAI's order with sequence numbers.

use std::sync::atomic::Ordering;

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use super::{Body, MID_ERROR, REFUSAL, SUMMARY, State, error, full};

fn words(s: &str) -> i64 {
    s.split_whitespace().count() as i64
}

/// Text of a message item's parts (input or output text).
fn item_text(item: &Value) -> String {
    match &item["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or(p["refusal"].as_str()))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// One output item of the answer.
enum Out {
    Reasoning { id: String, enc: Option<String> },
    Message { id: String, pieces: Vec<String>, cut: bool, refusal: bool },
    Call { id: String, call_id: String, name: String, args: String },
}

/// What to answer.
pub(super) struct Plan {
    id: String,
    model: String,
    stream: bool,
    items: Vec<Out>,
    mid_error: bool,
    incomplete: bool,
    input_tokens: i64,
    output_tokens: i64,
    reasoning_tokens: i64,
}

/// The answer to `body`, or the fault it asks for.
pub(super) fn plan(
    state: &State,
    body: &Value,
) -> Result<Plan, Box<Response<Body>>> {
    let n = state.next.fetch_add(1, Ordering::SeqCst);
    let input = body["input"].as_array().cloned().unwrap_or_default();
    let last_user = input
        .iter()
        .rev()
        .find(|i| i["role"] == "user")
        .map(item_text)
        .unwrap_or_default();
    if last_user.contains("FAULT:429") {
        let mut rsp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached, retry later",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        );
        rsp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        return Err(Box::new(rsp));
    }
    if last_user.contains("FAULT:500") {
        return Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request.",
            "server_error",
            None,
            None,
        )));
    }
    let input_tokens = words(body["instructions"].as_str().unwrap_or(""))
        + input.iter().map(|i| words(&item_text(i))).sum::<i64>();
    let tool_output = input
        .last()
        .filter(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].as_str().unwrap_or("").to_string());
    let mut items = Vec::new();
    let mut reasoning_tokens = 0;
    if last_user.contains("THINK") && tool_output.is_none() {
        let wants = body["include"].as_array().is_some_and(|a| {
            a.iter().any(|v| v == "reasoning.encrypted_content")
        });
        let enc = wants.then(|| format!("enc-{n}"));
        if let Some(e) = &enc {
            state
                .issued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(e.clone());
        }
        reasoning_tokens = words(SUMMARY);
        items.push(Out::Reasoning { id: format!("rs_fake_{n}"), enc });
    }
    let tool = body["tools"].as_array().and_then(|t| t.first()).cloned();
    let mut output_tokens = reasoning_tokens;
    let mut incomplete = false;
    match tool {
        Some(t) if last_user.contains("CALL") && tool_output.is_none() => {
            let args = json!({"q": last_user}).to_string();
            output_tokens += words(&args);
            items.push(Out::Call {
                id: format!("fc_fake_{n}"),
                call_id: format!("call_fake_{n}"),
                name: t["name"].as_str().unwrap_or("").to_string(),
                args,
            });
        }
        _ => {
            let text = match &tool_output {
                Some(o) => format!("Tool said: {o}"),
                None if last_user.contains("LONG") => (0..40)
                    .map(|i| format!("w{i}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                None if last_user.contains("REFUSE") => REFUSAL.to_string(),
                None => format!("You said: {last_user}"),
            };
            let mut pieces: Vec<String> =
                text.split_inclusive(' ').map(str::to_string).collect();
            if let Some(max) = body["max_output_tokens"].as_u64()
                && pieces.len() as u64 > max
            {
                pieces.truncate(max as usize);
                incomplete = true;
            }
            output_tokens += pieces.len() as i64;
            items.push(Out::Message {
                id: format!("msg_fake_{n}"),
                pieces,
                cut: incomplete,
                refusal: last_user.contains("REFUSE") && tool_output.is_none(),
            });
        }
    }
    Ok(Plan {
        id: format!("resp_fake_{n}"),
        model: body["model"].as_str().unwrap_or("").to_string(),
        stream: body["stream"] == true,
        items,
        mid_error: last_user.contains("MIDERROR"),
        incomplete,
        input_tokens,
        output_tokens,
        reasoning_tokens,
    })
}

fn status(p: &Plan) -> &'static str {
    if p.incomplete { "incomplete" } else { "completed" }
}

/// A message's content part: `text` as output text or as a refusal.
fn part(text: String, refusal: bool) -> Value {
    if refusal {
        json!({"type": "refusal", "refusal": text})
    } else {
        json!({"type": "output_text", "text": text, "annotations": [],
            "logprobs": []})
    }
}

/// An output item, finished (`done`) or as first announced.
fn item_json(item: &Out, done: bool) -> Value {
    match item {
        Out::Reasoning { id, enc } => {
            let mut v = json!({"id": id, "type": "reasoning", "summary": []});
            if done {
                v["summary"] =
                    json!([{"type": "summary_text", "text": SUMMARY}]);
                if let Some(e) = enc {
                    v["encrypted_content"] = json!(e);
                }
            }
            v
        }
        Out::Message { id, pieces, cut, refusal } => {
            let (status, content) = if done {
                (
                    if *cut { "incomplete" } else { "completed" },
                    json!([part(pieces.concat(), *refusal)]),
                )
            } else {
                ("in_progress", json!([]))
            };
            json!({"id": id, "type": "message", "status": status,
                "content": content, "role": "assistant"})
        }
        Out::Call { id, call_id, name, args } => json!({"id": id,
            "type": "function_call",
            "status": if done { "completed" } else { "in_progress" },
            "arguments": if done { args.as_str() } else { "" },
            "call_id": call_id, "name": name}),
    }
}

fn response_object(p: &Plan, status: &str, output: Vec<Value>) -> Value {
    let usage = (status != "in_progress").then(|| {
        json!({"input_tokens": p.input_tokens,
            "input_tokens_details": {"cached_tokens": p.input_tokens / 2},
            "output_tokens": p.output_tokens,
            "output_tokens_details": {"reasoning_tokens": p.reasoning_tokens},
            "total_tokens": p.input_tokens + p.output_tokens})
    });
    let incomplete = (status == "incomplete")
        .then(|| json!({"reason": "max_output_tokens"}));
    let error = (status == "failed")
        .then(|| json!({"code": "server_error", "message": MID_ERROR}));
    json!({"id": p.id, "object": "response", "created_at": 1_700_000_000,
        "status": status, "model": p.model, "output": output,
        "usage": usage, "incomplete_details": incomplete, "error": error,
        "store": false, "previous_response_id": null,
        "parallel_tool_calls": true, "tool_choice": "auto", "tools": []})
}

/// The stream's events without sequence numbers, in OpenAI's order.
fn stream_events(p: &Plan) -> Vec<Value> {
    let start = response_object(p, "in_progress", Vec::new());
    let mut evs = vec![
        json!({"type": "response.created", "response": start}),
        json!({"type": "response.in_progress", "response": start}),
    ];
    let mut done = Vec::new();
    for (index, item) in p.items.iter().enumerate() {
        evs.push(json!({"type": "response.output_item.added",
            "output_index": index, "item": item_json(item, false)}));
        match item {
            Out::Reasoning { id, .. } => {
                let at = json!({"item_id": id, "output_index": index, "summary_index": 0});
                let with = |kind: &str, extra: Value| {
                    let mut e = at.clone();
                    e["type"] = json!(kind);
                    if let (Some(e), Some(x)) =
                        (e.as_object_mut(), extra.as_object())
                    {
                        e.extend(x.clone());
                    }
                    e
                };
                evs.push(with(
                    "response.reasoning_summary_part.added",
                    json!({"part": {"type": "summary_text", "text": ""}}),
                ));
                for piece in SUMMARY.split_inclusive(' ') {
                    evs.push(with(
                        "response.reasoning_summary_text.delta",
                        json!({"delta": piece}),
                    ));
                }
                evs.push(with(
                    "response.reasoning_summary_text.done",
                    json!({"text": SUMMARY}),
                ));
                evs.push(with(
                    "response.reasoning_summary_part.done",
                    json!({"part": {"type": "summary_text", "text": SUMMARY}}),
                ));
            }
            Out::Message { id, pieces, refusal, .. } => {
                let at = |kind: &str| {
                    json!({"type": kind, "item_id": id,
                    "output_index": index, "content_index": 0})
                };
                let (delta, done) = if *refusal {
                    ("response.refusal.delta", "response.refusal.done")
                } else {
                    ("response.output_text.delta", "response.output_text.done")
                };
                let mut e = at("response.content_part.added");
                e["part"] = part(String::new(), *refusal);
                evs.push(e);
                for piece in pieces {
                    let mut e = at(delta);
                    e["delta"] = json!(piece);
                    if !*refusal {
                        e["logprobs"] = json!([]);
                    }
                    evs.push(e);
                    if p.mid_error {
                        let failed = response_object(p, "failed", Vec::new());
                        evs.push(json!({"type": "response.failed", "response": failed}));
                        return evs;
                    }
                }
                let text = pieces.concat();
                let mut e = at(done);
                if *refusal {
                    e["refusal"] = json!(text);
                } else {
                    e["text"] = json!(text);
                    e["logprobs"] = json!([]);
                }
                evs.push(e);
                let mut e = at("response.content_part.done");
                e["part"] = part(text, *refusal);
                evs.push(e);
            }
            Out::Call { id, args, name, .. } => {
                let chars: Vec<char> = args.chars().collect();
                let third = chars.len().div_ceil(3).max(1);
                for piece in chars.chunks(third) {
                    evs.push(
                        json!({"type": "response.function_call_arguments.delta",
                        "item_id": id, "output_index": index,
                        "delta": piece.iter().collect::<String>()}),
                    );
                }
                evs.push(
                    json!({"type": "response.function_call_arguments.done",
                    "item_id": id, "output_index": index, "name": name,
                    "arguments": args}),
                );
            }
        }
        let finished = item_json(item, true);
        evs.push(json!({"type": "response.output_item.done",
            "output_index": index, "item": finished}));
        done.push(finished);
    }
    let status = status(p);
    evs.push(json!({"type": format!("response.{status}"),
        "response": response_object(p, status, done)}));
    evs
}

/// The answer of plan `p`, as OpenAI sends it.
pub(super) fn render(p: &Plan) -> Response<Body> {
    if p.stream {
        let mut sse = String::new();
        for (seq, ev) in stream_events(p).into_iter().enumerate() {
            let mut ev = ev;
            ev["sequence_number"] = json!(seq);
            let kind = ev["type"].as_str().unwrap_or("").to_string();
            sse.push_str(&format!("event: {kind}\ndata: {ev}\n\n"));
        }
        let mut rsp =
            full(StatusCode::OK, "text/event-stream; charset=utf-8", sse);
        rsp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        return rsp;
    }
    let r = if p.mid_error {
        response_object(p, "failed", Vec::new())
    } else {
        let output: Vec<Value> =
            p.items.iter().map(|i| item_json(i, true)).collect();
        response_object(p, status(p), output)
    };
    full(StatusCode::OK, "application/json", r.to_string())
}
