//! Wire types of `GET /v1/models`: OpenAI's model objects, with ids in
//! the gateway's `provider/model` form.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::ListObject;

/// The `model` object type tag.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub enum ModelObjectType {
    /// A model.
    #[default]
    #[serde(rename = "model")]
    Model,
}

/// A model the gateway can route to.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Model {
    /// `provider/model`, as `model` takes it.
    pub id: String,
    /// Always `model`.
    pub object: ModelObjectType,
    /// Unix seconds (when this gateway started serving it).
    pub created: i64,
    /// The provider that serves it.
    pub owned_by: String,
}

/// The models of every configured provider.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: ListObject,
    /// The models.
    pub data: Vec<Model>,
}

/// Path parameter naming a model.
#[derive(Deserialize, JsonSchema)]
pub struct ModelPath {
    /// `provider/model`, its `/` percent-encoded (`echo%2Fecho`).
    pub model: String,
}

/// A model id whose `/` arrived unencoded (`/v1/models/echo/echo`).
#[derive(Deserialize, JsonSchema)]
pub struct ModelRawPath {
    /// The provider part.
    pub model: String,
    /// The rest of the id.
    pub rest: Vec<String>,
}
