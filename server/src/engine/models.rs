//! `GET /v1/models`: the configured providers' models, as OpenAI lists
//! them, with `provider/model` ids.

use super::Engine;
use super::error::{EngineError, EngineResult};
use crate::api::{ListObject, Model, ModelList, ModelObjectType};
use crate::providers::Provider;

fn model_not_found(id: &str) -> EngineError {
    EngineError::NotFound {
        message: format!(
            "The model '{id}' does not exist. List the models with \
             GET /v1/models."
        ),
        param: Some("model".into()),
        code: Some("model_not_found"),
    }
}

impl Engine {
    /// Every listed model.
    pub async fn models(&self) -> ModelList {
        let providers = &self.inner.providers;
        let mut data: Vec<Model> = providers
            .models()
            .await
            .into_iter()
            .map(|(provider, m)| self.model_object(provider, &m))
            .collect();
        for alias in providers.alias_names() {
            if !data.iter().any(|m| m.id == alias) {
                data.push(self.alias_object(alias));
            }
        }
        ModelList { object: ListObject::List, data }
    }

    /// One listed model by its `provider/model` id.
    pub async fn model(&self, id: &str) -> EngineResult<Model> {
        if self.inner.providers.is_alias(id) {
            return Ok(self.alias_object(id));
        }
        let found = match id.split_once('/') {
            Some((p, m)) => match self.inner.providers.get(p) {
                Some(provider) => {
                    provider.models().await.iter().any(|x| x == m)
                }
                None => false,
            },
            None => false,
        };
        if !found {
            return Err(model_not_found(id));
        }
        let (p, m) = id.split_once('/').unwrap_or((id, ""));
        Ok(self.model_object(p, m))
    }

    /// A 404 `model_not_found` unless the provider lists `model` or lets
    /// unlisted models be called (the default). Checked before any
    /// upstream call, on both front ends.
    pub(crate) async fn check_listed(
        &self,
        provider: &dyn Provider,
        full_model: &str,
        model: &str,
    ) -> EngineResult<()> {
        if !provider.strict_models()
            || provider.models().await.iter().any(|m| m == model)
        {
            return Ok(());
        }
        Err(model_not_found(full_model))
    }

    /// An alias, owned by the provider its name starts with (an alias
    /// such as `openai/gpt-4.1`), else by `maniac`.
    fn alias_object(&self, alias: &str) -> Model {
        let owner = alias
            .split_once('/')
            .map(|(p, _)| p)
            .filter(|p| self.inner.providers.get(p).is_some())
            .unwrap_or("maniac");
        Model {
            id: alias.to_string(),
            object: ModelObjectType::Model,
            created: self.inner.started_at,
            owned_by: owner.to_string(),
        }
    }

    fn model_object(&self, provider: &str, model: &str) -> Model {
        Model {
            id: format!("{provider}/{model}"),
            object: ModelObjectType::Model,
            created: self.inner.started_at,
            owned_by: provider.to_string(),
        }
    }
}
