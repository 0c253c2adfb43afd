//! Fuzz target `sse_reader`: see `maniac_server::fuzzing::sse_reader`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::sse_reader(data);
});
