//! The fake's answers: what a request asks for ([`Plan`]), rendered as a
//! whole message or as Anthropic's event stream.

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::{
    CACHE_READ, CACHE_WRITE, JSON_REPLY, REDACTED, REFUSAL, THINKING, answer,
    blocks, error, kind, signature,
};

/// What the answer will be.
struct Plan {
    id: u64,
    model: String,
    stream: bool,
    think: bool,
    redact: bool,
    /// Reply words (with their spaces).
    words: Vec<String>,
    call: Option<(String, String)>,
    stop_reason: &'static str,
    input: i64,
    cache: bool,
    mid_error: bool,
}

fn text_of(blocks: &[Value]) -> String {
    blocks
        .iter()
        .filter(|b| kind(b) == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn word_count(s: &str) -> i64 {
    s.split_whitespace().count() as i64
}

fn plan(b: &Value, id: u64) -> Result<Plan, Box<Response<Full<Bytes>>>> {
    let messages = b["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| blocks(&m["content"]))
        .unwrap_or_default();
    let text = text_of(&last_user);
    let tool_output: Option<String> = {
        let results: Vec<String> = last_user
            .iter()
            .filter(|b| kind(b) == "tool_result")
            .map(|b| match &b["content"] {
                Value::String(s) => s.clone(),
                c => text_of(&blocks(c)),
            })
            .collect();
        (!results.is_empty()).then(|| results.join(" "))
    };
    for (marker, status, kind, message) in [
        (
            "FAULT:429",
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit.",
        ),
        ("FAULT:529", 529, "overloaded_error", "Overloaded"),
        ("FAULT:500", 500, "api_error", "Internal server error"),
    ] {
        if text.contains(marker) {
            let mut rsp = error(status, kind, message);
            if status == 429 {
                rsp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
            }
            return Err(Box::new(rsp));
        }
    }
    let stream = b["stream"] == true;
    let mid_error = text.contains("MIDERROR");
    if mid_error && !stream {
        return Err(Box::new(error(529, "overloaded_error", "Overloaded")));
    }
    let mut input = word_count(
        &messages
            .iter()
            .map(|m| text_of(&blocks(&m["content"])))
            .collect::<Vec<_>>()
            .join(" "),
    );
    match &b["system"] {
        Value::String(s) => input += word_count(s),
        Value::Array(a) => input += word_count(&text_of(a)),
        _ => {}
    }
    let tools = b["tools"].as_array().cloned().unwrap_or_default();
    let choice = b["tool_choice"]["type"].as_str().unwrap_or("auto");
    let call = if tools.is_empty() || tool_output.is_some() || choice == "none"
    {
        None
    } else if choice == "tool" {
        b["tool_choice"]["name"].as_str().map(str::to_owned)
    } else if choice == "any" || text.contains("CALL") {
        tools[0]["name"].as_str().map(str::to_owned)
    } else {
        None
    }
    .map(|name| (name, json!({"q": text}).to_string()));
    let refuse = text.contains("REFUSE");
    let reply = if refuse {
        REFUSAL.to_string()
    } else if b["output_config"].get("format").is_some() {
        JSON_REPLY.to_string()
    } else if let Some(out) = &tool_output {
        format!("Tool said: {out}")
    } else {
        format!("You said: {text}")
    };
    let mut words: Vec<String> =
        reply.split_inclusive(' ').map(str::to_owned).collect();
    let max = b["max_tokens"].as_i64().unwrap_or(i64::MAX).max(0) as usize;
    let stop_reason = if call.is_some() {
        words.clear();
        "tool_use"
    } else if words.len() > max {
        words.truncate(max);
        if let Some(w) = words.last_mut() {
            *w = w.trim_end().to_string();
        }
        "max_tokens"
    } else if refuse {
        "refusal"
    } else {
        "end_turn"
    };
    Ok(Plan {
        id,
        model: b["model"].as_str().unwrap_or("").to_string(),
        stream,
        think: text.contains("THINK"),
        redact: text.contains("REDACT"),
        words,
        call,
        stop_reason,
        input,
        cache: text.contains("CACHE"),
        mid_error,
    })
}

impl Plan {
    fn output_tokens(&self) -> i64 {
        let mut n = self.words.len() as i64;
        if self.think {
            n += word_count(THINKING);
        }
        if let Some((_, args)) = &self.call {
            n += word_count(args);
        }
        n
    }

    fn usage(&self, output: i64) -> Value {
        let (read, write) =
            if self.cache { (CACHE_READ, CACHE_WRITE) } else { (0, 0) };
        json!({"input_tokens": self.input, "cache_read_input_tokens": read,
               "cache_creation_input_tokens": write, "output_tokens": output})
    }

    fn call_id(&self) -> String {
        format!("toolu_fake_{}", self.id)
    }
}

pub(super) fn messages(
    b: &Value,
    id: u64,
    got_key: &str,
) -> Response<Full<Bytes>> {
    let text = b["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| text_of(&blocks(&m["content"])))
        .unwrap_or_default();
    if text.contains("FAULT:401") {
        // Like an upstream that quotes the key it refused.
        return error(
            401,
            "authentication_error",
            &format!("invalid x-api-key: {got_key}"),
        );
    }
    let p = match plan(b, id) {
        Ok(p) => p,
        Err(rsp) => return *rsp,
    };
    if p.stream { stream(&p) } else { whole(&p) }
}

fn whole(p: &Plan) -> Response<Full<Bytes>> {
    let mut content = Vec::new();
    if p.redact {
        content.push(json!({"type": "redacted_thinking", "data": REDACTED}));
    }
    if p.think {
        content.push(json!({"type": "thinking", "thinking": THINKING,
                            "signature": signature(THINKING)}));
    }
    if !p.words.is_empty() {
        content.push(json!({"type": "text", "text": p.words.concat()}));
    }
    if let Some((name, args)) = &p.call {
        let input: Value = serde_json::from_str(args).unwrap_or(json!({}));
        content.push(json!({"type": "tool_use", "id": p.call_id(), "name": name, "input": input}));
    }
    let body = json!({
        "id": format!("msg_fake_{}", p.id), "type": "message", "role": "assistant",
        "model": p.model, "content": content, "stop_reason": p.stop_reason,
        "stop_sequence": null, "usage": p.usage(p.output_tokens()),
    });
    answer(200, "application/json", body.to_string())
}

/// SSE text of events, each with its `event:` line.
struct Sse(String);

impl Sse {
    fn push(&mut self, data: Value) {
        let name = data["type"].as_str().unwrap_or("").to_string();
        self.0.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
}

fn stream(p: &Plan) -> Response<Full<Bytes>> {
    let mut s = Sse(String::new());
    s.push(json!({"type": "message_start", "message": {
        "id": format!("msg_fake_{}", p.id), "type": "message", "role": "assistant",
        "model": p.model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": p.usage(1)}}));
    s.push(json!({"type": "ping"}));
    let mut index = 0;
    if p.mid_error {
        s.push(json!({"type": "content_block_start", "index": 0,
                      "content_block": {"type": "text", "text": ""}}));
        s.push(json!({"type": "content_block_delta", "index": 0,
                      "delta": {"type": "text_delta", "text": "Partial "}}));
        s.push(json!({"type": "error",
                      "error": {"type": "overloaded_error",
                      "message": format!("Overloaded ({})", crate::upstream::UPSTREAM_DETAIL)}}));
        return answer(200, "text/event-stream", s.0);
    }
    if p.redact {
        s.push(json!({"type": "content_block_start", "index": index,
                      "content_block": {"type": "redacted_thinking", "data": REDACTED}}));
        s.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if p.think {
        s.push(json!({"type": "content_block_start", "index": index,
                      "content_block": {"type": "thinking", "thinking": ""}}));
        for w in THINKING.split_inclusive(' ') {
            s.push(json!({"type": "content_block_delta", "index": index,
                          "delta": {"type": "thinking_delta", "thinking": w}}));
        }
        s.push(json!({"type": "content_block_delta", "index": index,
                      "delta": {"type": "signature_delta", "signature": signature(THINKING)}}));
        s.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if !p.words.is_empty() {
        s.push(json!({"type": "content_block_start", "index": index,
                      "content_block": {"type": "text", "text": ""}}));
        for w in &p.words {
            s.push(json!({"type": "content_block_delta", "index": index,
                          "delta": {"type": "text_delta", "text": w}}));
        }
        s.push(json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if let Some((name, args)) = &p.call {
        s.push(json!({"type": "content_block_start", "index": index,
                      "content_block": {"type": "tool_use", "id": p.call_id(),
                                        "name": name, "input": {}}}));
        let chars: Vec<char> = args.chars().collect();
        let third = chars.len().div_ceil(3).max(1);
        for piece in chars.chunks(third) {
            let piece: String = piece.iter().collect();
            s.push(json!({"type": "content_block_delta", "index": index,
                          "delta": {"type": "input_json_delta", "partial_json": piece}}));
        }
        s.push(json!({"type": "content_block_stop", "index": index}));
    }
    let usage = if p.cache {
        p.usage(p.output_tokens())
    } else {
        json!({"output_tokens": p.output_tokens()})
    };
    s.push(json!({"type": "message_delta",
                  "delta": {"stop_reason": p.stop_reason, "stop_sequence": null},
                  "usage": usage}));
    s.push(json!({"type": "message_stop"}));
    answer(200, "text/event-stream", s.0)
}
