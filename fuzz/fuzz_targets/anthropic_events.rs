//! Fuzz target `anthropic_events`: see `maniac_server::fuzzing::anthropic_events`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::anthropic_events(data);
});
