//! Fuzz target `openai_chat_chunks`: see `maniac_server::fuzzing::openai_chat_chunks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::openai_chat_chunks(data);
});
