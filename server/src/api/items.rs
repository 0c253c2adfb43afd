//! Wire types of the non-message items: reasoning (raw text, summaries and
//! opaque state) and function calls, as outputs, stored items and inputs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::ItemStatus;

/// A part of a reasoning item's `summary`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SummaryPart {
    /// Summary text.
    SummaryText {
        /// The text.
        text: String,
    },
}

/// A part of a reasoning item's `content`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReasoningContent {
    /// Raw reasoning text.
    ReasoningText {
        /// The text.
        text: String,
    },
}

/// The `reasoning` type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum ReasoningType {
    /// A reasoning item.
    #[default]
    #[serde(rename = "reasoning")]
    Reasoning,
}

/// A reasoning item given back as input (as the SDKs re-send outputs).
/// It is kept in the transcript; chat upstreams do not receive it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputReasoning {
    /// Always `reasoning`.
    #[serde(rename = "type")]
    pub kind: ReasoningType,
    /// Item id, `rs_…`.
    pub id: String,
    /// Summary parts (may be empty).
    pub summary: Vec<SummaryPart>,
    /// Raw reasoning parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ReasoningContent>>,
    /// Opaque reasoning state for the upstream that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
    /// Item status (accepted and ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
}

/// A part of a content-part event: message text, refusal or reasoning.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamPart {
    /// Text.
    OutputText {
        /// The text.
        text: String,
        /// Annotations (citations).
        annotations: Vec<serde_json::Value>,
        /// Token log probabilities.
        logprobs: Vec<serde_json::Value>,
    },
    /// A refusal.
    Refusal {
        /// The refusal text.
        refusal: String,
    },
    /// Raw reasoning text.
    ReasoningText {
        /// The text.
        text: String,
    },
}
