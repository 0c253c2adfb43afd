//! Fuzz target `create_body`: see `maniac_server::fuzzing::create_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::create_body(data);
});
