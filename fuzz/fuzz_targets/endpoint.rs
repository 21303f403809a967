//! See `sockit::fuzzing::endpoint` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::endpoint(data));
