//! Integration tests: one binary (link time matters on 2 cores), one module
//! per command, shared helpers in `common`.

mod bench;
mod common;
mod send;
mod serve;
