//! See `sockit::fuzzing::hello_exchange` for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sockit::fuzzing::hello_exchange(data));
