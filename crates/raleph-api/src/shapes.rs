//! The JSON shapes clients parse. The SDK's models forbid extra keys, so every object here
//! carries exactly the keys the reference emits.

use std::fmt;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use raleph_db::{Confirmation, ForgottenRecord, MessageRecord, MessageType, PostRecord};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

/// Seconds since the epoch as Python's `datetime.isoformat()` writes a UTC time.
pub fn iso_time(seconds: f64) -> String {
    IsoTime::new(seconds).as_str().to_owned()
}

/// A UTC time as Python's `datetime.isoformat()` writes it (`2023-11-14T22:13:20+00:00`,
/// with `.ffffff` when there are microseconds), written into a buffer on the stack: lists
/// write two per row, and building each with `format!` cost a post page more than its SQL
/// joins did.
#[derive(Clone, Copy)]
pub struct IsoTime {
    text: [u8; 48],
    len: usize,
}

impl IsoTime {
    pub fn new(seconds: f64) -> Self {
        // Whole microseconds first, as Python's datetime does: nanoseconds of an f64 near 1.7e9
        // seconds are below its precision. A time out of range (NaN included) is the epoch.
        let nanos = ((seconds * 1e6).round() as i128).saturating_mul(1000);
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut out = IsoTime {
            text: [0; 48],
            len: 0,
        };
        match u32::try_from(t.year()) {
            Ok(year) if year <= 9999 => out.push_digits(year, 4),
            // Years before 0 or past 9999 (only with time's large dates), as `{:04}` pads them.
            _ => {
                let _ = fmt::Write::write_fmt(&mut out, format_args!("{:04}", t.year()));
            }
        }
        out.push(b"-");
        out.push_digits(u32::from(u8::from(t.month())), 2);
        out.push(b"-");
        out.push_digits(u32::from(t.day()), 2);
        out.push(b"T");
        out.push_digits(u32::from(t.hour()), 2);
        out.push(b":");
        out.push_digits(u32::from(t.minute()), 2);
        out.push(b":");
        out.push_digits(u32::from(t.second()), 2);
        if t.microsecond() != 0 {
            out.push(b".");
            out.push_digits(t.microsecond(), 6);
        }
        out.push(b"+00:00");
        out
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are written.
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.text.len());
        self.text[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }

    /// `value` in decimal, zero-padded to `width` digits (`value` has at most `width`).
    fn push_digits(&mut self, mut value: u32, width: usize) {
        let mut digits = [b'0'; 10];
        for digit in digits[..width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.push(&digits[..width]);
    }
}

impl fmt::Write for IsoTime {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

impl fmt::Debug for IsoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for IsoTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

pub fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn parse_content(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Stored JSON text, served as it is: the store keeps content as serde_json wrote it (compact,
/// keys in order), which is exactly what parsing it and writing it out again would give, so
/// it is only checked, not rebuilt. Text that is not JSON is served as `null`, as before.
fn raw(text: &str) -> Content<'_> {
    serde_json::from_str::<&RawValue>(text).map_or(Content::Null, Content::Raw)
}

/// The `content` of a response: stored JSON passed through, or a value built here.
#[derive(Debug)]
pub enum Content<'a> {
    /// No `content` key at all (`contentFormat=none`).
    Absent,
    Null,
    Raw(&'a RawValue),
    Built(Value),
}

impl Content<'_> {
    fn is_absent(&self) -> bool {
        matches!(self, Content::Absent)
    }
}

impl Serialize for Content<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Content::Absent | Content::Null => serializer.serialize_unit(),
            Content::Raw(raw) => raw.serialize(serializer),
            Content::Built(value) => value.serialize(serializer),
        }
    }
}

/// Stored aggregate or post content, checked: `None` if the stored text is not JSON.
pub fn stored_json(text: &str) -> Option<&RawValue> {
    serde_json::from_str::<&RawValue>(text).ok()
}

/// How much of `content` a list shows (`contentFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentFormat {
    Full,
    Headers,
    None,
}

fn headers_of(message_type: MessageType, content: &Value) -> Value {
    let keep: &[&str] = match message_type {
        MessageType::Post => &["address", "type", "ref"],
        MessageType::Aggregate => &["address", "key"],
        MessageType::Store => &["address", "item_hash", "ref"],
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

/// A message's confirmations as the reference shows them: `{"chain", "hash", "height"}`
/// each, in that order (pyaleph's `message_to_dict` and its posts v0; the transaction's
/// time and publisher, which the store keeps, are not shown). Empty, it is `[]`.
#[derive(Debug, Clone, Copy)]
pub struct Confirmations<'a>(&'a [Confirmation]);

impl Serialize for Confirmations<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            chain: &'a str,
            hash: &'a str,
            height: u64,
        }
        serializer.collect_seq(self.0.iter().map(|c| Shown {
            chain: c.chain.as_str(),
            hash: &c.tx_hash,
            height: c.height,
        }))
    }
}

/// A message as listed (with `size`) or as returned alone and pushed on the websocket. The
/// fields serialize in this order, the order of the keys the reference emits.
#[derive(Debug, Serialize)]
pub struct MessageShape<'a> {
    chain: &'a str,
    channel: Option<&'a str>,
    confirmations: Confirmations<'a>,
    confirmed: bool,
    #[serde(skip_serializing_if = "Content::is_absent")]
    content: Content<'a>,
    item_content: Option<&'a str>,
    item_hash: &'a str,
    item_type: &'a str,
    sender: &'a str,
    signature: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    time: f64,
    #[serde(rename = "type")]
    message_type: &'a str,
}

impl<'a> MessageShape<'a> {
    /// The message with its confirmations (`confirmed` when it has one).
    pub fn confirmed_by(mut self, confirmations: &'a [Confirmation]) -> Self {
        self.confirmations = Confirmations(confirmations);
        self.confirmed = !confirmations.is_empty();
        self
    }
}

/// A message as listed (`with_size`) or as returned alone and pushed on the websocket, as yet
/// without its confirmations ([`MessageShape::confirmed_by`]).
pub fn message(m: &MessageRecord, with_size: bool, format: ContentFormat) -> MessageShape<'_> {
    MessageShape {
        chain: m.envelope.chain.as_str(),
        channel: m.envelope.channel.as_deref(),
        confirmations: Confirmations(&[]),
        confirmed: false,
        content: match format {
            ContentFormat::Full => raw(&m.content),
            ContentFormat::Headers => Content::Built(headers_of(
                m.envelope.message_type,
                &parse_content(&m.content),
            )),
            ContentFormat::None => Content::Absent,
        },
        item_content: m.envelope.item_content.as_deref(),
        item_hash: m.envelope.item_hash.as_str(),
        item_type: m.envelope.item_type.as_str(),
        sender: &m.envelope.sender,
        signature: m.envelope.signature.as_deref(),
        size: with_size.then_some(m.size),
        time: m.envelope.time,
        message_type: m.envelope.message_type.as_str(),
    }
}

/// What remains of a forgotten message.
pub fn forgotten(f: &ForgottenRecord) -> Value {
    json!({
        "chain": f.envelope.chain,
        "channel": f.envelope.channel,
        "forgotten_at": iso_time(f.forgotten_at),
        "forgotten_by": f.forgotten_by,
        "item_hash": f.envelope.item_hash,
        "item_type": f.envelope.item_type,
        "owner": f.owner,
        "payment_type": f.payment_type,
        "sender": f.envelope.sender,
        "signature": f.envelope.signature,
        "size": f.size,
        "status": "forgotten",
        "time": float(f.envelope.time),
        "type": f.envelope.message_type,
    })
}

/// A post in the v0 shape: exactly the 19 keys of the SDK's `Post` model.
#[derive(Debug, Serialize)]
pub struct PostV0<'a> {
    address: &'a str,
    chain: &'a str,
    channel: Option<&'a str>,
    confirmations: Confirmations<'a>,
    confirmed: bool,
    content: Content<'a>,
    hash: &'a str,
    item_content: Option<&'a str>,
    item_hash: &'a str,
    item_type: &'a str,
    original_item_hash: &'a str,
    original_signature: Option<&'a str>,
    original_type: &'a str,
    #[serde(rename = "ref")]
    reference: Option<&'a str>,
    sender: &'a str,
    signature: Option<&'a str>,
    size: u64,
    time: f64,
    #[serde(rename = "type")]
    post_type: &'a str,
}

/// A post in the v1 shape.
#[derive(Debug, Serialize)]
pub struct PostV1<'a> {
    address: &'a str,
    channel: Option<&'a str>,
    content: Content<'a>,
    created: IsoTime,
    item_hash: &'a str,
    last_updated: IsoTime,
    original_item_hash: &'a str,
    original_type: &'a str,
    #[serde(rename = "ref")]
    reference: Option<&'a str>,
}

/// A post in either shape.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PostShape<'a> {
    V0(PostV0<'a>),
    V1(PostV1<'a>),
}

fn post_content(p: &PostRecord) -> Content<'_> {
    p.latest_content.as_deref().map_or(Content::Null, raw)
}

/// A post in the v0 shape: exactly the 19 keys of the SDK's `Post` model. Its list reads each
/// latest version's message (`PostQuery::latest_hash_only` is off); a post read without it
/// would show that message's fields empty. `confirmations` are those of the latest version
/// (the `item_hash` shown), as the reference's.
pub fn post_v0<'a>(p: &'a PostRecord, confirmations: &'a [Confirmation]) -> PostShape<'a> {
    let latest = p.latest.as_ref();
    PostShape::V0(PostV0 {
        address: &p.owner,
        chain: latest.map_or("", |l| l.chain.as_str()),
        channel: p.channel.as_deref(),
        confirmations: Confirmations(confirmations),
        confirmed: !confirmations.is_empty(),
        content: post_content(p),
        hash: p.original_item_hash.as_str(),
        item_content: latest.and_then(|l| l.item_content.as_deref()),
        item_hash: p.latest_item_hash.as_str(),
        item_type: latest.map_or("", |l| l.item_type.as_str()),
        original_item_hash: p.original_item_hash.as_str(),
        original_signature: p.original_signature.as_deref(),
        original_type: &p.original_type,
        reference: p.reference.as_deref(),
        sender: &p.owner,
        signature: latest.and_then(|l| l.signature.as_deref()),
        size: latest.map_or(0, |l| l.size),
        time: latest.map_or(0.0, |l| l.time),
        post_type: if p.amended { "amend" } else { &p.original_type },
    })
}

/// A post in the v1 shape.
pub fn post_v1(p: &PostRecord) -> PostShape<'_> {
    PostShape::V1(PostV1 {
        address: &p.owner,
        channel: p.channel.as_deref(),
        content: post_content(p),
        created: IsoTime::new(p.created),
        item_hash: p.latest_item_hash.as_str(),
        last_updated: IsoTime::new(p.last_updated),
        original_item_hash: p.original_item_hash.as_str(),
        original_type: &p.original_type,
        reference: p.reference.as_deref(),
    })
}

/// A `200 OK` response with `value` as its JSON body (`application/json`, as `Json` sends).
pub fn json_response(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// About how long the JSON of `rows` rows holding `text` bytes of stored text will be, so the
/// body is written into one allocation rather than grown (and copied) several times: escaping
/// adds a little to the text, and each row has its other keys.
pub fn size_hint(rows: usize, text: usize) -> usize {
    256 + rows * 512 + text + text / 4
}

/// The stored text of a message row (its content and, escaped, its item content).
pub fn message_text(m: &MessageRecord) -> usize {
    m.content.len() + m.envelope.item_content.as_ref().map_or(0, String::len)
}

/// `value` as JSON bytes, ready for [`json_response`]; `capacity` from [`size_hint`].
pub fn to_json(value: &impl Serialize, capacity: usize) -> ApiResult<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, value).map_err(ApiError::internal)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use raleph_db::{ItemHash, ItemType, PostVersion};

    use super::*;

    /// `iso_time` as it was written before `IsoTime`, with `format!`.
    fn iso_time_before(seconds: f64) -> String {
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

    #[test]
    fn iso_times_are_written_as_before() {
        let mut times = vec![
            0.0,
            -0.0,
            0.000_001,
            -0.000_001,
            0.5,
            -1.5,
            59.999_999_4,
            59.999_999_6,
            1_700_000_000.0,
            1_700_009_999.87,
            1_700_000_062.08,
            951_782_400.0,       // 2000-02-29
            -62_135_596_800.0,   // 0001-01-01
            -62_135_596_800.5,   // year 0
            -100_000_000_000.0,  // before year 0
            -377_705_116_800.0,  // -9999-01-01
            -377_705_116_801.0,  // out of range
            253_402_300_799.999, // 9999-12-31T23:59:59.999
            253_402_300_800.0,   // 10000-01-01, out of range
            1e20,
            -1e20,
            f64::NAN,
            f64::MIN_POSITIVE,
        ];
        // And a spread of times, with and without microseconds, from a fixed sequence.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let micros = (x % 8_000_000_000_000_000) as f64;
            times.push(micros / 1e6 - 1e9);
            times.push((micros / 1e6).floor());
        }
        for t in times {
            assert_eq!(IsoTime::new(t).as_str(), iso_time_before(t), "{t}");
            assert_eq!(
                serde_json::to_string(&IsoTime::new(t)).unwrap(),
                serde_json::to_string(&iso_time_before(t)).unwrap()
            );
        }
    }

    /// Before, the microseconds of a time this far out overflowed an `i128` (wrapping in
    /// release builds); they are out of range, as any time past year 9999.
    #[test]
    fn iso_times_far_out_are_the_epoch() {
        for t in [1e300, -1e300, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(IsoTime::new(t).as_str(), "1970-01-01T00:00:00+00:00");
        }
    }

    #[test]
    fn iso_times_match_python() {
        assert_eq!(iso_time(1_700_000_000.0), "2023-11-14T22:13:20+00:00");
        assert_eq!(
            iso_time(1_700_000_000.25),
            "2023-11-14T22:13:20.250000+00:00"
        );
    }

    /// Contents as the pipeline stores them (`Value::to_string`), plus text that is not JSON.
    fn stored_contents() -> Vec<String> {
        let mut out: Vec<String> = [
            json!({"address": "0xabc", "time": 1.7e9, "type": "test", "content": {"body": "héllo \"quoted\" \\ \u{1}\n", "n": 18446744073709551615u64, "neg": -9223372036854775808i64, "f": 0.1, "tiny": 5e-324, "big": 1e300, "z": -0.0}}),
            json!({"z": 1, "a": [1, 2.5, null, true, {"y": {}, "x": []}], "m": "€ 😀 \u{7f}"}),
            json!({"address": "0xabc", "key": "k", "content": {"b": 1, "a": 2}}),
            json!({"address": "0xabc", "item_hash": "QmX", "ref": null}),
            json!(null),
            json!("a string"),
            json!({}),
        ]
        .iter()
        .map(Value::to_string)
        .collect();
        out.push("not json".to_owned());
        out.push(String::new());
        out.push("{\"a\": 1} trailing".to_owned());
        out
    }

    fn record(content: String, message_type: &str) -> MessageRecord {
        MessageRecord {
            envelope: raleph_message::Envelope {
                item_hash: ItemHash::parse(&"a".repeat(64)).unwrap(),
                message_type: message_type.parse().unwrap(),
                chain: raleph_message::Chain::Eth,
                sender: "0xabc".to_owned(),
                signature: Some("0xsig".to_owned()),
                item_type: ItemType::Inline,
                item_content: Some(content.clone()),
                channel: None,
                time: 1_700_000_000.123_456,
            },
            content,
            size: 42,
            reception_time: 1_700_000_001.0,
            status: raleph_db::MessageStatus::Processed,
        }
    }

    /// The shape as it was built before contents were passed through: parsed into a `Value`.
    fn message_before(m: &MessageRecord, with_size: bool, format: ContentFormat) -> Value {
        let e = &m.envelope;
        let mut out = Map::new();
        out.insert("chain".into(), e.chain.as_str().into());
        out.insert("channel".into(), e.channel.clone().into());
        out.insert("confirmations".into(), json!([]));
        out.insert("confirmed".into(), false.into());
        match format {
            ContentFormat::Full => {
                out.insert("content".into(), parse_content(&m.content));
            }
            ContentFormat::Headers => {
                out.insert(
                    "content".into(),
                    headers_of(e.message_type, &parse_content(&m.content)),
                );
            }
            ContentFormat::None => {}
        }
        out.insert("item_content".into(), e.item_content.clone().into());
        out.insert("item_hash".into(), e.item_hash.as_str().into());
        out.insert("item_type".into(), e.item_type.as_str().into());
        out.insert("sender".into(), e.sender.clone().into());
        out.insert("signature".into(), e.signature.clone().into());
        if with_size {
            out.insert("size".into(), m.size.into());
        }
        out.insert("time".into(), float(e.time));
        out.insert("type".into(), e.message_type.as_str().into());
        Value::Object(out)
    }

    #[test]
    fn messages_serialize_as_before_byte_for_byte() {
        for content in stored_contents() {
            for message_type in ["POST", "AGGREGATE", "STORE", "FORGET"] {
                let m = record(content.clone(), message_type);
                for format in [
                    ContentFormat::Full,
                    ContentFormat::Headers,
                    ContentFormat::None,
                ] {
                    for with_size in [true, false] {
                        let now = serde_json::to_string(&message(&m, with_size, format)).unwrap();
                        let before = message_before(&m, with_size, format).to_string();
                        assert_eq!(now, before, "{content:?} {format:?}");
                        let value = serde_json::to_value(message(&m, with_size, format)).unwrap();
                        assert_eq!(value, message_before(&m, with_size, format));
                    }
                }
            }
        }
    }

    #[test]
    fn posts_serialize_as_before_byte_for_byte() {
        for content in stored_contents().into_iter().map(Some).chain([None]) {
            for amended in [false, true] {
                let p = PostRecord {
                    original_item_hash: ItemHash::parse(&"b".repeat(64)).unwrap(),
                    original_type: "blog".to_owned(),
                    original_signature: None,
                    owner: "0xabc".to_owned(),
                    reference: Some("ref".to_owned()),
                    channel: Some("TEST".to_owned()),
                    created: 1_700_000_000.5,
                    latest_item_hash: ItemHash::parse(&"c".repeat(64)).unwrap(),
                    latest: Some(PostVersion {
                        chain: raleph_message::Chain::Eth,
                        signature: Some("0xsig".to_owned()),
                        item_type: ItemType::Inline,
                        item_content: Some("{\"a\": \"é\\n\"}".to_owned()),
                        time: 1_700_000_002.25,
                        size: 42,
                    }),
                    latest_content: content.clone(),
                    last_updated: 1_700_000_002.0,
                    amended,
                };
                let latest = p.latest.as_ref().unwrap();
                let content_before = p
                    .latest_content
                    .as_deref()
                    .map(parse_content)
                    .unwrap_or(Value::Null);
                let v0_before = json!({
                    "address": p.owner,
                    "chain": latest.chain,
                    "channel": p.channel,
                    "confirmations": [],
                    "confirmed": false,
                    "content": content_before,
                    "hash": p.original_item_hash,
                    "item_content": latest.item_content,
                    "item_hash": p.latest_item_hash,
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
                });
                let v1_before = json!({
                    "address": p.owner,
                    "channel": p.channel,
                    "content": content_before,
                    "created": iso_time(p.created),
                    "item_hash": p.latest_item_hash,
                    "last_updated": iso_time(p.last_updated),
                    "original_item_hash": p.original_item_hash,
                    "original_type": p.original_type,
                    "ref": p.reference,
                });
                assert_eq!(
                    serde_json::to_string(&post_v0(&p, &[])).unwrap(),
                    v0_before.to_string()
                );
                assert_eq!(
                    serde_json::to_string(&post_v1(&p)).unwrap(),
                    v1_before.to_string()
                );
            }
        }
    }
}
