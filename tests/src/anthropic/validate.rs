//! What the fake checks in a Messages request, as Anthropic does: the
//! rules a translation could break, each answered with Anthropic's 400
//! message.

use serde_json::Value;

use super::{REDACTED, blocks, kind, signature};

/// Anthropic's checks, as far as a translation could fail them.
pub(super) fn validate(b: &Value) -> Result<(), String> {
    if b["model"].as_str().is_none_or(str::is_empty) {
        return Err("model: Field required".into());
    }
    let max_tokens = b["max_tokens"]
        .as_i64()
        .filter(|m| *m >= 1)
        .ok_or("max_tokens: Field required")?;
    if let Some(t) = b.get("temperature").and_then(Value::as_f64)
        && !(0.0..=1.0).contains(&t)
    {
        return Err("temperature: must be between 0 and 1".into());
    }
    match b.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for p in parts {
                if kind(p) != "text"
                    || p["text"].as_str().is_none_or(str::is_empty)
                {
                    return Err("system: blocks must be non-empty text".into());
                }
            }
        }
        Some(_) => return Err("system: must be a string or blocks".into()),
    }
    let tools = b["tools"].as_array().cloned().unwrap_or_default();
    for (i, t) in tools.iter().enumerate() {
        if t["name"].as_str().is_none_or(str::is_empty)
            || t["input_schema"]["type"] != "object"
        {
            return Err(format!(
                "tools.{i}: needs a name and an object input_schema"
            ));
        }
    }
    let choice = b.get("tool_choice");
    if choice.is_some() && tools.is_empty() {
        return Err(
            "tool_choice: may only be specified while providing tools".into()
        );
    }
    let thinking = match b.get("thinking") {
        None => false,
        Some(t) if t["type"] == "enabled" => {
            let budget = t["budget_tokens"].as_i64().unwrap_or(0);
            if budget < 1024 {
                return Err("thinking.budget_tokens: must be >= 1024".into());
            }
            if budget >= max_tokens {
                return Err(
                    "max_tokens must be greater than thinking.budget_tokens"
                        .into(),
                );
            }
            true
        }
        Some(t) if t["type"] == "disabled" => false,
        Some(_) => return Err("thinking: unknown type".into()),
    };
    if thinking
        && choice.is_some_and(|c| c["type"] == "any" || c["type"] == "tool")
    {
        return Err(
            "Thinking may not be enabled when tool_choice forces tool use."
                .into(),
        );
    }
    if let Some(f) = b["output_config"].get("format")
        && (f["type"] != "json_schema" || !f["schema"].is_object())
    {
        return Err(
            "output_config.format: needs type json_schema and a schema".into(),
        );
    }
    let messages =
        b["messages"].as_array().ok_or("messages: Field required")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let mut prev_role = "";
    let mut prev_calls: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{i}.role: must be user or assistant"
            ));
        }
        if role == prev_role {
            return Err(format!(
                "messages.{i}: roles must alternate between \"user\" and \"assistant\""
            ));
        }
        let content = blocks(&m["content"]);
        if content.is_empty() {
            return Err(format!("messages.{i}: content must be non-empty"));
        }
        let mut calls = Vec::new();
        let mut results = Vec::new();
        let mut seen_other = false;
        for (j, blk) in content.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match kind(blk) {
                "text" => {
                    if blk["text"].as_str().is_none_or(str::is_empty) {
                        return Err(format!(
                            "{at}: text content blocks must be non-empty"
                        ));
                    }
                }
                "image" | "document" => {
                    let s = &blk["source"];
                    let ok = match s["type"].as_str() {
                        Some("base64") => {
                            s["media_type"].is_string() && s["data"].is_string()
                        }
                        Some("url") => s["url"]
                            .as_str()
                            .is_some_and(|u| u.starts_with("http")),
                        _ => false,
                    };
                    if !ok || role != "user" {
                        return Err(format!("{at}.source: invalid"));
                    }
                }
                "tool_use" => {
                    if role != "assistant" || !blk["input"].is_object() {
                        return Err(format!("{at}: invalid tool_use"));
                    }
                    calls.push(blk["id"].as_str().unwrap_or("").to_string());
                }
                "tool_result" => {
                    if role != "user" || seen_other {
                        return Err(format!(
                            "{at}: tool_result blocks must come first in a user message"
                        ));
                    }
                    let id =
                        blk["tool_use_id"].as_str().unwrap_or("").to_string();
                    if !prev_calls.contains(&id) {
                        return Err(format!(
                            "{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. \
                             Each `tool_result` block must have a corresponding `tool_use` \
                             block in the previous message."
                        ));
                    }
                    results.push(id);
                }
                "thinking" => {
                    let text = blk["thinking"].as_str().unwrap_or("");
                    if role != "assistant"
                        || blk["signature"].as_str()
                            != Some(signature(text).as_str())
                    {
                        return Err(format!(
                            "{at}: Invalid `signature` in `thinking` block"
                        ));
                    }
                }
                "redacted_thinking" => {
                    if role != "assistant" || blk["data"] != REDACTED {
                        return Err(format!(
                            "{at}: invalid redacted_thinking data"
                        ));
                    }
                }
                other => {
                    return Err(format!("{at}: unknown block type `{other}`"));
                }
            }
            if kind(blk) != "tool_result" {
                seen_other = true;
            }
        }
        if let Some(missing) = prev_calls.iter().find(|c| !results.contains(c))
        {
            return Err(format!(
                "messages.{i}: `tool_use` ids were found without `tool_result` blocks \
                 immediately after: {missing}"
            ));
        }
        if thinking
            && !calls.is_empty()
            && !matches!(kind(&content[0]), "thinking" | "redacted_thinking")
        {
            return Err(format!(
                "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, \
                 but found `{}`. When `thinking` is enabled, a final `assistant` message \
                 must start with a thinking block.",
                kind(&content[0])
            ));
        }
        prev_role = role;
        prev_calls = calls;
    }
    if !prev_calls.is_empty() {
        return Err(
            "the last message has tool_use blocks without results".into()
        );
    }
    Ok(())
}
