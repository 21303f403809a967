//! Integration tests: one binary (link time matters on 2 cores), one module
//! per command, shared helpers in `common`.

mod bench;
mod common;
mod conformance;
mod errors;
mod framing;
mod hardening;
mod limits;
mod netcat;
mod ping;
mod relay;
mod scan;
mod send;
mod serve;
mod tls;
mod transports;
