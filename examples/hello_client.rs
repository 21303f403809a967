//! The tutorial's client on the sockit library.
//!
//! Run: `cargo run --example hello_client [ADDR]` with a server running
//! (`cargo run --example hello_server`, or `sockit serve`).

use sockit::client::{send, SendOptions};
use sockit::escape::Escaped;
use sockit::Endpoint;

#[tokio::main(flavor = "current_thread")]
async fn main() -> sockit::Result<()> {
    let addr: Endpoint = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => Endpoint::default_connect(),
    };
    let reply = send(&addr, b"Hello, world", &SendOptions::default()).await?;
    println!("Received b'{}'", Escaped::new(&reply));
    Ok(())
}
