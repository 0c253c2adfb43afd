//! `GET /v1/models`: the configured providers' models, as OpenAI lists
//! them, with `provider/model` ids.

use super::Engine;
use super::error::{EngineError, EngineResult};
use crate::api::{ListObject, Model, ModelList, ModelObjectType};

impl Engine {
    /// Every listed model.
    pub fn models(&self) -> ModelList {
        let data = self
            .inner
            .providers
            .models()
            .into_iter()
            .map(|(provider, m)| self.model_object(provider, &m))
            .collect();
        ModelList { object: ListObject::List, data }
    }

    /// One listed model by its `provider/model` id.
    pub fn model(&self, id: &str) -> EngineResult<Model> {
        self.inner
            .providers
            .models()
            .into_iter()
            .find(|(p, m)| {
                id.len() == p.len() + 1 + m.len()
                    && id.starts_with(p)
                    && id[p.len()..].starts_with('/')
                    && id.ends_with(m.as_str())
            })
            .map(|(p, m)| self.model_object(p, &m))
            .ok_or_else(|| EngineError::NotFound {
                message: format!(
                    "The model '{id}' does not exist. List the models with \
                     GET /v1/models."
                ),
                param: Some("model".into()),
                code: Some("model_not_found"),
            })
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
