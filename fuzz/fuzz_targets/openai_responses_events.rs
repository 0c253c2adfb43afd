//! Fuzz target `openai_responses_events`: see `maniac_server::fuzzing::openai_responses_events`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::openai_responses_events(data);
});
