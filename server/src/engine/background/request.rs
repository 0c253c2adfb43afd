//! The request a queued run persists, versioned so that a run queued by
//! one version of the gateway is executed by the next during a rolling
//! upgrade. Version 1 (before item-level runs) had no `v` field and a flat
//! provider request with `messages`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Role, TextFormat};
use crate::providers::{Message, ProviderRequest, Sampling, TranscriptItem};

/// The version written today.
const VERSION: u64 = 2;

/// What a worker needs to run a queued response.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RunRequest {
    /// Provider name (the first target's for an alias).
    pub provider: String,
    /// The alias the run was asked for, re-resolved by the worker so it
    /// gets the same retries and failover as a live call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The provider request.
    pub request: ProviderRequest,
    /// Pad delta events.
    pub obfuscate: bool,
    /// The submitting key's id.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The id of the request that queued the run, for logs.
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Serialize)]
struct Versioned<'a> {
    v: u64,
    #[serde(flatten)]
    run: &'a RunRequest,
}

/// Version 1's provider request.
#[derive(Deserialize)]
struct RequestV1 {
    model: String,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    messages: Vec<MessageV1>,
    #[serde(default)]
    max_output_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    reasoning_effort: Option<String>,
    #[serde(default)]
    text_format: Option<TextFormat>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct MessageV1 {
    role: Role,
    parts: Vec<crate::api::ContentPart>,
}

#[derive(Deserialize)]
struct RunV1 {
    provider: String,
    request: RequestV1,
    #[serde(default = "yes")]
    obfuscate: bool,
}

fn yes() -> bool {
    true
}

impl RunRequest {
    /// The stored JSON (current version).
    pub fn encode(&self) -> String {
        serde_json::to_string(&Versioned { v: VERSION, run: self })
            .unwrap_or_default()
    }

    /// Reads a stored request of any known version.
    pub fn decode(text: &str) -> Result<RunRequest, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        match value.get("v").and_then(Value::as_u64) {
            Some(VERSION) => {
                serde_json::from_value(value).map_err(|e| e.to_string())
            }
            None => {
                let old: RunV1 =
                    serde_json::from_value(value).map_err(|e| e.to_string())?;
                Ok(old.upgrade())
            }
            Some(v) => Err(format!(
                "it was queued by a newer gateway (request version {v})"
            )),
        }
    }
}

impl RunV1 {
    fn upgrade(self) -> RunRequest {
        let r = self.request;
        RunRequest {
            provider: self.provider,
            route: None,
            request: ProviderRequest {
                model: r.model,
                instructions: r.instructions,
                transcript: r
                    .messages
                    .into_iter()
                    .map(|m| {
                        TranscriptItem::Message(Message {
                            role: m.role,
                            parts: m.parts,
                        })
                    })
                    .collect(),
                sampling: Sampling {
                    max_output_tokens: r.max_output_tokens,
                    temperature: r.temperature,
                    top_p: r.top_p,
                    ..Sampling::default()
                },
                reasoning_effort: r.reasoning_effort,
                output_format: r.text_format,
                user: r.user,
                ..ProviderRequest::default()
            },
            obfuscate: self.obfuscate,
            key_id: None,
            request_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_request_reads_as_today_s() {
        let v1 = r#"{"provider":"fake","request":{"model":"m",
            "instructions":"be brief","messages":[{"role":"user",
            "parts":[{"type":"input_text","text":"hi"}]}],
            "max_output_tokens":32,"temperature":0.5,"top_p":null,
            "reasoning_effort":null,"text_format":null,"user":"u1"},
            "obfuscate":false}"#;
        let r = RunRequest::decode(v1).expect("v1");
        assert_eq!(r.provider, "fake");
        assert!(!r.obfuscate);
        assert_eq!(r.request.sampling.max_output_tokens, Some(32));
        assert_eq!(r.request.user.as_deref(), Some("u1"));
        assert_eq!(r.request.messages().count(), 1);
        let again = RunRequest::decode(&r.encode()).expect("v2");
        assert_eq!(again.request, r.request);
        let newer = r#"{"v":99,"provider":"x"}"#;
        assert!(RunRequest::decode(newer).unwrap_err().contains("newer"));
    }
}
