//! Fuzz target `chat_body`: see `maniac_server::fuzzing::chat_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::chat_body(data);
});
