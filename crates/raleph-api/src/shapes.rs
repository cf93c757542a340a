//! The JSON shapes clients parse. The SDK's models forbid extra keys, so every object here
//! carries exactly the keys the reference emits.

use raleph_db::{ForgottenRecord, MessageRecord, PostRecord};
use serde_json::{Map, Value, json};

/// Seconds since the epoch as Python's `datetime.isoformat()` writes a UTC time.
pub fn iso_time(seconds: f64) -> String {
    // Whole microseconds first, as Python's datetime does: nanoseconds of an f64 near 1.7e9
    // seconds are below its precision.
    let nanos = (seconds * 1e6).round() as i128 * 1000;
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return "1970-01-01T00:00:00+00:00".to_owned();
    };
    let micros = t.microsecond();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros == 0 {
        format!("{base}+00:00")
    } else {
        format!("{base}.{micros:06}+00:00")
    }
}

pub fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn parse_content(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// How much of `content` a list shows (`contentFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentFormat {
    Full,
    Headers,
    None,
}

fn headers_of(message_type: &str, content: &Value) -> Value {
    let keep: &[&str] = match message_type {
        "POST" => &["address", "type", "ref"],
        "AGGREGATE" => &["address", "key"],
        "STORE" => &["address", "item_hash", "ref"],
        _ => &["address"],
    };
    let mut out = Map::new();
    for key in keep {
        if let Some(v) = content.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

/// A message as listed (`with_size`) or as returned alone and pushed on the websocket.
pub fn message(m: &MessageRecord, with_size: bool, format: ContentFormat) -> Value {
    let mut out = Map::new();
    out.insert("chain".into(), m.chain.clone().into());
    out.insert("channel".into(), m.channel.clone().into());
    out.insert("confirmations".into(), json!([]));
    out.insert("confirmed".into(), false.into());
    match format {
        ContentFormat::Full => {
            out.insert("content".into(), parse_content(&m.content));
        }
        ContentFormat::Headers => {
            out.insert(
                "content".into(),
                headers_of(&m.message_type, &parse_content(&m.content)),
            );
        }
        ContentFormat::None => {}
    }
    out.insert("item_content".into(), m.item_content.clone().into());
    out.insert("item_hash".into(), m.item_hash.clone().into());
    out.insert("item_type".into(), m.item_type.clone().into());
    out.insert("sender".into(), m.sender.clone().into());
    out.insert("signature".into(), m.signature.clone().into());
    if with_size {
        out.insert("size".into(), m.size.into());
    }
    out.insert("time".into(), float(m.time));
    out.insert("type".into(), m.message_type.clone().into());
    Value::Object(out)
}

/// What remains of a forgotten message.
pub fn forgotten(f: &ForgottenRecord) -> Value {
    json!({
        "chain": f.chain,
        "channel": f.channel,
        "forgotten_at": iso_time(f.forgotten_at),
        "forgotten_by": f.forgotten_by,
        "item_hash": f.item_hash,
        "item_type": f.item_type,
        "owner": f.owner,
        "payment_type": f.payment_type,
        "sender": f.sender,
        "signature": f.signature,
        "size": f.size,
        "status": "forgotten",
        "time": float(f.time),
        "type": f.message_type,
    })
}

/// A post in the v0 shape: exactly the 19 keys of the SDK's `Post` model.
pub fn post_v0(p: &PostRecord) -> Value {
    let latest = &p.latest;
    json!({
        "address": p.owner,
        "chain": latest.chain,
        "channel": p.channel,
        "confirmations": [],
        "confirmed": false,
        "content": p.latest_content.as_deref().map(parse_content).unwrap_or(Value::Null),
        "hash": p.original_item_hash,
        "item_content": latest.item_content,
        "item_hash": latest.item_hash,
        "item_type": latest.item_type,
        "original_item_hash": p.original_item_hash,
        "original_signature": p.original_signature,
        "original_type": p.original_type,
        "ref": p.reference,
        "sender": p.owner,
        "signature": latest.signature,
        "size": latest.size,
        "time": float(latest.time),
        "type": if p.amended { "amend".to_owned() } else { p.original_type.clone() },
    })
}

/// A post in the v1 shape.
pub fn post_v1(p: &PostRecord) -> Value {
    json!({
        "address": p.owner,
        "channel": p.channel,
        "content": p.latest_content.as_deref().map(parse_content).unwrap_or(Value::Null),
        "created": iso_time(p.created),
        "item_hash": p.latest.item_hash,
        "last_updated": iso_time(p.last_updated),
        "original_item_hash": p.original_item_hash,
        "original_type": p.original_type,
        "ref": p.reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_match_python() {
        assert_eq!(iso_time(1_700_000_000.0), "2023-11-14T22:13:20+00:00");
        assert_eq!(
            iso_time(1_700_000_000.25),
            "2023-11-14T22:13:20.250000+00:00"
        );
    }
}
