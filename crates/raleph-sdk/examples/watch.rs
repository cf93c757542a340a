//! Prints the messages a node processes on one channel, as they come, until ctrl-c.
//!
//! `cargo run -p raleph-sdk --example watch -- http://127.0.0.1:4024 TEST`

use futures::StreamExt;
use raleph_sdk::{Client, MessageFilter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let api = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:4024".into());
    let channel = args.next().unwrap_or_else(|| "TEST".into());
    let filter = MessageFilter {
        channels: vec![channel],
        ..Default::default()
    };
    // The five latest first, then each new one.
    let mut messages = Box::pin(Client::new(&api).watch(&filter, Some(5)).await?);
    while let Some(message) = messages.next().await {
        let message = message?;
        println!(
            "{} {} from {}",
            message["type"].as_str().unwrap_or("?"),
            message["item_hash"].as_str().unwrap_or("?"),
            message["sender"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}
