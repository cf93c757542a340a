use proptest::prelude::*;
use serde_json::json;

use super::*;

const CONTENT: &str = r#"{"address":"0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1","time":1700000000.0,"type":"test","content":{"hello":"world"}}"#;
const HASH: &str = "acdcf62bccef79ac2df0627c0e1f82eb2a1ef8911e2a45003f61724d96f38be7";

fn sample() -> Value {
    json!({
        "sender": "0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1",
        "chain": "ETH",
        "signature": "0xe0c1fc646fae42532a805444e572bf1e1eeac801d74e34b50dca87d48b78eb17379e3ce093928aa67f0491a143925151b469edf07aff0c2804cd811273f1897f1c",
        "type": "POST",
        "item_type": "inline",
        "item_content": CONTENT,
        "item_hash": HASH,
        "time": 1700000000.0,
        "channel": "TEST",
    })
}

#[test]
fn accepts_the_sdk_vector() {
    let env = Envelope::from_json(&sample()).expect("valid");
    assert_eq!(env.item_type, ItemType::Inline);
    assert_eq!(env.item_content.as_deref(), Some(CONTENT));
    assert_eq!(env.to_json(), sample());
}

#[test]
fn infers_item_type() {
    let mut v = sample();
    v.as_object_mut().map(|o| o.remove("item_type"));
    assert_eq!(
        Envelope::from_json(&v).map(|e| e.item_type),
        Ok(ItemType::Inline)
    );
    v.as_object_mut().map(|o| o.remove("item_content"));
    assert_eq!(
        Envelope::from_json(&v).map(|e| e.item_type),
        Ok(ItemType::Storage)
    );
    v["item_hash"] = json!("QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen");
    assert_eq!(
        Envelope::from_json(&v).map(|e| e.item_type),
        Ok(ItemType::Ipfs)
    );
    v["item_type"] = json!("storage");
    assert!(Envelope::from_json(&v).is_err());
}

/// The reference's bounds: a UTC date from the year 1 to the year 9999, nothing tighter; and
/// `hash_type` is not read.
#[test]
fn accepts_what_the_reference_accepts() {
    for time in [
        -62_135_596_800.0,
        -1.0,
        0.0,
        4_102_444_800.0,
        253_402_300_799.9,
    ] {
        let mut v = sample();
        v["time"] = json!(time);
        assert_eq!(Envelope::from_json(&v).map(|e| e.time), Ok(time), "{time}");
    }
    let mut v = sample();
    v["time"] = json!(true);
    assert_eq!(Envelope::from_json(&v).map(|e| e.time), Ok(1.0));
    for hash_type in [json!("sha256"), json!("md5"), json!(7)] {
        let mut v = sample();
        v["hash_type"] = hash_type;
        assert!(Envelope::from_json(&v).is_ok());
    }
}

#[test]
fn refuses_bad_fields() {
    let cases: Vec<(&str, Value)> = vec![
        ("time", json!("1700000000")),
        ("time", json!(253_402_300_800.0)),
        ("time", json!(1e308)),
        ("time", json!(-62_135_596_801.0)),
        ("chain", json!("NOPE")),
        ("type", json!("post")),
        ("item_hash", json!("abc")),
        ("sender", json!(12)),
        ("item_type", json!("storage")),
    ];
    for (field, value) in cases {
        let mut v = sample();
        v[field] = value;
        assert!(Envelope::from_json(&v).is_err(), "{field}");
    }
    assert_eq!(
        Envelope::from_json(&json!([1])),
        Err(EnvelopeError::NotAnObject)
    );
}

#[test]
fn limits_inline_content() {
    let long = format!("\"{}\"", "é".repeat(MAX_INLINE_CHARS));
    let mut v = sample();
    v["item_content"] = json!(long);
    v["item_hash"] = json!(sha256_hex(long.as_bytes()));
    assert!(matches!(
        Envelope::from_json(&v),
        Err(EnvelopeError::ContentTooLong(_))
    ));
    let nul = r#"{"a":"\u0000"}"#;
    v["item_content"] = json!(nul);
    v["item_hash"] = json!(sha256_hex(nul.as_bytes()));
    assert_eq!(Envelope::from_json(&v), Err(EnvelopeError::NulEscape));
}

/// Inline content as clients write it, each a JSON text with its own bytes: an object holding
/// arbitrary text (non-ASCII included, escaped or not), numbers written several ways, and
/// whitespace where JSON allows it, so that a re-serialization would change the bytes.
fn json_text() -> impl Strategy<Value = String> {
    let space = prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n  "]);
    let number = prop::sample::select(vec!["0", "-1", "1.50", "1e3", "2E-2", "1700000000.0"]);
    (
        "\\PC{0,80}",
        any::<bool>(),
        number,
        space.clone(),
        space,
        prop::collection::vec("[a-z_]{1,8}", 0..4),
    )
        .prop_map(|(text, escape_all, number, a, b, keys)| {
            let quoted = if escape_all {
                // Every non-ASCII character as a \u escape (UTF-16 pairs past the BMP).
                let mut out = String::from("\"");
                for unit in text.encode_utf16() {
                    match char::from_u32(u32::from(unit)) {
                        Some(c) if c.is_ascii() && c != '"' && c != '\\' => out.push(c),
                        _ => out.push_str(&format!("\\u{unit:04x}")),
                    }
                }
                out.push('"');
                out
            } else {
                serde_json::to_string(&text).expect("a string serializes")
            };
            let mut members = vec![
                format!("\"text\"{a}:{b}{quoted}"),
                format!("\"n\":{a}{number}"),
            ];
            members.extend(keys.iter().map(|k| format!("\"{k}\":{b}[{a}]")));
            format!("{a}{{{b}{}{a}}}{b}", members.join(&format!("{a},{b}")))
        })
}

/// Any JSON value, envelope-shaped objects among them.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,40}".prop_map(Value::from),
    ];
    let keys = prop_oneof![
        prop::sample::select(vec![
            "sender",
            "chain",
            "signature",
            "type",
            "item_type",
            "item_content",
            "item_hash",
            "time",
            "channel",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
    ];
    leaf.prop_recursive(3, 48, 10, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..10)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn round_trip_keeps_content_bytes(content in prop_oneof![json_text(), "\\PC{0,200}"]) {
        let mut v = sample();
        v["item_content"] = json!(content);
        v["item_hash"] = json!(sha256_hex(content.as_bytes()));
        // Every generated content is acceptable (within the length limit, no `\u0000`
        // escape): a refusal fails the test, where it used to skip the checks below.
        let env = Envelope::from_json(&v);
        prop_assert!(env.is_ok(), "{:?} refused: {:?}", content, env);
        let env = env.expect("checked above");
        let text = serde_json::to_string(&env.to_json()).expect("serializes");
        let back: Value = serde_json::from_str(&text).expect("parses");
        let again = Envelope::from_json(&back).expect("still valid");
        prop_assert_eq!(again.item_content.as_deref(), Some(content.as_str()));
        prop_assert_eq!(again, env);
    }

    #[test]
    fn any_changed_byte_changes_the_hash(content in proptest::collection::vec(any::<u8>(), 1..300), index: usize, flip in 1u8..) {
        let mut changed = content.clone();
        let i = index % changed.len();
        changed[i] ^= flip;
        prop_assert_ne!(sha256_hex(&content), sha256_hex(&changed));
    }

    #[test]
    fn changed_content_is_refused(content in "[a-z]{1,50}", index: usize) {
        let mut v = sample();
        v["item_hash"] = json!(sha256_hex(content.as_bytes()));
        let mut bytes = content.into_bytes();
        let i = index % bytes.len();
        bytes[i] = if bytes[i] == b'z' { b'a' } else { bytes[i] + 1 };
        v["item_content"] = json!(String::from_utf8(bytes).expect("ascii"));
        let refused = matches!(Envelope::from_json(&v), Err(EnvelopeError::HashMismatch { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        // Every input is JSON (random text seldom was, and was skipped).
        let _ = Envelope::from_json(&v);
    }

    #[test]
    fn arbitrary_fields_never_panic(sender in any::<String>(), chain in any::<String>(), hash in any::<String>(), time in any::<f64>()) {
        let mut v = sample();
        v["sender"] = json!(sender);
        v["chain"] = json!(chain);
        v["item_hash"] = json!(hash);
        v["time"] = json!(time);
        let _ = Envelope::from_json(&v);
    }
}
