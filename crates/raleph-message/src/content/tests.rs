use serde_json::json;

use super::*;

fn parse(t: MessageType, v: Value) -> Result<Content, ContentError> {
    Content::parse(t, v.to_string().as_bytes(), "0xSender", 1700.5)
}

#[test]
fn coerces_address_and_time() {
    let c = parse(
        MessageType::Post,
        json!({"type": "note", "content": {"a": 1}}),
    )
    .expect("valid");
    assert_eq!(c.address, "0xSender");
    assert_eq!(c.time, 1700.5);
    assert_eq!(c.value["address"], json!("0xSender"));
    assert_eq!(c.value["time"], json!(1700.5));
    // Key order of the original object is kept.
    let keys: Vec<_> = c.value.keys().cloned().collect();
    assert_eq!(keys, ["type", "content", "address", "time"]);
}

#[test]
fn post_rules() {
    assert!(parse(MessageType::Post, json!({"content": {}})).is_err());
    assert!(parse(MessageType::Post, json!({"type": "x", "extra": 1})).is_err());
    let amend = parse(MessageType::Post, json!({"type": "amend", "ref": "abc"})).expect("valid");
    assert_eq!(amend.content_ref(), Some("abc"));
}

#[test]
fn aggregate_rules() {
    assert!(parse(MessageType::Aggregate, json!({"key": "k", "content": [1]})).is_err());
    assert!(parse(MessageType::Aggregate, json!({"content": {}})).is_err());
    let c = parse(
        MessageType::Aggregate,
        json!({"key": "k", "content": {"tags": ["x"]}}),
    )
    .expect("valid");
    assert_eq!(c.content_key(), Some("k"));
}

#[test]
fn store_and_forget_rules() {
    let sha = "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588";
    assert!(
        parse(
            MessageType::Store,
            json!({"item_type": "ipfs", "item_hash": sha})
        )
        .is_err()
    );
    let s = parse(
        MessageType::Store,
        json!({"item_type": "storage", "item_hash": sha, "anything": 1}),
    )
    .expect("valid");
    assert_eq!(s.content_item_hash(), Some(sha));
    assert!(parse(MessageType::Forget, json!({"hashes": ["nope"]})).is_err());
    let f = parse(MessageType::Forget, json!({"hashes": [sha]})).expect("valid");
    assert!(
        matches!(f.typed, TypedContent::Forget(ForgetContent { ref hashes, .. }) if hashes.len() == 1)
    );
}

#[test]
fn bad_time_and_shapes() {
    assert!(parse(MessageType::Post, json!({"type": "x", "time": -1})).is_err());
    assert!(parse(MessageType::Post, json!({"type": "x", "time": "now"})).is_err());
    assert!(Content::parse(MessageType::Post, b"[1]", "s", 0.0).is_err());
    assert!(Content::parse(MessageType::Post, b"{", "s", 0.0).is_err());
}
