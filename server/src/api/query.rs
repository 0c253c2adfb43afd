//! Query strings of the read endpoints.
//!
//! The official SDKs send arrays as repeated `include[]=…` keys, which the
//! derived deserializers of `serde_urlencoded` reject as duplicates, so these
//! types deserialize by hand from the key/value pairs.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::types::Order;

/// Query of `GET /v1/responses/{response_id}`.
#[derive(Clone, Debug, Default, JsonSchema)]
pub struct ResponseViewQuery {
    /// Extra output to include (accepted for compatibility; the key may
    /// repeat, as the official SDKs send it).
    #[serde(rename = "include[]")]
    #[schemars(with = "Option<String>")]
    pub include: Option<Vec<String>>,
    /// Stream the events of a background response instead of returning the
    /// object: replays the event log, then follows the run live.
    pub stream: Option<bool>,
    /// With `stream=true`, only events with a greater `sequence_number`.
    #[schemars(range(min = 0))]
    pub starting_after: Option<i64>,
    /// With `stream=true`, whether delta events carry `obfuscation`
    /// padding.
    pub include_obfuscation: Option<bool>,
}

/// Query of `GET /v1/responses/{response_id}/input_items`.
#[derive(Clone, Debug, Default, JsonSchema)]
pub struct InputItemsQuery {
    /// List items after this item id (cursor from `last_id`).
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// `asc` or `desc` (default `desc`).
    pub order: Option<Order>,
    /// Extra output to include (accepted for compatibility; the key may
    /// repeat, as the official SDKs send it).
    #[serde(rename = "include[]")]
    #[schemars(with = "Option<String>")]
    pub include: Option<Vec<String>>,
}

/// Query of `GET /v1/chat/completions`.
#[derive(Clone, Debug, Default, JsonSchema)]
pub struct ChatListQuery {
    /// Completions after this id (cursor from `last_id`).
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// `asc` (default) or `desc`, by creation time.
    pub order: Option<Order>,
    /// Only completions of this model.
    pub model: Option<String>,
    /// Only completions whose metadata has every `metadata[key]=value`
    /// pair given (a key may be given once).
    #[schemars(skip)]
    pub metadata: Vec<(String, String)>,
}

/// Query of `GET /v1/chat/completions/{completion_id}/messages`.
#[derive(Clone, Debug, Default, JsonSchema)]
pub struct ChatMessagesQuery {
    /// Messages after this id (cursor from `last_id`).
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    /// `asc` (default) or `desc`, by position.
    pub order: Option<Order>,
}

/// Collects query pairs, keeping repeated keys.
struct Pairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("query parameters")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = map.next_entry::<String, String>()? {
                    out.push(kv);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_bool<E: serde::de::Error>(key: &str, v: &str) -> Result<bool, E> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(E::custom(format!(
            "Invalid value for '{key}': expected true or false, got '{v}'."
        ))),
    }
}

fn parse_int<E: serde::de::Error>(key: &str, v: &str) -> Result<i64, E> {
    v.parse().map_err(|_| {
        E::custom(format!(
            "Invalid value for '{key}': expected an integer, got '{v}'."
        ))
    })
}

fn unknown<E: serde::de::Error>(key: &str) -> E {
    E::custom(format!("Unknown parameter: '{key}'."))
}

impl<'de> Deserialize<'de> for ResponseViewQuery {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut q = ResponseViewQuery::default();
        for (k, v) in Pairs::deserialize(d)?.0 {
            match k.as_str() {
                "include[]" | "include" => {
                    q.include.get_or_insert_with(Vec::new).push(v)
                }
                "stream" => q.stream = Some(parse_bool(&k, &v)?),
                "starting_after" => q.starting_after = Some(parse_int(&k, &v)?),
                "include_obfuscation" => {
                    q.include_obfuscation = Some(parse_bool(&k, &v)?)
                }
                _ => return Err(unknown(&k)),
            }
        }
        Ok(q)
    }
}

fn parse_order<E: serde::de::Error>(v: &str) -> Result<Order, E> {
    match v {
        "asc" => Ok(Order::Asc),
        "desc" => Ok(Order::Desc),
        _ => Err(E::custom(format!(
            "Invalid value for 'order': expected 'asc' or 'desc', got '{v}'."
        ))),
    }
}

impl<'de> Deserialize<'de> for ChatListQuery {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut q = ChatListQuery::default();
        for (k, v) in Pairs::deserialize(d)?.0 {
            match k.as_str() {
                "after" => q.after = Some(v),
                "limit" => q.limit = Some(parse_int(&k, &v)?),
                "order" => q.order = Some(parse_order(&v)?),
                "model" => q.model = Some(v),
                _ => match k
                    .strip_prefix("metadata[")
                    .and_then(|r| r.strip_suffix(']'))
                {
                    Some(key) => q.metadata.push((key.to_string(), v)),
                    None => return Err(unknown(&k)),
                },
            }
        }
        Ok(q)
    }
}

impl<'de> Deserialize<'de> for ChatMessagesQuery {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut q = ChatMessagesQuery::default();
        for (k, v) in Pairs::deserialize(d)?.0 {
            match k.as_str() {
                "after" => q.after = Some(v),
                "limit" => q.limit = Some(parse_int(&k, &v)?),
                "order" => q.order = Some(parse_order(&v)?),
                _ => return Err(unknown(&k)),
            }
        }
        Ok(q)
    }
}

impl<'de> Deserialize<'de> for InputItemsQuery {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut q = InputItemsQuery::default();
        for (k, v) in Pairs::deserialize(d)?.0 {
            match k.as_str() {
                "include[]" | "include" => {
                    q.include.get_or_insert_with(Vec::new).push(v)
                }
                "after" => q.after = Some(v),
                "limit" => q.limit = Some(parse_int(&k, &v)?),
                "order" => {
                    q.order = Some(match v.as_str() {
                        "asc" => Order::Asc,
                        "desc" => Order::Desc,
                        _ => {
                            return Err(D::Error::custom(format!(
                                "Invalid value for 'order': expected 'asc' \
                                 or 'desc', got '{v}'."
                            )));
                        }
                    })
                }
                _ => return Err(unknown(&k)),
            }
        }
        Ok(q)
    }
}
