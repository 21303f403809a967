//! The tutorial's server on the sockit library, in a few lines.
//!
//! Run: `cargo run --example hello_server` then, in another shell,
//! `cargo run --example hello_client` (or `curl localhost:8888`).

use sockit::server::Server;
use sockit::service::Hello;

#[tokio::main]
async fn main() -> sockit::Result<()> {
    // Port 8888 on all interfaces, SO_REUSEADDR, backlog 1024, one task per
    // connection: all defaults of the builder.
    let server = Server::builder().bind(Hello::default()).await?;
    for addr in server.local_addrs() {
        println!("Serving HTTP on {addr} ...");
    }
    let summary = server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    println!("{summary}");
    Ok(())
}
