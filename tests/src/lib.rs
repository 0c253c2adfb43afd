//! Test support: fake upstreams (OpenAI Chat Completions, OpenAI
//! Responses, Anthropic Messages), a fake HTTP proxy and a real-gateway
//! harness.

pub mod anthropic;
pub mod harness;
pub mod process;
pub mod proxy;
pub mod responses_upstream;
pub mod upstream;
