//! See `sockit::fuzzing::chunked_body` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::chunked_body(data));
