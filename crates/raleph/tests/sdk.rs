//! raleph-sdk against a real node: every builder's message, signed by ETH and SOL keys, is
//! processed; delegated writes; the typed reads and filters; the websocket stream.

mod support;

use futures::StreamExt;
use raleph_sdk::{
    Chain, Client, Draft, InstanceSpec, MessageFilter, MessageType, PostFilter, ProgramSpec, Signer,
};
use serde_json::{Map, json};
use support::RunningNode;

async fn processed(client: &Client, draft: Draft, signer: &Signer) -> String {
    let message = draft.channel("SDK").sign(signer);
    let publication = match client.publish(&message, true).await {
        Ok(publication) => publication,
        Err(e) => {
            let why = client.message(message.item_hash()).await;
            panic!("{e}: {why:?}\n{}", message.json())
        }
    };
    assert_eq!(publication.status, "processed", "{}", message.json());
    assert_eq!(publication.http_status, 200);
    let status = client
        .message_status(message.item_hash())
        .await
        .expect("status");
    assert_eq!(status.status, "processed");
    let served = status.message.expect("the message");
    // The node serves the exact bytes signed.
    assert_eq!(served["item_content"], message.json()["item_content"]);
    message.item_hash().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builder_is_processed_for_eth_and_sol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let client = Client::new(&node.url);
    for chain in [Chain::Eth, Chain::Sol] {
        let signer = Signer::generate(chain).expect("key");
        let post = processed(&client, Draft::post("note", json!({"a": "é"})), &signer).await;
        processed(&client, Draft::amend(&post, json!({"a": 2})), &signer).await;
        let mut value = Map::new();
        value.insert("k".into(), json!(1));
        processed(
            &client,
            Draft::aggregate("settings", value.clone()),
            &signer,
        )
        .await;
        // A FORGET names aggregate keys as item hashes (the reference's model types them so).
        let hex_key = "ab".repeat(32);
        processed(&client, Draft::aggregate(&hex_key, value), &signer).await;

        // STORE through the upload (the file with its message), then volumes built on it.
        let file = dir.path().join(format!("image-{chain}"));
        std::fs::write(&file, vec![7u8; 4096]).expect("write");
        let sha256 = raleph_sdk::sha256_file(&file, |_| {}).await.expect("hash");
        let store = Draft::store(&sha256).channel("SDK").sign(&signer);
        let (status, body) = client
            .upload_file(&file, Some(store.json()), |_| {})
            .await
            .expect("upload");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            client
                .message_status(store.item_hash())
                .await
                .expect("status")
                .status,
            "processed"
        );
        let store_ref = store.item_hash().to_owned();
        // A second version of the file, by reference.
        processed(
            &client,
            Draft::store(&sha256).reference(&store_ref),
            &signer,
        )
        .await;

        let program = ProgramSpec {
            code_ref: store_ref.clone(),
            encoding: "zip".into(),
            entrypoint: "main:app".into(),
            use_latest: false,
            runtime_ref: store_ref.clone(),
            runtime_comment: "test".into(),
            memory_mib: 128,
            vcpus: 1,
            seconds: 30,
            internet: false,
            variables: Map::new(),
            on_message: Vec::new(),
            volumes: Vec::new(),
            allow_amend: false,
            replaces: None,
        };
        processed(&client, Draft::program(&program), &signer).await;
        let mut instance = InstanceSpec::new(&store_ref, 10);
        instance.payment = Some("credit".into());
        instance.authorized_keys = vec!["ssh-ed25519 AAAA test".into()];
        processed(&client, Draft::instance(&instance), &signer).await;

        let forget = processed(&client, Draft::forget(&[&post], Some("done")), &signer).await;
        let forgotten = client.message_status(&post).await.expect("status");
        assert_eq!(forgotten.status, "forgotten");
        assert_eq!(forgotten.forgotten_by, Some(vec![forget]));
        let key_forget = Draft::forget::<&str>(&[], None).forget_aggregates(&[&hex_key]);
        processed(&client, key_forget, &signer).await;
        assert_eq!(
            client
                .aggregate(&signer.address(), &hex_key)
                .await
                .expect("read"),
            None
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegates_write_on_behalf_of_owners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let client = Client::new(&node.url);
    let owner = Signer::generate(Chain::Eth).expect("key");
    let delegate = Signer::generate(Chain::Sol).expect("key");

    let refused = Draft::post("note", json!({"by": "delegate"}))
        .on_behalf_of(&owner.address())
        .channel("SDK")
        .sign(&delegate);
    let error = client
        .publish(&refused, true)
        .await
        .expect_err("no grant yet");
    assert!(
        matches!(error, raleph_sdk::ClientError::Rejected { .. }),
        "{error}"
    );

    let mut grant = Map::new();
    grant.insert(
        "authorizations".into(),
        json!([{"address": delegate.address(), "types": ["POST"]}]),
    );
    processed(&client, Draft::aggregate("security", grant), &owner).await;
    let hash = processed(
        &client,
        Draft::post("note", json!({"by": "delegate", "n": 2})).on_behalf_of(&owner.address()),
        &delegate,
    )
    .await;
    let posts = client
        .posts(&PostFilter {
            addresses: vec![owner.address()],
            ..Default::default()
        })
        .await
        .expect("posts");
    assert_eq!(posts.pagination_total, 1);
    assert_eq!(posts.posts[0]["item_hash"], hash.as_str());
    assert_eq!(posts.posts[0]["content"], json!({"by": "delegate", "n": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_reads_and_the_websocket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let client = Client::new(&node.url);
    let alice = Signer::generate(Chain::Eth).expect("key");
    let bob = Signer::generate(Chain::Sol).expect("key");
    let mut hashes = Vec::new();
    for (i, signer) in [&alice, &bob, &alice].into_iter().enumerate() {
        let draft =
            Draft::post("note", json!({"i": i, "tags": ["t"]})).time(1_700_000_000.0 + i as f64);
        hashes.push(processed(&client, draft, signer).await);
    }
    let mut tagged = Map::new();
    tagged.insert("tags".into(), json!(["t"]));
    processed(&client, Draft::aggregate("a", tagged), &bob).await;

    let page = client
        .list_messages(&MessageFilter {
            addresses: vec![alice.address()],
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.pagination_total, 2);
    assert_eq!(page.messages[0]["item_hash"], hashes[2].as_str());
    let page = client
        .list_messages(&MessageFilter {
            types: vec![MessageType::Aggregate],
            chains: vec![Chain::Sol],
            tags: vec!["t".into()],
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.pagination_total, 1);
    let page = client
        .list_messages(&MessageFilter {
            types: vec![MessageType::Post],
            start_date: Some(1_700_000_000.5),
            end_date: Some(1_700_000_002.0),
            sort_order: Some(raleph_sdk::SortOrder::Ascending),
            pagination: Some(1),
            page: Some(1),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.pagination_total, 1);
    assert_eq!(page.messages[0]["item_hash"], hashes[1].as_str());

    assert!(
        client
            .aggregates(&alice.address(), &[])
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        client.aggregate(&bob.address(), "a").await.expect("read"),
        Some(json!({"tags": ["t"]}))
    );
    assert!(
        client
            .version()
            .await
            .expect("version")
            .starts_with("raleph")
    );
    let metrics = client.metrics().await.expect("metrics");
    assert!(
        metrics
            .iter()
            .any(|(name, value)| name == "pyaleph_status_sync_messages_total" && *value == 4.0),
        "{metrics:?}"
    );

    // The websocket: one message of history (which proves the node subscribed), then live.
    let stream = client
        .watch(
            &MessageFilter {
                addresses: vec![alice.address()],
                ..Default::default()
            },
            Some(1),
        )
        .await
        .expect("watch");
    let mut stream = Box::pin(stream);
    let first = stream.next().await.expect("history").expect("message");
    assert_eq!(first["item_hash"], hashes[2].as_str());
    processed(&client, Draft::post("note", json!({"i": 9})), &bob).await;
    let live = processed(&client, Draft::post("note", json!({"i": 10})), &alice).await;
    let next = stream.next().await.expect("live").expect("message");
    assert_eq!(
        next["item_hash"],
        live.as_str(),
        "bob's post is filtered out"
    );

    let error = Client::new("http://127.0.0.1:9")
        .version()
        .await
        .expect_err("nobody there");
    assert!(
        matches!(error, raleph_sdk::ClientError::Unreachable { .. }),
        "{error}"
    );
    // An https:// node's websocket is wss:// (tests/tls.rs in raleph-sdk); nobody here.
    let error = Client::new("https://127.0.0.1:9")
        .watch(&MessageFilter::default(), None)
        .await
        .err()
        .expect("nobody there");
    assert!(
        error
            .to_string()
            .contains("no node answers at https://127.0.0.1:9"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_content_is_stored_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = RunningNode::start(dir.path());
    let client = Client::new(&node.url);
    let signer = Signer::generate(Chain::Eth).expect("key");
    let text = "x".repeat(raleph_sdk::MAX_INLINE_CHARS);
    let draft = Draft::post("long", json!({"text": text})).channel("SDK");
    let (message, publication) = client
        .sign_and_publish(draft, &signer, true)
        .await
        .expect("publish");
    assert_eq!(publication.status, "processed");
    assert_eq!(message.json()["item_type"], "storage");
    assert!(message.json().get("item_content").is_none());
    let status = client
        .message_status(message.item_hash())
        .await
        .expect("status");
    assert_eq!(status.status, "processed");
    let served = status.message.expect("message");
    assert_eq!(
        served["content"]["content"]["text"].as_str(),
        Some(text.as_str())
    );

    // Small content stays inline.
    let (small, _) = client
        .sign_and_publish(Draft::post("short", json!({})), &signer, true)
        .await
        .expect("publish");
    assert_eq!(small.json()["item_type"], "inline");
}
