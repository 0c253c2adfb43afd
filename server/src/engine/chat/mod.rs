//! The Chat Completions front end on the item-level core: a request is
//! checked and translated ([`prepare`]), run by the shared driver into a
//! [`builder::ChatBuilder`], delivered as JSON or chunks, and stored when
//! asked ([`stored`] serves the stored completions).

mod builder;
mod prepare;
mod stored;
#[cfg(test)]
mod tests;

/// The request check, for the fuzz targets (`crate::fuzzing`).
pub(crate) use prepare::check;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use builder::ChatBuilder;
use prepare::{PreparedChat, StoreChat};

use super::error::{EngineError, EngineResult};
use super::run::{
    RunFacts, RunMode, Sink, Stop, Upstream, Wake, upstream_failure,
};
use super::{Caller, Engine, Reply};
use crate::api::*;
use crate::ids::now_ms;
use crate::store::{NewChatCompletion, SharedStore};

/// Writes a finished completion with its request messages.
struct Persist {
    store: SharedStore,
    org_id: String,
    chat: StoreChat,
}

impl Persist {
    /// Stores the completion; returns its JSON.
    async fn write(&mut self, b: &ChatBuilder) -> EngineResult<String> {
        let mut c = b.completion();
        c.metadata = serde_json::from_str(&self.chat.metadata).ok();
        let body = serde_json::to_string(&c)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.store
            .insert_chat_completion(NewChatCompletion {
                id: c.id.clone(),
                org_id: self.org_id.clone(),
                model: c.model.clone(),
                metadata: std::mem::take(&mut self.chat.metadata),
                body: body.clone(),
                messages: std::mem::take(&mut self.chat.messages),
                created_at: now_ms(),
            })
            .await?;
        Ok(body)
    }
}

/// The JSON answer; a stored completion is written before it is answered.
struct JsonSink {
    persist: Option<Persist>,
    body: Option<Bytes>,
}

#[async_trait]
impl Sink<ChatBuilder> for JsonSink {
    async fn finish(
        &mut self,
        b: &ChatBuilder,
        _terminal: Vec<Bytes>,
    ) -> Result<bool, EngineError> {
        if let Some(p) = self.persist.as_mut() {
            self.body = Some(Bytes::from(p.write(b).await?));
        }
        Ok(true)
    }
}

/// Chunks to the caller; a client that leaves cancels the upstream call.
struct SseSink {
    tx: mpsc::Sender<Bytes>,
    persist: Option<Persist>,
}

#[async_trait]
impl Sink<ChatBuilder> for SseSink {
    async fn send(
        &mut self,
        evs: Vec<Bytes>,
        _b: &ChatBuilder,
    ) -> Result<(), Stop> {
        for e in evs {
            if self.tx.send(e).await.is_err() {
                return Err(Stop::Gone);
            }
        }
        Ok(())
    }

    async fn wait(&mut self) -> Wake {
        self.tx.closed().await;
        Wake::Gone
    }

    async fn tick(&mut self, wake: Wake, _b: &ChatBuilder) -> Result<(), Stop> {
        match wake {
            Wake::Gone => Err(Stop::Gone),
            _ => Ok(()),
        }
    }

    async fn finish(
        &mut self,
        b: &ChatBuilder,
        mut terminal: Vec<Bytes>,
    ) -> Result<bool, EngineError> {
        let done = b.status() != ResponseStatus::Failed
            && b.status() != ResponseStatus::Cancelled;
        if done
            && let Some(p) = self.persist.as_mut()
            && let Err(e) = p.write(b).await
        {
            tracing::error!(completion_id = %b.id(), error = %e, "could not store streamed chat completion");
            let msg = "The completion finished but could not be stored; it \
                       cannot be retrieved. Please retry.";
            let frame = serde_json::json!({"error": {"message": msg,
                "type": "server_error", "param": null, "code": "server_error"}});
            // Before `[DONE]`, after the usage chunk.
            let at = terminal.len().saturating_sub(1);
            terminal.insert(at, Bytes::from(format!("data: {frame}\n\n")));
        }
        for e in terminal {
            if self.tx.send(e).await.is_err() {
                break;
            }
        }
        Ok(true)
    }
}

use super::run::RunBuilder as _;

impl Engine {
    /// `POST /v1/chat/completions`.
    pub async fn chat_create(
        &self,
        caller: &Caller,
        req: CreateChatCompletion,
    ) -> EngineResult<Reply<ChatCompletion>> {
        let p = self.prepare_chat(caller, req).await?;
        crate::metrics::notes::note(|n| {
            n.model = Some(p.head.model.clone());
            n.object_id = Some(p.head.id.clone());
            n.provider = Some(p.head.provider.clone());
        });
        tracing::debug!(
            request_id = %caller.request_id,
            org = %caller.org_id,
            completion_id = %p.head.id,
            model = %p.head.model,
            stream = p.stream,
            store = p.store.is_some(),
            "chat completion create"
        );
        if p.stream {
            self.chat_stream(p).await
        } else {
            self.chat_json(p).await
        }
    }

    fn chat_facts(&self, p: &PreparedChat, mode: RunMode) -> RunFacts {
        RunFacts {
            response_id: p.head.id.clone(),
            org_id: p.caller.org_id.clone(),
            key_id: p.caller.key_id.clone(),
            provider: p.head.provider.clone(),
            model: p.head.model.clone(),
            mode,
            started: std::time::Instant::now(),
            first_output: None,
        }
    }

    fn chat_persist(&self, p: &mut PreparedChat) -> Option<Persist> {
        p.store.take().map(|chat| Persist {
            store: self.inner.store.clone(),
            org_id: p.caller.org_id.clone(),
            chat,
        })
    }

    async fn chat_json(
        &self,
        mut p: PreparedChat,
    ) -> EngineResult<Reply<ChatCompletion>> {
        let mut facts = self.chat_facts(&p, RunMode::Json);
        let ctx = p.context(&self.inner.metrics);
        let (completion, served) = p
            .route
            .complete(&mut p.request, &ctx)
            .await
            .map_err(|f| upstream_failure(&f.provider, f.error))?;
        p.head.provider.clone_from(&served.provider);
        facts.provider = served.provider;
        let mut sink =
            JsonSink { persist: self.chat_persist(&mut p), body: None };
        let b = ChatBuilder::new(p.head, false, false);
        let Some((b, outcome)) = self
            .drive(
                b,
                Upstream::Whole(completion),
                &mut sink,
                &CancellationToken::new(),
                facts,
            )
            .await
        else {
            return Err(EngineError::Internal("a JSON run was lost".into()));
        };
        outcome?;
        match sink.body {
            Some(body) => Ok(Reply::Encoded(body)),
            None => Ok(Reply::Json(Box::new(b.completion()))),
        }
    }

    async fn chat_stream(
        &self,
        mut p: PreparedChat,
    ) -> EngineResult<Reply<ChatCompletion>> {
        let mut facts = self.chat_facts(&p, RunMode::Sse);
        let ctx = p.context(&self.inner.metrics);
        let (upstream, served) = p
            .route
            .stream(&mut p.request, &ctx)
            .await
            .map_err(|f| upstream_failure(&f.provider, f.error))?;
        p.head.provider.clone_from(&served.provider);
        facts.provider = served.provider;
        let (tx, rx) = mpsc::channel(256);
        let mut sink = SseSink { tx, persist: self.chat_persist(&mut p) };
        let b = ChatBuilder::new(p.head, true, p.include_usage);
        let engine = self.clone();
        tokio::spawn(async move {
            let _ = engine
                .drive(
                    b,
                    Upstream::Events(upstream),
                    &mut sink,
                    &CancellationToken::new(),
                    facts,
                )
                .await;
        });
        Ok(Reply::Stream(rx))
    }
}
