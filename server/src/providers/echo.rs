//! `echo`: a deterministic local provider, so the gateway runs and can be
//! tried with no upstream keys. It answers with the last user message.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream;
use serde::Deserialize;

use super::*;
use crate::api::Role;

/// `kind = "echo"`: no settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoConfig {}

/// Answers with the text of the last user message, a few words per delta;
/// usage counts words.
pub struct Echo;

/// Words per streamed delta.
const WORDS_PER_DELTA: usize = 2;

impl Echo {
    /// The provider for a configuration.
    pub fn from_config(_: &EchoConfig) -> Arc<dyn Provider> {
        Arc::new(Echo)
    }

    fn answer(req: &ProviderRequest) -> (Vec<String>, Usage, FinishReason) {
        let last_user = req
            .messages()
            .filter(|m| m.role == Role::User)
            .last()
            .map(|m| plain_text(&m.parts))
            .unwrap_or_default();
        let input = req
            .messages()
            .map(|m| plain_text(&m.parts).split_whitespace().count() as i64)
            .sum::<i64>()
            + req
                .instructions
                .as_deref()
                .map_or(0, |i| i.split_whitespace().count() as i64);
        let words: Vec<&str> = last_user.split_inclusive(' ').collect();
        let limit =
            req.sampling.max_output_tokens.map_or(usize::MAX, |m| m as usize);
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
    fn models(&self) -> Vec<String> {
        vec!["echo".into()]
    }

    async fn stream(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Result<EventStream, ProviderError> {
        let (deltas, usage, finish) = Self::answer(req);
        let start =
            ProviderEvent::ItemStarted { index: 0, kind: ItemKind::Message };
        let events = std::iter::once(start)
            .chain(deltas.into_iter().map(|t| ProviderEvent::Delta {
                index: 0,
                delta: Delta::Text(t),
            }))
            .chain([
                ProviderEvent::Finish(finish),
                ProviderEvent::ItemDone { index: 0 },
                ProviderEvent::Usage(usage),
            ])
            .map(Ok);
        Ok(Box::pin(stream::iter(events)))
    }

    async fn complete(
        &self,
        req: &ProviderRequest,
        _ctx: &CallContext,
    ) -> Result<Completion, ProviderError> {
        let (deltas, usage, finish) = Self::answer(req);
        Ok(Completion::text(deltas.concat(), Some(usage), finish))
    }
}
