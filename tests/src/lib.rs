//! Test support: fake OpenAI-compatible upstreams (Chat Completions and
//! Responses) and a real-gateway harness.

pub mod harness;
pub mod process;
pub mod responses_upstream;
pub mod upstream;
