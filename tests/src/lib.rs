//! Test support: fake OpenAI-compatible and Anthropic upstreams and a
//! real-gateway harness.

pub mod anthropic;
pub mod harness;
pub mod process;
pub mod proxy;
pub mod upstream;
