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
    assert!(parse(MessageType::Post, json!({"type": "x", "time": "12.5"})).is_err());
    // A boolean is 1 or 0 seconds, as the reference reads it.
    let c = parse(MessageType::Post, json!({"type": "x", "time": true})).expect("bool time");
    assert_eq!(c.time, 1.0);
    assert!(Content::parse(MessageType::Post, b"[1]", "s", 0.0).is_err());
    assert!(Content::parse(MessageType::Post, b"{", "s", 0.0).is_err());
}

const SHA: &str = "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588";

fn post_with(extra: Value) -> Result<Content, ContentError> {
    let mut content = json!({"type": "note", "content": {"a": 1}});
    for (k, v) in extra.as_object().expect("object") {
        content[k] = v.clone();
    }
    parse(MessageType::Post, content)
}

/// A valid ChainRef, with `changes` applied (a null value removes the key).
fn chain_ref(changes: Value) -> Value {
    let mut r = json!({
        "chain": "ETH", "item_content": "{}", "item_hash": SHA, "item_type": "inline",
        "sender": "0xA", "signature": "0xsig", "time": 1.5,
    });
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            r.as_object_mut().expect("object").remove(k);
        } else {
            r[k] = v.clone();
        }
    }
    r
}

#[test]
fn an_amend_needs_a_ref() {
    for refused in [
        json!({"type": "amend"}),
        json!({"type": "amend", "ref": null}),
        json!({"type": "amend", "ref": ""}),
    ] {
        assert!(
            matches!(
                post_with(refused.clone()),
                Err(ContentError::Invalid { .. })
            ),
            "{refused}"
        );
    }
    let by_object = post_with(json!({"type": "amend", "ref": chain_ref(json!({}))}));
    assert_eq!(by_object.expect("valid").content_ref(), Some(SHA));
    // Any other type may have an empty ref, or none.
    assert!(post_with(json!({"ref": ""})).is_ok());
    assert!(post_with(json!({})).is_ok());
}

#[test]
fn a_post_ref_object_is_a_chain_ref() {
    for accepted in [
        json!({}),
        // Unknown keys are ignored; lax floats for time; a channel up to 128 characters.
        json!({"extra": 1, "time": "1.5", "channel": null}),
        json!({"time": true}),
        json!({"time": " inf "}),
        json!({"time": "1_0"}),
        json!({"type": "POST", "channel": "c".repeat(128)}),
        json!({"item_type": "storage", "item_hash": "QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen"}),
    ] {
        let r = chain_ref(accepted.clone());
        assert!(post_with(json!({"ref": r})).is_ok(), "{accepted}");
    }
    for refused in [
        json!({"chain": null}),
        json!({"chain": "eth"}),
        json!({"item_content": null}),
        json!({"item_content": 1}),
        json!({"item_hash": null}),
        json!({"item_hash": "abc"}),
        json!({"item_hash": SHA.to_uppercase()}),
        json!({"item_type": "file"}),
        json!({"sender": 1}),
        json!({"signature": null}),
        json!({"time": null}),
        json!({"time": "soon"}),
        json!({"time": []}),
        json!({"type": "STORE"}),
        json!({"channel": "c".repeat(129)}),
        json!({"channel": 5}),
    ] {
        let mut r = chain_ref(refused.clone());
        // `null` in `refused` removes the key; these check an explicit null as well.
        if refused
            .as_object()
            .is_some_and(|o| o.values().all(Value::is_null))
        {
            assert!(post_with(json!({"ref": r.clone()})).is_err(), "{refused}");
            for k in refused.as_object().expect("object").keys() {
                r[k] = Value::Null;
            }
        }
        assert!(post_with(json!({"ref": r})).is_err(), "{refused}");
    }
    assert!(post_with(json!({"ref": {}})).is_err());
    assert!(post_with(json!({"ref": 5})).is_err());
    let rt = chain_ref(json!({"type": null}));
    assert!(post_with(json!({"ref": rt})).is_ok(), "type may be absent");
    let mut explicit_null_type = chain_ref(json!({}));
    explicit_null_type["type"] = Value::Null;
    assert!(post_with(json!({"ref": explicit_null_type})).is_err());
}

#[test]
fn nested_tags_of_posts_and_aggregates() {
    let many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
    let long = "t".repeat(257);
    for tags in [
        json!(["a"]),
        json!(null),
        json!([]),
        json!(["t".repeat(256)]),
    ] {
        assert!(
            post_with(json!({"content": {"tags": tags.clone()}})).is_ok(),
            "{tags}"
        );
        let aggregate = json!({"key": "k", "content": {"tags": tags.clone()}});
        assert!(parse(MessageType::Aggregate, aggregate).is_ok(), "{tags}");
    }
    for tags in [
        json!([""]),
        json!("a"),
        json!([1]),
        json!(many[..]),
        json!([long]),
        json!({}),
    ] {
        assert!(
            post_with(json!({"content": {"tags": tags.clone()}})).is_err(),
            "{tags}"
        );
        let aggregate = json!({"key": "k", "content": {"tags": tags.clone()}});
        assert!(parse(MessageType::Aggregate, aggregate).is_err(), "{tags}");
    }
    // Only an object payload is looked into.
    assert!(post_with(json!({"content": [{"tags": [1]}]})).is_ok());
    assert!(post_with(json!({"content": "tags"})).is_ok());
}

#[test]
fn an_aggregate_key_object_has_a_name_only() {
    let key = |k: Value| parse(MessageType::Aggregate, json!({"key": k, "content": {}}));
    assert_eq!(
        key(json!({"name": "k"})).expect("valid").content_key(),
        Some("k")
    );
    assert_eq!(key(json!("")).expect("valid").content_key(), Some(""));
    assert!(matches!(
        key(json!({"name": "k", "x": 1})),
        Err(ContentError::Unexpected(_))
    ));
    assert!(key(json!({"name": 1})).is_err());
    assert!(key(json!({"name": null})).is_err());
    assert!(key(json!({})).is_err());
    assert!(key(json!(1)).is_err());
}

fn store_with(extra: Value) -> Result<Content, ContentError> {
    let mut content = json!({"item_type": "storage", "item_hash": SHA});
    for (k, v) in extra.as_object().expect("object") {
        content[k] = v.clone();
    }
    parse(MessageType::Store, content)
}

fn store_size(size: Value) -> Result<Option<i128>, ContentError> {
    store_with(json!({ "size": size })).map(|c| match c.typed {
        TypedContent::Store(s) => s.size,
        _ => unreachable!("a STORE"),
    })
}

#[test]
fn store_size_is_a_lax_int() {
    assert_eq!(store_size(json!(-5)), Ok(Some(-5)));
    assert_eq!(store_size(json!(u64::MAX)), Ok(Some(i128::from(u64::MAX))));
    assert_eq!(store_size(json!(5.0)), Ok(Some(5)));
    assert_eq!(store_size(json!("5")), Ok(Some(5)));
    assert_eq!(store_size(json!(" 5 ")), Ok(Some(5)));
    assert_eq!(store_size(json!("5.0")), Ok(Some(5)));
    assert_eq!(store_size(json!(true)), Ok(Some(1)));
    assert_eq!(store_size(json!(null)), Ok(None));
    for refused in [json!(5.5), json!("1e3"), json!(1e30), json!([]), json!("")] {
        assert!(store_size(refused.clone()).is_err(), "{refused}");
    }
    // An integer past 64 bits is read as a float, as `orjson` does: then too large.
    let huge = Content::parse(
        MessageType::Store,
        format!(
            r#"{{"item_type":"storage","item_hash":"{SHA}","size":123456789012345678901234567890}}"#
        )
        .as_bytes(),
        "s",
        1.0,
    );
    assert!(huge.is_err());
}

#[test]
fn store_fields_are_typed() {
    for accepted in [
        json!({"content_type": "text/plain"}),
        json!({"content_type": null, "metadata": null, "tags": null, "payment": null}),
        json!({"metadata": {"a": [1]}}),
        json!({"tags": ["x"]}),
        json!({"tags": []}),
        json!({"payment": {"type": "hold", "chain": null, "receiver": null}}),
        json!({"payment": {"type": "credit", "chain": "SOL", "receiver": "0xB", "x": 1}}),
        json!({"ref": "abc", "anything": 1}),
    ] {
        assert!(store_with(accepted.clone()).is_ok(), "{accepted}");
    }
    let many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
    for refused in [
        json!({"content_type": 1}),
        json!({"metadata": []}),
        json!({"metadata": "m"}),
        json!({"tags": [""]}),
        json!({"tags": ["t".repeat(257)]}),
        json!({"tags": many}),
        json!({"tags": "x"}),
        json!({"payment": {"type": "hold", "chain": "XX"}}),
        json!({"payment": {"type": "hold", "chain": 1}}),
        json!({"payment": {"type": "hold", "receiver": 1}}),
        json!({"payment": {"type": "superfluid"}}),
        json!({"payment": {}}),
        json!({"payment": "hold"}),
        json!({"ref": 1}),
    ] {
        assert!(store_with(refused.clone()).is_err(), "{refused}");
    }
}

#[test]
fn forget_lists() {
    let forget = |v: Value| parse(MessageType::Forget, v);
    assert!(matches!(
        forget(json!({})),
        Err(ContentError::Missing(field)) if field == "hashes"
    ));
    assert!(forget(json!({"hashes": null})).is_err());
    assert!(forget(json!({"hashes": [], "aggregates": null})).is_err());
    assert!(forget(json!({"hashes": [], "aggregates": ["k"]})).is_err());
    assert!(forget(json!({"hashes": [], "aggregates": [SHA.to_uppercase()]})).is_err());
    assert!(forget(json!({"hashes": [], "aggregates": [1]})).is_err());
    assert!(forget(json!({"hashes": [], "reason": "r".repeat(1001)})).is_err());
    assert!(forget(json!({"hashes": [], "extra": 1})).is_err());
    let too_many = vec![SHA; 1001];
    assert!(forget(json!({ "hashes": too_many })).is_err());
    // Accepted: an empty target set (refused later, by processing), hash-shaped keys, a
    // reason of 1000 characters or null.
    assert!(forget(json!({"hashes": []})).is_ok());
    assert!(forget(json!({"hashes": [], "reason": null})).is_ok());
    let f = forget(json!({
        "hashes": [SHA],
        "aggregates": [SHA, "QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen"],
        "reason": "r".repeat(1000),
    }))
    .expect("valid");
    let TypedContent::Forget(f) = f.typed else {
        unreachable!("a FORGET")
    };
    assert_eq!(f.aggregates.len(), 2);
}
