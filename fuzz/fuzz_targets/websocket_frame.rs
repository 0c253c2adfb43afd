//! Fuzz target `websocket_frame`: see `maniac_server::fuzzing::websocket_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    maniac_server::fuzzing::websocket_frame(data);
});
