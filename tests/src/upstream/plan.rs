//! What the fake upstream answers to one request: the markers of the last
//! user message and the request's own fields (`n`, `tools`, `logprobs`, …)
//! turned into a [`Plan`] that `reply` renders as JSON or SSE.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{JSON_REPLY, REASONING, REFUSAL};

/// Most choices one request gets (`n` is capped here).
pub const MAX_CHOICES: usize = 8;
/// Most tool calls one choice makes (`CALL:<k>` is capped here).
pub const MAX_TOOL_CALLS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Fault {
    Status(u16),
    Hang,
    Reset,
    Malformed,
    /// Stream: an `error` chunk after the first content chunk.
    MidStream,
}

/// The `FAULT:` marker in `t`, if any.
pub(super) fn fault_of(t: &str) -> Option<Fault> {
    if t.contains("FAULT:500") {
        Some(Fault::Status(500))
    } else if t.contains("FAULT:429") {
        Some(Fault::Status(429))
    } else if t.contains("FAULT:400") {
        Some(Fault::Status(400))
    } else if t.contains("FAULT:401") {
        Some(Fault::Status(401))
    } else if t.contains("FAULT:hang") {
        Some(Fault::Hang)
    } else if t.contains("FAULT:reset") {
        Some(Fault::Reset)
    } else if t.contains("FAULT:malformed") {
        Some(Fault::Malformed)
    } else if t.contains("FAULT:midstream") {
        Some(Fault::MidStream)
    } else {
        None
    }
}

/// One function call of a choice.
pub(super) struct ToolCall {
    /// `call_<request>_<i>`, unique within the request.
    pub id: String,
    pub name: String,
    /// Compact JSON `{"q":"<last user text>"}`.
    pub arguments: String,
}

/// One choice of the answer.
pub(super) struct Choice {
    /// The reply (or refusal) after truncation; empty for tool calls.
    pub text: String,
    /// `text` is a refusal, not content.
    pub refusal: bool,
    /// When non-empty the choice calls these instead of answering.
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: &'static str,
    /// Stream `text` in 3 equal pieces (a whole `JSON:` reply).
    equal_thirds: bool,
}

impl Choice {
    /// The pieces of `text`: one per streamed chunk and one per logprobs
    /// entry. They concatenate to `text`.
    pub fn pieces(&self) -> Vec<&str> {
        if self.equal_thirds {
            equal_pieces(&self.text, 3)
        } else {
            word_chunks(&self.text)
        }
    }

    fn completion_tokens(&self) -> usize {
        if self.tool_calls.is_empty() {
            words(&self.text)
        } else {
            self.tool_calls.iter().map(|c| words(&c.arguments)).sum()
        }
    }
}

/// What to answer to one request.
pub(super) struct Plan {
    /// The number in `chatcmpl-<id>` (and in the tool call ids).
    pub id: u64,
    /// Answer with `Connection: close`.
    pub close: bool,
    pub stream: bool,
    pub include_usage: bool,
    pub model: String,
    pub service_tier: String,
    pub fault: Option<Fault>,
    pub slow: Option<Duration>,
    /// Streamed content chunks start with their send time.
    pub stamp: bool,
    /// Stream: wait after the first content chunk until the test releases
    /// it ([`super::FakeUpstream::release_pauses`]).
    pub pause: bool,
    /// `Some(top_logprobs)` when `logprobs: true` was asked for.
    pub logprobs: Option<usize>,
    /// Content carries a `url_citation` annotation (`ANNOTATE`).
    pub annotate: bool,
    /// Reasoning sent before each choice's answer, and the field that
    /// carries it.
    pub reasoning: Option<(&'static str, &'static str)>,
    pub choices: Vec<Choice>,
    pub prompt_tokens: usize,
}

/// The text of a message's content: a string, or the concatenation of the
/// `text` of its `{"type":"text"}` parts.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

pub(super) fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// The decimal number right after `marker` in `text`.
fn marker_number(text: &str, marker: &str) -> Option<u64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Splits at word boundaries: each piece is one word plus the whitespace
/// that follows it (leading whitespace joins the first piece), so the
/// pieces concatenate to `s` exactly.
pub(super) fn word_chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    let mut prev_ws = false;
    for (i, c) in s.char_indices() {
        let ws = c.is_whitespace();
        if !ws && prev_ws && seen_word {
            out.push(&s[start..i]);
            start = i;
        }
        seen_word |= !ws;
        prev_ws = ws;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Splits into `n` pieces of roughly equal length (on char boundaries).
pub(super) fn equal_pieces(s: &str, n: usize) -> Vec<&str> {
    let chars: Vec<usize> = s
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect();
    let len = chars.len() - 1;
    (0..n)
        .map(|k| {
            (chars[(k * len).div_ceil(n)], chars[((k + 1) * len).div_ceil(n)])
        })
        .filter(|(a, b)| a < b)
        .map(|(a, b)| &s[a..b])
        .collect()
}

fn role(m: &Value) -> Option<&str> {
    m.get("role").and_then(Value::as_str)
}

/// The request's top-level field names, sorted, joined with `,`.
fn field_list(body: &Value) -> String {
    let mut names: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names.join(",")
}

/// The name of a tool definition (`{"type":"function","function":{"name"}}`,
/// or a flat `name`).
fn tool_name(tool: &Value) -> &str {
    tool.pointer("/function/name")
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("tool")
}

/// The function names each choice calls, or none when it answers.
fn tool_call_names<'a>(
    body: &'a Value,
    text: &str,
    after_tool: bool,
) -> Vec<&'a str> {
    let tools = match body.get("tools").and_then(Value::as_array) {
        Some(t) if !t.is_empty() && !after_tool => t,
        _ => return Vec::new(),
    };
    let choice = body.get("tool_choice");
    let mode = choice.and_then(Value::as_str);
    let named = choice
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("function"))
        .map(tool_name);
    let marker = text.contains("CALL");
    if mode == Some("none")
        || !(mode == Some("required") || named.is_some() || marker)
    {
        return Vec::new();
    }
    let k = marker_number(text, "CALL:")
        .map_or(1, |k| (k as usize).clamp(1, MAX_TOOL_CALLS));
    match named {
        Some(name) => vec![name; k],
        None => (0..k).map(|i| tool_name(&tools[i % tools.len()])).collect(),
    }
}

impl Plan {
    pub fn new(body: &Value, id: u64) -> Plan {
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let prompt_tokens = messages
            .iter()
            .map(|m| m.get("content").map_or(0, |c| words(&content_text(c))))
            .sum();
        let last_user = messages
            .iter()
            .rev()
            .find(|m| role(m) == Some("user"))
            .and_then(|m| m.get("content"))
            .map(content_text)
            .unwrap_or_default();
        let tool_result = messages
            .last()
            .filter(|m| role(m) == Some("tool"))
            .map(|m| m.get("content").map(content_text).unwrap_or_default());
        let t = last_user.as_str();

        let fault = fault_of(t);
        let refuse = t.contains("REFUSE");
        let json = !refuse && t.contains("JSON:");
        let mut base = if refuse {
            REFUSAL.to_string()
        } else if json {
            JSON_REPLY.to_string()
        } else if t.contains("FIELDS") {
            field_list(body)
        } else if let Some(r) = &tool_result {
            format!("Tool said: {r}")
        } else if let Some(n) = marker_number(t, "WORDS:") {
            let mut s = String::with_capacity(n as usize * 5);
            for i in 0..n {
                if i > 0 {
                    s.push(' ');
                }
                s.push('w');
                s.push_str(&i.to_string());
            }
            s
        } else {
            format!("You said: {t}")
        };

        let n = body
            .get("n")
            .and_then(Value::as_u64)
            .map_or(1, |n| (n as usize).clamp(1, MAX_CHOICES));
        let limit = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64));
        let filtered = t.contains("FAULT:filter");
        let names = tool_call_names(body, t, tool_result.is_some());
        let arguments = if names.is_empty() {
            String::new()
        } else {
            serde_json::json!({ "q": t }).to_string()
        };
        let choices = (0..n)
            .map(|i| {
                if !names.is_empty() {
                    let tool_calls = names
                        .iter()
                        .enumerate()
                        .map(|(j, name)| ToolCall {
                            id: format!("call_{id}_{}", i * names.len() + j),
                            name: (*name).to_string(),
                            arguments: arguments.clone(),
                        })
                        .collect();
                    return Choice {
                        text: String::new(),
                        refusal: false,
                        tool_calls,
                        finish_reason: if filtered {
                            "content_filter"
                        } else {
                            "tool_calls"
                        },
                        equal_thirds: false,
                    };
                }
                // A `JSON:` reply stays valid JSON in every choice.
                let full = if n == 1 {
                    // The common case: no copy.
                    std::mem::take(&mut base)
                } else if i == 0 || json {
                    base.clone()
                } else {
                    format!("{base} (choice {i})")
                };
                let (text, truncated) = match limit {
                    Some(n) if words(&full) as u64 > n => {
                        let kept: String = word_chunks(&full)
                            .into_iter()
                            .take(n as usize)
                            .collect();
                        (kept.trim_end().to_string(), true)
                    }
                    _ => (full, false),
                };
                Choice {
                    text,
                    refusal: refuse,
                    tool_calls: Vec::new(),
                    finish_reason: if filtered {
                        "content_filter"
                    } else if truncated {
                        "length"
                    } else {
                        "stop"
                    },
                    equal_thirds: json && !truncated,
                }
            })
            .collect();

        Plan {
            id,
            close: t.contains("CLOSE"),
            stream: body
                .get("stream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            include_usage: body
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            service_tier: body
                .get("service_tier")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string(),
            fault,
            slow: marker_number(t, "SLOW:").map(Duration::from_millis),
            stamp: t.contains("STAMP"),
            pause: t.contains("PAUSE"),
            logprobs: (body.get("logprobs").and_then(Value::as_bool)
                == Some(true))
            .then(|| {
                body.get("top_logprobs")
                    .and_then(Value::as_u64)
                    .map_or(0, |k| k.min(20) as usize)
            }),
            annotate: t.contains("ANNOTATE"),
            reasoning: t.contains("THINK").then(|| {
                let field = if t.contains("THINK:openrouter") {
                    "reasoning"
                } else {
                    "reasoning_content"
                };
                (field, REASONING)
            }),
            choices,
            prompt_tokens,
        }
    }

    pub fn usage(&self) -> Usage {
        let n = self.choices.len();
        let reasoning = self.reasoning.map_or(0, |(_, r)| words(r)) * n;
        let completion: usize = reasoning
            + self.choices.iter().map(Choice::completion_tokens).sum::<usize>();
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: completion,
            total_tokens: self.prompt_tokens + completion,
            completion_tokens_details: (reasoning > 0).then_some(
                CompletionTokensDetails { reasoning_tokens: reasoning },
            ),
        }
    }
}

/// `usage`, counted in words.
#[derive(Serialize)]
pub(super) struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chunks_reassemble() {
        for s in ["You said: hello  world ", "  a b", "", "x", "You said: "] {
            assert_eq!(word_chunks(s).concat(), s);
        }
        assert_eq!(
            word_chunks("You said: hi there"),
            ["You ", "said: ", "hi ", "there"]
        );
        assert_eq!(equal_pieces(JSON_REPLY, 3).concat(), JSON_REPLY);
        assert_eq!(equal_pieces(JSON_REPLY, 3).len(), 3);
    }

    #[test]
    fn tool_calls_are_chosen_as_documented() {
        let tools = json!([
            {"type": "function", "function": {"name": "a"}},
            {"type": "function", "function": {"name": "b"}},
        ]);
        let user = |text: &str| json!([{"role": "user", "content": text}]);
        let cases = [
            (json!({"tools": tools, "messages": user("hi")}), vec![]),
            (json!({"tools": tools, "messages": user("CALL")}), vec!["a"]),
            (
                json!({"tools": tools, "messages": user("CALL:3")}),
                vec!["a", "b", "a"],
            ),
            (json!({"messages": user("CALL")}), vec![]),
            (json!({"tools": [], "messages": user("CALL")}), vec![]),
            (
                json!({"tools": tools, "tool_choice": "required", "messages": user("x")}),
                vec!["a"],
            ),
            (
                json!({"tools": tools, "tool_choice": "none", "messages": user("CALL")}),
                vec![],
            ),
            (
                json!({"tools": tools, "tool_choice": {"type": "function", "function": {"name": "b"}}, "messages": user("x")}),
                vec!["b"],
            ),
            (
                json!({"tools": tools, "tool_choice": "required", "messages": [
                    {"role": "user", "content": "CALL"},
                    {"role": "assistant", "content": null},
                    {"role": "tool", "tool_call_id": "c", "content": "42"},
                ]}),
                vec![],
            ),
        ];
        for (i, (body, want)) in cases.iter().enumerate() {
            let plan = Plan::new(body, 7);
            let got: Vec<&str> = plan.choices[0]
                .tool_calls
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(&got, want, "case {i}: {body}");
        }
    }

    #[test]
    fn tool_call_ids_are_unique_across_choices() {
        let body = json!({"n": 2, "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "CALL:2 \"quoted\""}]});
        let plan = Plan::new(&body, 3);
        let ids: Vec<&str> = plan
            .choices
            .iter()
            .flat_map(|c| c.tool_calls.iter().map(|t| t.id.as_str()))
            .collect();
        assert_eq!(ids, ["call_3_0", "call_3_1", "call_3_2", "call_3_3"]);
        let args: Value =
            serde_json::from_str(&plan.choices[1].tool_calls[0].arguments)
                .unwrap();
        assert_eq!(args, json!({"q": "CALL:2 \"quoted\""}));
    }
}
