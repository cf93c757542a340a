//! The sync payload protocols (`shared/spec/anchoring.md` B1, protocol.md 8.4): what the
//! string of a `SyncEvent` says, and the archive an `aleph-offchain` payload points to.
//!
//! - `aleph`, version 1: `{"protocol":"aleph","version":1,"content":{"messages":[...]}}`, the
//!   messages inline. Emitted on chain by old packers; today it is the archive format.
//! - `aleph-offchain`, version 1: `{"protocol":"aleph-offchain","version":1,"content":"<CID>"}`,
//!   the CID of an `aleph` archive. raleph adds `"merkle_root":"0x..."` (see [`crate::merkle`]);
//!   the reference's readers ignore unknown fields.
//! - `smart-contract`: a `MessageEvent`'s `(msgtype, msgcontent)`, not a JSON payload; see
//!   [`crate::events::EventKind::Message`].
//!
//! Parsing never panics and never reads past the named [`Limits`]: the size is checked before
//! the JSON is parsed, the message count while it is.

use std::fmt;

use alloy_primitives::B256;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The largest `SyncEvent` string read (an `aleph-offchain` payload is ~120 bytes; old inline
/// `aleph` payloads were larger, so leave room).
pub const DEFAULT_MAX_EVENT_PAYLOAD_BYTES: usize = 256 * 1024;
/// The largest archive read from a CID.
pub const DEFAULT_MAX_ARCHIVE_BYTES: usize = 64 * 1024 * 1024;
/// The reference's `aleph.jobs.max_unconfirmed_messages`: most messages in one archive.
pub const DEFAULT_MAX_ARCHIVE_MESSAGES: usize = 10_000;
/// A CID is under 100 characters in every base raleph meets; anything much longer is not one.
pub const MAX_CID_BYTES: usize = 256;
/// The only version of each protocol.
pub const PROTOCOL_VERSION: u64 = 1;

/// Bounds on what a chain and an archive may make the node parse.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest `SyncEvent` payload string, in bytes.
    pub max_event_payload_bytes: usize,
    /// Largest archive (the file an `aleph-offchain` CID names), in bytes.
    pub max_archive_bytes: usize,
    /// Most messages in one archive or inline payload.
    pub max_archive_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_payload_bytes: DEFAULT_MAX_EVENT_PAYLOAD_BYTES,
            max_archive_bytes: DEFAULT_MAX_ARCHIVE_BYTES,
            max_archive_messages: DEFAULT_MAX_ARCHIVE_MESSAGES,
        }
    }
}

impl Limits {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_event_payload_bytes < 1024 {
            return Err("max_event_payload_bytes must be at least 1024".to_owned());
        }
        if self.max_archive_bytes < 1024 {
            return Err("max_archive_bytes must be at least 1024".to_owned());
        }
        if self.max_archive_messages == 0 || self.max_archive_messages > crate::merkle::MAX_LEAVES {
            return Err(format!(
                "max_archive_messages must be between 1 and {} (a batch's Merkle tree)",
                crate::merkle::MAX_LEAVES
            ));
        }
        Ok(())
    }
}

/// Why a payload or an archive was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("payload of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is not valid JSON of the expected shape: {0}")]
    BadJson(String),
    #[error("unknown sync protocol {0:?}")]
    UnknownProtocol(String),
    #[error("unsupported version {version} of protocol {protocol:?} (only 1 is known)")]
    UnsupportedVersion { protocol: String, version: u64 },
    #[error("more than {limit} messages in one archive")]
    TooManyMessages { limit: usize },
    #[error("message {index} of the archive is not a JSON object")]
    MessageNotObject { index: usize },
    #[error("bad CID in aleph-offchain payload: {0}")]
    BadCid(String),
    #[error("an archive must use protocol \"aleph\", found {0:?}")]
    NotAnArchive(String),
    #[error(
        "MessageEvent type {0:?} is not a message type (ASCII letters, digits, _; at most {MAX_MESSAGE_TYPE_BYTES} bytes)"
    )]
    BadMessageType(String),
}

/// A `SyncEvent` payload, parsed.
#[derive(Debug)]
pub enum SyncPayload {
    /// `aleph`: messages inline, each the exact JSON text received (the caller parses them as
    /// envelopes; keeping the text avoids any re-serialization).
    Aleph { messages: Vec<Box<RawValue>> },
    /// `aleph-offchain`: the archive's CID, and the batch's Merkle root if a raleph packer
    /// added one (a malformed root is dropped, not an error: the reference accepts the
    /// payload, so must we).
    AlephOffchain {
        cid: String,
        merkle_root: Option<B256>,
    },
}

// `RawValue` has no `PartialEq`: messages compare by their text.
impl PartialEq for SyncPayload {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SyncPayload::Aleph { messages: a }, SyncPayload::Aleph { messages: b }) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.get() == y.get())
            }
            (
                SyncPayload::AlephOffchain {
                    cid: a,
                    merkle_root: ra,
                },
                SyncPayload::AlephOffchain {
                    cid: b,
                    merkle_root: rb,
                },
            ) => a == b && ra == rb,
            _ => false,
        }
    }
}

impl Eq for SyncPayload {}

impl SyncPayload {
    /// The protocol name as the reference records it in `chain_txs.protocol`.
    pub fn protocol(&self) -> &'static str {
        match self {
            SyncPayload::Aleph { .. } => "aleph",
            SyncPayload::AlephOffchain { .. } => "aleph-offchain",
        }
    }

    /// Parses a `SyncEvent`'s string.
    pub fn parse(text: &str, limits: &Limits) -> Result<Self, PayloadError> {
        check_size(text.len(), limits.max_event_payload_bytes)?;
        let envelope: Envelope<'_> =
            serde_json::from_str(text).map_err(|e| PayloadError::BadJson(e.to_string()))?;
        check_version(envelope.protocol.as_ref(), envelope.version)?;
        match envelope.protocol.as_ref() {
            "aleph" => Ok(SyncPayload::Aleph {
                messages: parse_messages(envelope.content.get(), limits)?,
            }),
            "aleph-offchain" => {
                let cid: String = serde_json::from_str(envelope.content.get())
                    .map_err(|_| PayloadError::BadCid("content must be a string".to_owned()))?;
                check_cid(&cid)?;
                let merkle_root = envelope
                    .merkle_root
                    .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                    .and_then(|hex| hex.parse::<B256>().ok());
                Ok(SyncPayload::AlephOffchain { cid, merkle_root })
            }
            other => Err(PayloadError::UnknownProtocol(other.to_owned())),
        }
    }
}

/// The longest `MessageEvent` `msgtype` read: message types are short upper-case words.
pub const MAX_MESSAGE_TYPE_BYTES: usize = 32;

/// A `MessageEvent` (the `smart-contract` protocol), checked: what the node turns into one
/// unsigned message (protocol.md 8.4; sender = the event's emitter, time = the event's time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContractMessage {
    /// `msgtype` `STORE_IPFS`: a STORE of the IPFS file `cid` (the node builds its content).
    StoreIpfs { cid: String },
    /// Any other type: `item_content` is `msgcontent` as is (its item hash is the sha256 of
    /// these bytes); the pipeline validates it like any message of `message_type`.
    Inline {
        message_type: String,
        item_content: String,
    },
}

impl ContractMessage {
    /// Checks a `MessageEvent`'s strings: `msgcontent` within `limits.max_event_payload_bytes`,
    /// `msgtype` a short ASCII word.
    pub fn parse(msgtype: &str, msgcontent: &str, limits: &Limits) -> Result<Self, PayloadError> {
        check_size(msgcontent.len(), limits.max_event_payload_bytes)?;
        if msgtype.is_empty()
            || msgtype.len() > MAX_MESSAGE_TYPE_BYTES
            || !msgtype
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(PayloadError::BadMessageType(
                msgtype.chars().take(MAX_MESSAGE_TYPE_BYTES).collect(),
            ));
        }
        if msgtype == "STORE_IPFS" {
            check_cid(msgcontent)?;
            return Ok(ContractMessage::StoreIpfs {
                cid: msgcontent.to_owned(),
            });
        }
        Ok(ContractMessage::Inline {
            message_type: msgtype.to_owned(),
            item_content: msgcontent.to_owned(),
        })
    }
}

/// Parses an archive (the file an `aleph-offchain` CID names): an `aleph` payload under
/// `limits.max_archive_bytes`. Returns each message's JSON text.
pub fn parse_archive(bytes: &[u8], limits: &Limits) -> Result<Vec<Box<RawValue>>, PayloadError> {
    check_size(bytes.len(), limits.max_archive_bytes)?;
    let envelope: Envelope<'_> =
        serde_json::from_slice(bytes).map_err(|e| PayloadError::BadJson(e.to_string()))?;
    check_version(envelope.protocol.as_ref(), envelope.version)?;
    if envelope.protocol != "aleph" {
        return Err(PayloadError::NotAnArchive(envelope.protocol.into_owned()));
    }
    parse_messages(envelope.content.get(), limits)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    protocol: std::borrow::Cow<'a, str>,
    version: u64,
    #[serde(borrow)]
    content: &'a RawValue,
    #[serde(default, borrow)]
    merkle_root: Option<&'a RawValue>,
}

fn check_size(size: usize, limit: usize) -> Result<(), PayloadError> {
    if size > limit {
        return Err(PayloadError::TooLarge { size, limit });
    }
    Ok(())
}

fn check_version(protocol: &str, version: u64) -> Result<(), PayloadError> {
    if !matches!(protocol, "aleph" | "aleph-offchain") {
        return Err(PayloadError::UnknownProtocol(protocol.to_owned()));
    }
    if version != PROTOCOL_VERSION {
        return Err(PayloadError::UnsupportedVersion {
            protocol: protocol.to_owned(),
            version,
        });
    }
    Ok(())
}

fn check_cid(cid: &str) -> Result<(), PayloadError> {
    if cid.is_empty() {
        return Err(PayloadError::BadCid("empty".to_owned()));
    }
    if cid.len() > MAX_CID_BYTES {
        return Err(PayloadError::BadCid(format!(
            "{} bytes, longer than {MAX_CID_BYTES}",
            cid.len()
        )));
    }
    if !cid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(PayloadError::BadCid(
            "only ASCII letters and digits may appear in a CID".to_owned(),
        ));
    }
    Ok(())
}

/// `{"messages": [...]}`, counting messages as they are read so that a huge array stops at
/// the limit rather than after it is all in memory.
fn parse_messages(content: &str, limits: &Limits) -> Result<Vec<Box<RawValue>>, PayloadError> {
    let mut de = serde_json::Deserializer::from_str(content);
    let parsed = ContentSeed {
        limit: limits.max_archive_messages,
    }
    .deserialize(&mut de);
    let messages = match parsed {
        Ok(messages) => messages,
        Err(e) => {
            let text = e.to_string();
            // The seed reports the limit through serde's custom error; map it back.
            if text.starts_with(TOO_MANY) {
                return Err(PayloadError::TooManyMessages {
                    limit: limits.max_archive_messages,
                });
            }
            return Err(PayloadError::BadJson(text));
        }
    };
    for (index, message) in messages.iter().enumerate() {
        if !message.get().starts_with('{') {
            return Err(PayloadError::MessageNotObject { index });
        }
    }
    Ok(messages)
}

const TOO_MANY: &str = "too many messages";

struct ContentSeed {
    limit: usize,
}

impl<'de> de::DeserializeSeed<'de> for ContentSeed {
    type Value = Vec<Box<RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ContentSeed {
    type Value = Vec<Box<RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a \"messages\" array")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut messages = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "messages" {
                if messages.is_some() {
                    return Err(de::Error::duplicate_field("messages"));
                }
                messages = Some(map.next_value_seed(MessagesSeed { limit: self.limit })?);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        messages.ok_or_else(|| de::Error::missing_field("messages"))
    }
}

struct MessagesSeed {
    limit: usize,
}

impl<'de> de::DeserializeSeed<'de> for MessagesSeed {
    type Value = Vec<Box<RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed {
    type Value = Vec<Box<RawValue>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(message) = seq.next_element::<Box<RawValue>>()? {
            if out.len() == self.limit {
                return Err(de::Error::custom(TOO_MANY));
            }
            out.push(message);
        }
        Ok(out)
    }
}

/// One message of an archive, with exactly the fields, in the order, of the reference's
/// `OnChainMessage` (protocol.md 8.4): `sender, chain, signature, type, item_content,
/// item_type, item_hash, time, channel`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchiveMessage {
    pub sender: String,
    pub chain: String,
    pub signature: Option<String>,
    #[serde(rename = "type")]
    pub message_type: String,
    pub item_content: Option<String>,
    pub item_type: String,
    pub item_hash: String,
    /// Seconds since the epoch, as a float (the reference's `time`).
    pub time: f64,
    pub channel: Option<String>,
}

#[derive(Serialize)]
struct ArchiveOut<'a> {
    protocol: &'static str,
    version: u64,
    content: ArchiveContent<'a>,
}

#[derive(Serialize)]
struct ArchiveContent<'a> {
    messages: &'a [ArchiveMessage],
}

/// The `aleph` archive of `messages`, the bytes a packer stores and names by CID. Refuses more
/// messages than `limits.max_archive_messages` and an archive over `limits.max_archive_bytes`
/// (a reader with the same limits would refuse it).
pub fn build_archive(
    messages: &[ArchiveMessage],
    limits: &Limits,
) -> Result<Vec<u8>, PayloadError> {
    if messages.len() > limits.max_archive_messages {
        return Err(PayloadError::TooManyMessages {
            limit: limits.max_archive_messages,
        });
    }
    let bytes = serde_json::to_vec(&ArchiveOut {
        protocol: "aleph",
        version: PROTOCOL_VERSION,
        content: ArchiveContent { messages },
    })
    .map_err(|e| PayloadError::BadJson(e.to_string()))?;
    check_size(bytes.len(), limits.max_archive_bytes)?;
    Ok(bytes)
}

#[derive(Serialize)]
struct OffchainOut<'a> {
    protocol: &'static str,
    version: u64,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    merkle_root: Option<String>,
}

/// The `aleph-offchain` payload naming the archive `cid`, with the batch's Merkle root when
/// given (raleph's addition; `0x` and 64 lowercase hex digits).
pub fn offchain_payload(cid: &str, merkle_root: Option<B256>) -> Result<String, PayloadError> {
    check_cid(cid)?;
    serde_json::to_string(&OffchainOut {
        protocol: "aleph-offchain",
        version: PROTOCOL_VERSION,
        content: cid,
        merkle_root: merkle_root.map(|root| format!("{root:#x}")),
    })
    .map_err(|e| PayloadError::BadJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CID: &str = "QmPZ9gcCEpqKTo6aq61g2nXGUhM4iCL3ewB6LDXZCtioEB";

    fn message(i: usize) -> ArchiveMessage {
        ArchiveMessage {
            sender: format!("0x{:040x}", i),
            chain: "ETH".to_owned(),
            signature: Some(format!("0x{:0130x}", i)),
            message_type: "POST".to_owned(),
            item_content: Some(format!("{{\"n\":{i},\"s\":\"é\\\"\"}}")),
            item_type: "inline".to_owned(),
            item_hash: format!("{:064x}", i),
            time: 1_700_000_000.25 + i as f64,
            channel: Some("TEST".to_owned()),
        }
    }

    #[test]
    fn offchain_round_trip() {
        let root = B256::repeat_byte(0xab);
        let text = offchain_payload(CID, Some(root)).unwrap();
        assert!(text.starts_with(r#"{"protocol":"aleph-offchain","version":1,"content":"Qm"#));
        assert_eq!(
            SyncPayload::parse(&text, &Limits::default()).unwrap(),
            SyncPayload::AlephOffchain {
                cid: CID.to_owned(),
                merkle_root: Some(root)
            }
        );
        // The reference's own payload, without a root, and a malformed root, are accepted.
        let plain = format!(r#"{{"protocol":"aleph-offchain","version":1,"content":"{CID}"}}"#);
        let odd = format!(
            r#"{{"protocol":"aleph-offchain","version":1,"content":"{CID}","merkle_root":42}}"#
        );
        for text in [plain, odd] {
            assert_eq!(
                SyncPayload::parse(&text, &Limits::default()).unwrap(),
                SyncPayload::AlephOffchain {
                    cid: CID.to_owned(),
                    merkle_root: None
                }
            );
        }
    }

    #[test]
    fn archive_round_trip_in_the_reference_field_order() {
        let messages: Vec<_> = (0..3).map(message).collect();
        let bytes = build_archive(&messages, &Limits::default()).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with(
            r#"{"protocol":"aleph","version":1,"content":{"messages":[{"sender":"0x"#
        ));
        let first = text.find("\"sender\"").unwrap();
        let order: Vec<usize> = [
            "\"chain\"",
            "\"signature\"",
            "\"type\"",
            "\"item_content\"",
            "\"item_type\"",
            "\"item_hash\"",
            "\"time\"",
            "\"channel\"",
        ]
        .iter()
        .map(|k| text[first..].find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

        let back = parse_archive(&bytes, &Limits::default()).unwrap();
        let decoded: Vec<ArchiveMessage> = back
            .iter()
            .map(|raw| serde_json::from_str(raw.get()).unwrap())
            .collect();
        assert_eq!(decoded, messages);

        // The same text as an inline `aleph` sync payload.
        match SyncPayload::parse(text, &Limits::default()).unwrap() {
            SyncPayload::Aleph { messages: inline } => assert_eq!(inline.len(), 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_payloads_are_refused_by_name() {
        let limits = Limits::default();
        type Expect = fn(&PayloadError) -> bool;
        let cases: Vec<(String, Expect)> = vec![
            ("not json".into(), |e| matches!(e, PayloadError::BadJson(_))),
            ("[1,2]".into(), |e| matches!(e, PayloadError::BadJson(_))),
            (
                format!(r#"{{"protocol":"bitcoin","version":1,"content":"{CID}"}}"#),
                |e| matches!(e, PayloadError::UnknownProtocol(p) if p == "bitcoin"),
            ),
            (
                format!(r#"{{"protocol":"aleph-offchain","version":2,"content":"{CID}"}}"#),
                |e| matches!(e, PayloadError::UnsupportedVersion { version: 2, .. }),
            ),
            (
                r#"{"protocol":"aleph-offchain","version":1,"content":{"messages":[]}}"#.into(),
                |e| matches!(e, PayloadError::BadCid(_)),
            ),
            (
                r#"{"protocol":"aleph-offchain","version":1,"content":"Qm/../../etc"}"#.into(),
                |e| matches!(e, PayloadError::BadCid(_)),
            ),
            (
                r#"{"protocol":"aleph","version":1,"content":{"messages":[1]}}"#.into(),
                |e| matches!(e, PayloadError::MessageNotObject { index: 0 }),
            ),
            (
                r#"{"protocol":"aleph","version":1,"content":{}}"#.into(),
                |e| matches!(e, PayloadError::BadJson(_)),
            ),
            (
                format!(r#"{{"protocol":"aleph","version":1,"content":"{CID}"}}"#),
                |e| matches!(e, PayloadError::BadJson(_)),
            ),
            ("x".repeat(limits.max_event_payload_bytes + 1), |e| {
                matches!(e, PayloadError::TooLarge { .. })
            }),
        ];
        for (text, expected) in cases {
            let err = SyncPayload::parse(&text, &limits).unwrap_err();
            assert!(expected(&err), "{text:.80}: {err:?}");
        }

        let small = Limits {
            max_archive_messages: 2,
            ..Limits::default()
        };
        let three =
            build_archive(&(0..3).map(message).collect::<Vec<_>>(), &Limits::default()).unwrap();
        assert_eq!(
            parse_archive(&three, &small).unwrap_err(),
            PayloadError::TooManyMessages { limit: 2 }
        );
        assert_eq!(
            build_archive(&(0..3).map(message).collect::<Vec<_>>(), &small).unwrap_err(),
            PayloadError::TooManyMessages { limit: 2 }
        );
        let offchain = offchain_payload(CID, None).unwrap();
        assert_eq!(
            parse_archive(offchain.as_bytes(), &small).unwrap_err(),
            PayloadError::NotAnArchive("aleph-offchain".to_owned())
        );
    }

    #[test]
    fn contract_messages() {
        let limits = Limits::default();
        assert_eq!(
            ContractMessage::parse("STORE_IPFS", CID, &limits).unwrap(),
            ContractMessage::StoreIpfs {
                cid: CID.to_owned()
            }
        );
        assert_eq!(
            ContractMessage::parse("POST", "{\"a\":1}", &limits).unwrap(),
            ContractMessage::Inline {
                message_type: "POST".to_owned(),
                item_content: "{\"a\":1}".to_owned()
            }
        );
        assert!(matches!(
            ContractMessage::parse("STORE_IPFS", "not a cid!", &limits),
            Err(PayloadError::BadCid(_))
        ));
        for bad in ["", "POST\n", &"A".repeat(33)] {
            assert!(matches!(
                ContractMessage::parse(bad, "{}", &limits),
                Err(PayloadError::BadMessageType(_))
            ));
        }
        let huge = "x".repeat(limits.max_event_payload_bytes + 1);
        assert!(matches!(
            ContractMessage::parse("POST", &huge, &limits),
            Err(PayloadError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_message_events_never_panic(msgtype in ".{0,40}", msgcontent in ".{0,200}") {
            if let Ok(ContractMessage::Inline { message_type, item_content }) =
                ContractMessage::parse(&msgtype, &msgcontent, &Limits::default())
            {
                prop_assert_eq!(message_type, msgtype);
                prop_assert_eq!(item_content, msgcontent);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,400}") {
            let _ = SyncPayload::parse(&text, &Limits::default());
            let _ = parse_archive(text.as_bytes(), &Limits::default());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_archive(&bytes, &Limits::default());
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = SyncPayload::parse(text, &Limits::default());
            }
        }

        #[test]
        fn near_valid_payloads_never_panic(
            protocol in prop_oneof![Just("aleph".to_owned()), Just("aleph-offchain".to_owned()), "[a-z-]{0,16}"],
            version in any::<i64>(),
            content in prop_oneof![Just(format!("\"{CID}\"")), Just("{\"messages\":[{}]}".to_owned()), "[\\[\\]{}\":, a-z0-9]{0,40}"],
        ) {
            let text = format!(r#"{{"protocol":"{protocol}","version":{version},"content":{content}}}"#);
            let _ = SyncPayload::parse(&text, &Limits::default());
            let _ = parse_archive(text.as_bytes(), &Limits::default());
        }

        #[test]
        fn valid_offchain_payloads_round_trip(cid in "[A-Za-z0-9]{1,100}", root in proptest::option::of(any::<[u8; 32]>())) {
            let root = root.map(B256::from);
            let text = offchain_payload(&cid, root).unwrap();
            prop_assert_eq!(
                SyncPayload::parse(&text, &Limits::default()).unwrap(),
                SyncPayload::AlephOffchain { cid, merkle_root: root }
            );
        }

        #[test]
        fn valid_archives_round_trip(
            n in 0usize..20,
            content in proptest::option::of(".{0,60}"),
            time in 0.0f64..4e9,
        ) {
            let messages: Vec<ArchiveMessage> = (0..n)
                .map(|i| ArchiveMessage { item_content: content.clone(), time, ..message(i) })
                .collect();
            let bytes = build_archive(&messages, &Limits::default()).unwrap();
            let back: Vec<ArchiveMessage> = parse_archive(&bytes, &Limits::default())
                .unwrap()
                .iter()
                .map(|raw| serde_json::from_str(raw.get()).unwrap())
                .collect();
            prop_assert_eq!(back, messages);
        }
    }
}
