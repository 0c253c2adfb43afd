//! `POST /v1/responses/input_tokens`: the input tokens of a create body as
//! the upstream would see them. The provider's own counter where it has
//! one (Anthropic); OpenAI's published tokenizers for OpenAI model
//! families, with the chat framing OpenAI documents; otherwise the same
//! count with `o200k_base`, an estimate.

use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

use super::error::EngineResult;
use super::run::upstream_failure;
use super::{Caller, Engine};
use crate::api::*;
use crate::providers::{ProviderRequest, TranscriptItem};

/// Framing tokens of each message (`<|start|>role<|message|>…<|end|>`).
const PER_MESSAGE: usize = 3;
/// Tokens that prime the reply (`<|start|>assistant<|message|>`).
const REPLY_PRIMING: usize = 3;
/// An image at `detail: low` (OpenAI's fixed cost).
const IMAGE_LOW: usize = 85;
/// An image otherwise: a 512 px tile grid of a 1024×1024 image, since the
/// gateway does not fetch images to measure them (an estimate).
const IMAGE_DEFAULT: usize = 765;

impl Engine {
    /// `POST /v1/responses/input_tokens`.
    pub async fn count_input_tokens(
        &self,
        caller: &Caller,
        req: TokenCountsBody,
    ) -> EngineResult<TokenCountsResource> {
        let p = self.prepare(caller, req.into()).await?;
        let counted = match p.route.first_target() {
            Some(target) => {
                let mut request = p.request.clone();
                request.model.clone_from(&target.model);
                match target
                    .provider
                    .count_tokens(&request, &p.context(&self.inner.metrics))
                    .await
                {
                    Some(n) => Some(n.map_err(|e| {
                        upstream_failure(&target.provider_name, e)
                    })?),
                    None => None,
                }
            }
            None => None,
        };
        let input_tokens = match counted {
            Some(n) => n,
            None => count(&p.request) as i64,
        };
        Ok(TokenCountsResource {
            object: TokenCountsObject::ResponseInputTokens,
            input_tokens,
        })
    }
}

/// The encoding of an upstream model: its own for OpenAI model families
/// (a vendor prefix such as `openai/` is ignored), `o200k_base` otherwise.
fn encoding(model: &str) -> &'static CoreBPE {
    let name = model.rsplit('/').next().unwrap_or(model);
    match get_tokenizer(name) {
        Some(Tokenizer::Cl100kBase) => tiktoken_rs::cl100k_base_singleton(),
        Some(Tokenizer::O200kHarmony) => tiktoken_rs::o200k_harmony_singleton(),
        _ => tiktoken_rs::o200k_base_singleton(),
    }
}

/// Input tokens of a provider request with the chat framing.
pub(crate) fn count(req: &ProviderRequest) -> usize {
    let bpe = encoding(&req.model);
    let text = |s: &str| bpe.count_ordinary(s);
    let mut n = REPLY_PRIMING;
    if let Some(i) = &req.instructions {
        n += PER_MESSAGE + text("developer") + text(i);
    }
    for item in &req.transcript {
        n += match item {
            TranscriptItem::Message(m) => {
                PER_MESSAGE
                    + text(m.role.as_str())
                    + m.parts.iter().map(|p| part(p, &text)).sum::<usize>()
            }
            TranscriptItem::FunctionCall { name, arguments, .. } => {
                PER_MESSAGE + text(name) + text(arguments) + 1
            }
            TranscriptItem::FunctionCallOutput { output, .. } => {
                PER_MESSAGE + text("tool") + text(output)
            }
            // Earlier reasoning is not part of a later turn's input.
            TranscriptItem::Reasoning { .. } => 0,
        };
    }
    n
}

fn part(p: &ContentPart, text: &impl Fn(&str) -> usize) -> usize {
    match p {
        ContentPart::InputText { text: t }
        | ContentPart::OutputText { text: t, .. } => text(t),
        ContentPart::Refusal { refusal } => text(refusal),
        ContentPart::InputImage { detail, .. } => match detail.as_deref() {
            Some("low") => IMAGE_LOW,
            _ => IMAGE_DEFAULT,
        },
        // Files are read by the upstream; only their name is counted.
        ContentPart::InputFile { filename, .. } => {
            filename.as_deref().map_or(0, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Message;

    fn request(model: &str, texts: &[(Role, &str)]) -> ProviderRequest {
        ProviderRequest {
            model: model.into(),
            transcript: texts
                .iter()
                .map(|(role, t)| {
                    TranscriptItem::Message(Message {
                        role: *role,
                        parts: vec![ContentPart::InputText {
                            text: (*t).into(),
                        }],
                    })
                })
                .collect(),
            ..ProviderRequest::default()
        }
    }

    #[test]
    fn one_user_message_is_framing_plus_its_tokens() {
        // "Hello, world!" is 4 tokens in o200k_base (Hello , world !) and
        // "user" 1: 3 framing + 1 + 4 + 3 priming.
        let r = request("gpt-4o", &[(Role::User, "Hello, world!")]);
        assert_eq!(count(&r), 11);
    }

    #[test]
    fn encodings_follow_the_model_family() {
        let text = "antidisestablishmentarianism in 2026";
        let o200k = tiktoken_rs::o200k_base_singleton().count_ordinary(text);
        let cl100k = tiktoken_rs::cl100k_base_singleton().count_ordinary(text);
        assert_eq!(encoding("gpt-4o-mini").count_ordinary(text), o200k);
        assert_eq!(encoding("openai/gpt-4.1").count_ordinary(text), o200k);
        assert_eq!(encoding("gpt-4").count_ordinary(text), cl100k);
        assert_eq!(encoding("gpt-3.5-turbo").count_ordinary(text), cl100k);
        assert_eq!(encoding("llama-3").count_ordinary(text), o200k);
    }

    #[test]
    fn instructions_and_images_count() {
        let mut r = request("gpt-4o", &[(Role::User, "hi")]);
        let base = count(&r);
        r.instructions = Some("be brief".into());
        let bpe = tiktoken_rs::o200k_base_singleton();
        let instructions = PER_MESSAGE
            + bpe.count_ordinary("developer")
            + bpe.count_ordinary("be brief");
        assert_eq!(count(&r), base + instructions);
        if let TranscriptItem::Message(m) = &mut r.transcript[0] {
            m.parts.push(ContentPart::InputImage {
                image_url: Some("https://example.com/a.png".into()),
                file_id: None,
                detail: Some("low".into()),
            });
        }
        assert_eq!(count(&r), base + instructions + IMAGE_LOW);
    }
}
