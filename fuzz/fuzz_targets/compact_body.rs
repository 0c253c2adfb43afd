//! Fuzz target `compact_body`: see `maniac_server::fuzzing::compact_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::compact_body(data);
});
