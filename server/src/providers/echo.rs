//! `echo`: a deterministic local provider, so the gateway runs and can be
//! tried with no upstream keys. It answers with the last user message.

use async_trait::async_trait;
use futures::stream;

use super::*;

/// Answers with the text of the last user message, a few words per delta;
/// usage counts words.
pub struct Echo;

/// Words per streamed delta.
const WORDS_PER_DELTA: usize = 2;

impl Echo {
    fn answer(req: &ProviderRequest) -> (Vec<String>, Usage, FinishReason) {
        let last_user = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| plain_text(&m.parts))
            .unwrap_or_default();
        let input = req
            .messages
            .iter()
            .map(|m| plain_text(&m.parts).split_whitespace().count() as i64)
            .sum::<i64>()
            + req
                .instructions
                .as_deref()
                .map_or(0, |i| i.split_whitespace().count() as i64);
        let words: Vec<&str> = last_user.split_inclusive(' ').collect();
        let limit = req.max_output_tokens.map_or(usize::MAX, |m| m as usize);
        let (kept, finish) = if words.len() > limit {
            (&words[..limit], FinishReason::Length)
        } else {
            (&words[..], FinishReason::Stop)
        };
        let deltas = kept.chunks(WORDS_PER_DELTA).map(|c| c.concat()).collect();
        let usage =
            Usage { input, output: kept.len() as i64, ..Usage::default() };
        (deltas, usage, finish)
    }
}

#[async_trait]
impl Provider for Echo {
    async fn stream(
        &self,
        req: &ProviderRequest,
    ) -> Result<EventStream, ProviderError> {
        let (deltas, usage, finish) = Self::answer(req);
        let events = deltas
            .into_iter()
            .map(ProviderEvent::Text)
            .chain([ProviderEvent::Finish(finish), ProviderEvent::Usage(usage)])
            .map(Ok);
        Ok(Box::pin(stream::iter(events)))
    }

    async fn complete(
        &self,
        req: &ProviderRequest,
    ) -> Result<Completion, ProviderError> {
        let (deltas, usage, finish) = Self::answer(req);
        Ok(Completion {
            text: deltas.concat(),
            refusal: None,
            usage: Some(usage),
            finish: Some(finish),
        })
    }
}
