//! Integration tests: one binary (link time matters on 2 cores), one module
//! per command, shared helpers in `common`.

mod bench;
mod common;
mod errors;
mod hardening;
mod netcat;
mod ping;
mod relay;
mod send;
mod serve;
mod transports;
