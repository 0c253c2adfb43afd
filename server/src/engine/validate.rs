//! Request validation: ranges, limits and fields we cannot honour, each
//! answered with a 400 that names `param` and says what to do.

use super::error::EngineError;
use crate::api::{CreateResponse, Input, InputItem, TextFormat};

/// Longest `instructions` and total input text accepted, in bytes.
const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;
/// Most input items per request.
const MAX_INPUT_ITEMS: usize = 10_000;

/// Checks a create request; the first problem found is returned.
pub fn check(req: &CreateResponse) -> Result<(), EngineError> {
    match req.model.as_deref() {
        None | Some("") => {
            return Err(EngineError::invalid(
                "Missing required parameter: 'model'. Use the form \
                 'provider/model', for example 'echo/test' or \
                 'openai/gpt-4o-mini'.",
                Some("model"),
                Some("missing_required_parameter"),
            ));
        }
        Some(_) => {}
    }
    if req.input.is_none() && req.previous_response_id.is_none() {
        return Err(EngineError::invalid(
            "Missing required parameter: 'input'.",
            Some("input"),
            Some("missing_required_parameter"),
        ));
    }
    if let Some(Input::Items(items)) = &req.input {
        if items.len() > MAX_INPUT_ITEMS {
            return Err(EngineError::invalid_value(
                "input",
                format!("Too many input items: at most {MAX_INPUT_ITEMS}."),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            if let InputItem::ItemReference(r) = item
                && r.id.is_empty()
            {
                return Err(EngineError::invalid_value(
                    &format!("input[{i}].id"),
                    "Item references need a non-empty 'id'.",
                ));
            }
        }
    }
    if req.instructions.as_ref().is_some_and(|i| i.len() > MAX_TEXT_BYTES) {
        return Err(EngineError::invalid_value(
            "instructions",
            "Instructions are too long: at most 16 MiB.",
        ));
    }
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(EngineError::invalid(
            "Managed tools are not yet supported: remove `tools` or send an \
             empty list.",
            Some("tools"),
            Some("unsupported_parameter"),
        ));
    }
    if req.conversation.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(EngineError::invalid(
            "Conversations are not supported: chain turns with \
             `previous_response_id` instead.",
            Some("conversation"),
            Some("unsupported_parameter"),
        ));
    }
    if req.prompt.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(EngineError::invalid(
            "Stored prompt templates are not supported: send `instructions` \
             and `input` instead.",
            Some("prompt"),
            Some("unsupported_parameter"),
        ));
    }
    if req.background == Some(true) && req.store == Some(false) {
        return Err(EngineError::invalid(
            "Background responses must be stored: remove `store: false` or \
             set `store: true`.",
            Some("store"),
            Some("invalid_value"),
        ));
    }
    if req.stream_options.is_some() && req.stream != Some(true) {
        return Err(EngineError::invalid(
            "`stream_options` is only allowed with `stream: true`.",
            Some("stream_options"),
            Some("invalid_value"),
        ));
    }
    range_f("temperature", req.temperature, 0.0, 2.0)?;
    range_f("top_p", req.top_p, 0.0, 1.0)?;
    range_f("presence_penalty", req.presence_penalty, -2.0, 2.0)?;
    range_f("frequency_penalty", req.frequency_penalty, -2.0, 2.0)?;
    range_i("top_logprobs", req.top_logprobs, 0, 20)?;
    range_i("max_output_tokens", req.max_output_tokens, 16, i64::MAX)?;
    range_i("max_tool_calls", req.max_tool_calls, 0, i64::MAX)?;
    metadata(req.metadata.as_ref())?;
    tags(req.tags.as_deref())?;
    if let Some(Some(TextFormat::JsonSchema { name, .. })) =
        req.text.as_ref().map(|t| &t.format)
    {
        schema_name("text.format.name", name)?;
    }
    Ok(())
}

/// `metadata`: at most 16 pairs, keys up to 64 characters, values up to
/// 512.
pub(crate) fn metadata(
    meta: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<(), EngineError> {
    if let Some(meta) = meta {
        if meta.len() > 16 {
            return Err(EngineError::invalid_value(
                "metadata",
                format!(
                    "Invalid 'metadata': too many properties. Expected at \
                     most 16 properties, but got {} instead.",
                    meta.len()
                ),
            ));
        }
        for (k, v) in meta {
            if k.chars().count() > 64 {
                return Err(EngineError::invalid_value(
                    "metadata",
                    format!(
                        "Invalid 'metadata': key '{}…' is longer than 64 \
                         characters.",
                        k.chars().take(16).collect::<String>()
                    ),
                ));
            }
            if v.chars().count() > 512 {
                return Err(EngineError::invalid_value(
                    "metadata",
                    format!(
                        "Invalid 'metadata': the value of '{k}' is longer \
                         than 512 characters."
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `tags` (Maniac extension): at most 64 of at most 256 bytes.
pub(crate) fn tags(tags: Option<&[String]>) -> Result<(), EngineError> {
    if let Some(tags) = tags
        && (tags.len() > 64 || tags.iter().any(|t| t.len() > 256))
    {
        return Err(EngineError::invalid_value(
            "tags",
            "At most 64 tags of at most 256 bytes each.",
        ));
    }
    Ok(())
}

/// A schema or function name: 1 to 64 letters, digits, `_` or `-`.
pub(crate) fn schema_name(param: &str, name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(EngineError::invalid_value(
            param,
            format!(
                "Invalid '{param}': names must be 1 to 64 letters, digits, '_' or '-'."
            ),
        ));
    }
    Ok(())
}

pub(crate) fn range_f(
    param: &str,
    v: Option<f64>,
    min: f64,
    max: f64,
) -> Result<(), EngineError> {
    match v {
        Some(x) if !(min..=max).contains(&x) || x.is_nan() => {
            Err(EngineError::invalid_value(
                param,
                format!(
                    "Invalid '{param}': {x} is out of range. Expected a value \
                     between {min} and {max}."
                ),
            ))
        }
        _ => Ok(()),
    }
}

pub(crate) fn range_i(
    param: &str,
    v: Option<i64>,
    min: i64,
    max: i64,
) -> Result<(), EngineError> {
    match v {
        Some(x) if !(min..=max).contains(&x) => {
            let expected = if max == i64::MAX {
                format!("a value of at least {min}")
            } else {
                format!("a value between {min} and {max}")
            };
            Err(EngineError::invalid_value(
                param,
                format!(
                    "Invalid '{param}': {x} is out of range. Expected {expected}."
                ),
            ))
        }
        _ => Ok(()),
    }
}
