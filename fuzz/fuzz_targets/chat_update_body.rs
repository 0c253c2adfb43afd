//! Fuzz target `chat_update_body`: see `maniac_server::fuzzing::chat_update_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::chat_update_body(data);
});
