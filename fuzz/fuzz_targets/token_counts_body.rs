//! Fuzz target `token_counts_body`: see `maniac_server::fuzzing::token_counts_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::token_counts_body(data);
});
