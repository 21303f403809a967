//! sockit: sockets from the shell and from Rust.
//!
//! The library behind the `sockit` command: the tutorial's threaded
//! "Hello, world!" server grown into a server core that runs any
//! [`Service`](service::Service) on any listener, and its client.
//!
//! ```no_run
//! use sockit::{server::Server, service::Hello};
//!
//! #[tokio::main]
//! async fn main() -> sockit::Result<()> {
//!     let server = Server::builder().listen("8888".parse()?).bind(Hello::default()).await?;
//!     server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//!
//! - [`endpoint`]: the one endpoint parser (`8888`, `[::1]:8888`, `unix:@name`, …)
//! - [`socket`]: the one place a socket is opened (socket2 options, then tokio)
//! - [`seqpacket`]: Unix `SOCK_SEQPACKET` sockets driven by tokio, keeping message boundaries
//! - [`server`]: the server builder, the one accept loop (any per-connection handler: every service, and the relay), the one datagram loop, socket files, limits, shutdown
//! - [`conn`]: what a service is handed per connection: [`Conn`](conn::Conn), the socket behind the timeouts
//! - [`service`]: the services, one per file behind one trait
//! - [`http`]: HTTP/1.x request framing per RFC 9112: heads over `httparse`, a strict chunked reader
//! - [`bench`](mod@bench): `sockit bench`, the load generator: load loop, rate profiles, histogram, report, per-second series, saved runs and merge, `--find-max`, plots
//! - [`client`]: `send`, the tutorial's client
//! - [`bridge`]: standard input and output bridged to a socket (netcat)
//! - [`ping`]: ICMP echo over datagram or raw sockets, and its packets
//! - [`scan`]: `sockit scan`, the port scanner: PORTS and HOST parsing, TCP and UDP probes, RTT-adapted waits, the descriptor-bounded window, `--wait-until-open`, result lines
//! - [`relay`]: `sockit relay FROM TO` (socat's job): pairs, splice, exec children
//! - [`escape`]: bytes shown to people
//! - [`logging`]: plain log lines on stderr through a non-blocking writer
//! - [`error`]: the error type

#![deny(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

pub mod bench;
pub mod bridge;
pub mod client;
pub mod conn;
pub mod endpoint;
pub mod error;
pub mod escape;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod ping;
pub mod relay;
pub mod scan;
pub mod seqpacket;
pub mod server;
pub mod service;
pub mod socket;
pub mod tls;

pub use endpoint::Endpoint;
pub use error::{Error, Result};
