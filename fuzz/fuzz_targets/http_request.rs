//! See `sockit::fuzzing::http_request` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::http_request(data));
