//! Publishes a POST with a fresh key, amends it, and reads the post back.
//!
//! `cargo run -p raleph-sdk --example post -- http://127.0.0.1:4024` (a node must run there).

use raleph_sdk::{Chain, Client, Draft, PostFilter, Signer};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:4024".into());
    let client = Client::new(&api);
    let signer = Signer::generate(Chain::Eth)?;
    println!("key: {}", signer.address());

    let original = Draft::post("note", json!({"title": "first"}))
        .channel("TEST")
        .sign(&signer);
    let published = client.publish(&original, true).await?;
    println!("post {} {}", published.item_hash, published.status);

    let amend = Draft::amend(original.item_hash(), json!({"title": "second"}))
        .channel("TEST")
        .sign(&signer);
    client.publish(&amend, true).await?;

    let posts = client
        .posts(&PostFilter {
            hashes: vec![original.item_hash().to_owned()],
            ..Default::default()
        })
        .await?;
    for post in posts.posts {
        println!("{}: {}", post["original_item_hash"], post["content"]);
    }
    Ok(())
}
