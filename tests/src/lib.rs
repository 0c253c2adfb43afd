//! Test support: a fake OpenAI-compatible upstream and a real-gateway harness.

pub mod harness;
pub mod process;
pub mod proxy;
pub mod upstream;
