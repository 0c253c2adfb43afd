//! A create request checked and turned into a run: the provider, the
//! neutral provider request with its transcript, the `Response` skeleton
//! and the items to store.

use super::error::{EngineError, EngineResult};
use super::run::{RunFacts, RunMode};
use super::{Caller, Engine, transcript, validate};
use crate::api::*;
use crate::ids::{self, now_ms};
use crate::providers::{
    CallContext, ProviderRequest, Sampling, TranscriptItem, Unresolved,
};
use crate::routing::Resolved;
use crate::store::ItemRow;

/// A checked create request, ready to run.
pub(crate) struct Prepared {
    pub(crate) caller: Caller,
    pub(crate) route: Resolved,
    pub(crate) request: ProviderRequest,
    pub(crate) response: Response,
    pub(crate) input_items: Vec<ItemRow>,
    pub(crate) obfuscate: bool,
}

impl Prepared {
    /// The facts of the run about to start.
    pub(crate) fn facts(&self, mode: RunMode) -> RunFacts {
        RunFacts {
            response_id: self.response.id.clone(),
            org_id: self.caller.org_id.clone(),
            key_id: self.caller.key_id.clone(),
            provider: self.response.provider.clone(),
            model: self.response.model.clone(),
            mode,
            started: std::time::Instant::now(),
            first_output: None,
        }
    }

    /// The provider call context.
    pub(crate) fn context(
        &self,
        metrics: &crate::metrics::Metrics,
    ) -> CallContext {
        CallContext {
            metrics: Some(metrics.clone()),
            request_id: self.caller.request_id.clone(),
            org_id: self.caller.org_id.clone(),
            key_id: self.caller.key_id.clone(),
            ..CallContext::default()
        }
    }
}

impl Engine {
    /// What serves `full_model` (an alias, or `provider/model`), after
    /// the `strict_models` check.
    pub(crate) async fn resolve(
        &self,
        full_model: &str,
    ) -> EngineResult<Resolved> {
        let providers = &self.inner.providers;
        let route = providers.resolve(full_model).map_err(|e| match e {
            Unresolved::Malformed => EngineError::invalid_value(
                "model",
                format!(
                    "Invalid model '{full_model}': use the form \
                     'provider/model', for example 'echo/test' or \
                     'openai/gpt-4o-mini', or a configured alias."
                ),
            ),
            Unresolved::UnknownProvider(name) => EngineError::invalid(
                format!(
                    "Unknown provider '{name}' in model '{full_model}'. \
                     Configured providers: {}.",
                    providers.names().join(", ")
                ),
                Some("model"),
                Some("model_not_found"),
            ),
        })?;
        if let Resolved::Direct { target, .. } = &route {
            self.check_listed(
                target.provider.as_ref(),
                full_model,
                &target.model,
            )
            .await?;
        }
        Ok(route)
    }

    pub(crate) async fn prepare(
        &self,
        caller: &Caller,
        req: CreateResponse,
    ) -> EngineResult<Prepared> {
        self.prepare_with(caller, req, None).await
    }

    /// [`Engine::prepare`] with the transcript of `previous_response_id`
    /// already at hand (a WebSocket connection's last response), so the
    /// chain is not read from the database.
    pub(crate) async fn prepare_with(
        &self,
        caller: &Caller,
        req: CreateResponse,
        previous: Option<Vec<TranscriptItem>>,
    ) -> EngineResult<Prepared> {
        validate::check(&req)?;
        let full_model = req.model.clone().unwrap_or_default();
        let route = self.resolve(&full_model).await?;
        let provider_name = route.display_name();
        let model = route.first_model();
        let store = self.inner.store.clone();
        let mut transcript_items: Vec<TranscriptItem> = Vec::new();
        if let Some(local) = previous {
            transcript_items = local;
        } else if let Some(prev) = &req.previous_response_id {
            let items = store
                .chain_items(&caller.org_id, prev)
                .await?
                .ok_or_else(|| {
                    EngineError::invalid(
                        format!(
                            "Previous response with id '{prev}' not found."
                        ),
                        Some("previous_response_id"),
                        Some("previous_response_not_found"),
                    )
                })?;
            let unseal = self.unseal(&caller.org_id);
            for item in &items {
                transcript_items
                    .extend(transcript::from_stored(&item.body, unseal)?);
            }
        }
        let org = caller.org_id.clone();
        let keep_items = req.store.unwrap_or(true);
        let turn = transcript::resolve_input(
            req.input.as_ref(),
            keep_items,
            self.unseal(&caller.org_id),
            |id| {
                let (store, org) = (store.clone(), org.clone());
                async move { Ok(store.find_item(&org, &id).await?) }
            },
        )
        .await?;
        transcript_items.extend(turn.transcript);
        let format = req.text.as_ref().and_then(|t| t.format.clone());
        let request = ProviderRequest {
            model: model.to_string(),
            instructions: req.instructions.clone(),
            transcript: transcript_items,
            sampling: Sampling {
                max_output_tokens: req.max_output_tokens,
                temperature: req.temperature,
                top_p: req.top_p,
                presence_penalty: req.presence_penalty,
                frequency_penalty: req.frequency_penalty,
                ..Sampling::default()
            },
            reasoning_effort: req
                .reasoning
                .as_ref()
                .and_then(|r| r.effort.clone()),
            output_format: format.clone(),
            user: req.safety_identifier.clone().or_else(|| req.user.clone()),
            ..ProviderRequest::default()
        };
        let caps = route.capabilities();
        if !caps.images && request.has_images() {
            return Err(EngineError::invalid(
                format!(
                    "The provider '{provider_name}' does not accept images: \
                     remove the `input_image` parts."
                ),
                Some("input"),
                Some("unsupported_parameter"),
            ));
        }
        if !caps.json_schema
            && matches!(format, Some(TextFormat::JsonSchema { .. }))
        {
            return Err(EngineError::invalid(
                format!(
                    "The provider '{provider_name}' does not support \
                     `json_schema` output: use `json_object` or plain text."
                ),
                Some("text.format"),
                Some("unsupported_parameter"),
            ));
        }
        let background = req.background.unwrap_or(false);
        let response = Response {
            id: ids::response_id(),
            object: ResponseObject::Response,
            created_at: now_ms() / 1000,
            status: if background {
                ResponseStatus::Queued
            } else {
                ResponseStatus::InProgress
            },
            completed_at: None,
            background,
            error: None,
            incomplete_details: None,
            instructions: req.instructions,
            max_output_tokens: req.max_output_tokens,
            max_tool_calls: req.max_tool_calls,
            model: full_model.clone(),
            output: Vec::new(),
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            previous_response_id: req.previous_response_id,
            reasoning: req.reasoning.unwrap_or_default(),
            service_tier: Some(match req.service_tier.as_deref() {
                None | Some("auto") => "default".to_string(),
                Some(t) => t.to_string(),
            }),
            store: req.store.unwrap_or(true),
            temperature: req.temperature.unwrap_or(1.0),
            top_p: req.top_p.unwrap_or(1.0),
            presence_penalty: req.presence_penalty.unwrap_or(0.0),
            frequency_penalty: req.frequency_penalty.unwrap_or(0.0),
            top_logprobs: req.top_logprobs.unwrap_or(0),
            text: TextConfig {
                format: Some(format.unwrap_or(TextFormat::Text)),
                verbosity: Some(
                    req.text
                        .and_then(|t| t.verbosity)
                        .unwrap_or(Verbosity::Medium),
                ),
            },
            tool_choice: req.tool_choice.unwrap_or_else(|| "auto".into()),
            tools: Vec::new(),
            truncation: req.truncation.unwrap_or(Truncation::Disabled),
            usage: None,
            user: req.user,
            safety_identifier: req.safety_identifier,
            prompt_cache_key: req.prompt_cache_key,
            metadata: req.metadata.unwrap_or_default(),
            provider: route.first_provider().to_string(),
            tags: req.tags.unwrap_or_default(),
            trace: req.trace,
        };
        let obfuscate = req
            .stream_options
            .and_then(|o| o.include_obfuscation)
            .unwrap_or(true);
        Ok(Prepared {
            caller: caller.clone(),
            route,
            request,
            response,
            input_items: turn.items,
            obfuscate,
        })
    }
}
