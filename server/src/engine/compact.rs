//! `POST /v1/responses/compact`: the model named by the request writes a
//! summary of the conversation (a fixed prompt over the conversation as
//! text), which comes back sealed in one `compaction` item after the
//! user messages, kept verbatim (as OpenAI's compaction answers).

use super::builder::ResponseBuilder;
use super::error::{EngineError, EngineResult};
use super::run::upstream_failure;
use super::seal::Compacted;
use super::{Caller, Engine};
use crate::api::*;
use crate::ids;
use crate::providers::{Message, TranscriptItem};

/// The system prompt of every compaction call. Documented in the README:
/// users can predict what a compaction keeps.
pub const COMPACTION_PROMPT: &str = "You compact conversations. You are \
    given a conversation between a user and an assistant. Write a summary \
    that lets the assistant continue the conversation without the \
    original: keep every fact, decision, name, number, code word, open \
    question and instruction the user gave, and what the assistant \
    promised or concluded. Write plain prose or short bullet points, in \
    the conversation's language. Do not answer the conversation; only \
    summarize it.";

/// Longest piece of one item carried into the compaction prompt; beyond
/// it the text is cut (the summary is meant to be short anyway).
const MAX_ITEM_CHARS: usize = 64 * 1024;

impl Engine {
    /// `POST /v1/responses/compact`.
    pub async fn compact(
        &self,
        caller: &Caller,
        req: CompactResponse,
    ) -> EngineResult<CompactedResponse> {
        let mut p = self.prepare(caller, req.into()).await?;
        if p.request.transcript.is_empty() {
            return Err(EngineError::invalid(
                "Nothing to compact: give `input`, `previous_response_id` \
                 or both.",
                Some("input"),
                Some("missing_required_parameter"),
            ));
        }
        let kept = user_messages(&p.request.transcript);
        let conversation =
            render(p.request.instructions.as_deref(), &p.request.transcript);
        p.request.instructions = Some(COMPACTION_PROMPT.to_string());
        p.request.transcript = vec![TranscriptItem::Message(Message {
            role: Role::User,
            parts: vec![ContentPart::InputText { text: conversation }],
        })];
        tracing::info!(
            request_id = %caller.request_id,
            org = %caller.org_id,
            model = %p.response.model,
            "response compact"
        );
        let ctx = p.context(&self.inner.metrics);
        let (completion, served) = p
            .route
            .complete(&mut p.request, &ctx)
            .await
            .map_err(|f| upstream_failure(&f.provider, f.error))?;
        let mut b = ResponseBuilder::new(p.response, 0, false, false);
        b.apply_all(completion);
        b.complete();
        let answer = b.into_response();
        let summary = output_text(&answer.output);
        if summary.trim().is_empty() {
            return Err(EngineError::Upstream {
                provider: served.provider,
                error: crate::providers::ProviderError::Protocol(
                    "the model wrote an empty compaction summary".into(),
                ),
            });
        }
        let sealed =
            self.inner.sealer.seal(&caller.org_id, &Compacted { summary });
        let mut output = kept;
        output.push(ItemResource::Compaction {
            id: ids::compaction_id(),
            encrypted_content: sealed,
        });
        Ok(CompactedResponse {
            id: answer.id,
            object: CompactionObject::ResponseCompaction,
            created_at: answer.created_at,
            output,
            usage: answer.usage.unwrap_or_default(),
        })
    }
}

/// The user messages, as items to keep verbatim.
fn user_messages(transcript: &[TranscriptItem]) -> Vec<ItemResource> {
    let messages = transcript.iter().filter_map(|item| match item {
        TranscriptItem::Message(m) if m.role == Role::User => {
            Some(ItemResource::Message {
                id: ids::message_id(),
                role: Role::User,
                status: ItemStatus::Completed,
                content: m.parts.clone(),
            })
        }
        _ => None,
    });
    messages.collect()
}

/// The conversation as text the compaction prompt reads.
fn render(instructions: Option<&str>, transcript: &[TranscriptItem]) -> String {
    let mut out = String::from(
        "Summarize this conversation as instructed.\n\n<conversation>\n",
    );
    if let Some(i) = instructions {
        push_turn(&mut out, "instructions", i);
    }
    for item in transcript {
        match item {
            TranscriptItem::Message(m) => {
                let text = parts_text(&m.parts);
                push_turn(&mut out, m.role.as_str(), &text);
            }
            TranscriptItem::FunctionCall { name, arguments, .. } => {
                let text = format!("called `{name}` with {arguments}");
                push_turn(&mut out, "assistant", &text);
            }
            TranscriptItem::FunctionCallOutput { output, .. } => {
                push_turn(&mut out, "tool", output);
            }
            TranscriptItem::Reasoning { .. } => {}
        }
    }
    out.push_str("</conversation>");
    out
}

fn push_turn(out: &mut String, who: &str, text: &str) {
    let text = match text.char_indices().nth(MAX_ITEM_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    out.push('[');
    out.push_str(who);
    out.push_str("]: ");
    out.push_str(text);
    out.push('\n');
}

fn parts_text(parts: &[ContentPart]) -> String {
    let mut out = Vec::new();
    for p in parts {
        match p {
            ContentPart::InputText { text }
            | ContentPart::OutputText { text, .. } => out.push(text.clone()),
            ContentPart::Refusal { refusal } => out.push(refusal.clone()),
            ContentPart::InputImage { .. } => out.push("[image]".into()),
            ContentPart::InputFile { filename, .. } => out.push(format!(
                "[file {}]",
                filename.as_deref().unwrap_or("unnamed")
            )),
        }
    }
    out.join("\n")
}

/// The text the model wrote.
fn output_text(output: &[OutputItem]) -> String {
    let mut text = String::new();
    for item in output {
        if let OutputItem::Message { content, .. } = item {
            for c in content {
                if let OutputContent::OutputText { text: t, .. } = c {
                    text.push_str(t);
                }
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, text: &str) -> TranscriptItem {
        TranscriptItem::Message(Message {
            role,
            parts: vec![ContentPart::InputText { text: text.into() }],
        })
    }

    #[test]
    fn the_prompt_holds_every_turn_and_user_messages_are_kept() {
        let t = vec![
            msg(Role::User, "code word: slate"),
            msg(Role::Assistant, "OK."),
            msg(Role::User, "compress this"),
        ];
        let text = render(Some("be brief"), &t);
        assert!(text.contains("[instructions]: be brief"));
        assert!(text.contains("[user]: code word: slate"));
        assert!(text.contains("[assistant]: OK."));
        let kept: Vec<_> = user_messages(&t)
            .into_iter()
            .map(|i| match i {
                ItemResource::Message { role, content, .. } => (role, content),
                other => panic!("kept {other:?}"),
            })
            .collect();
        let text = |t: &str| vec![ContentPart::InputText { text: t.into() }];
        assert_eq!(
            kept,
            [
                (Role::User, text("code word: slate")),
                (Role::User, text("compress this"))
            ]
        );
    }

    #[test]
    fn long_items_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_ITEM_CHARS + 10);
        let mut out = String::new();
        push_turn(&mut out, "user", &long);
        assert_eq!(out.chars().count(), MAX_ITEM_CHARS + "[user]: \n".len());
    }
}
