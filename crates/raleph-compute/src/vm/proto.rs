//! The messages of the control channel (PROTOCOL.md §6–§8): what the host sends, encoded as
//! msgpack maps, and what the guest sends, decoded into [`GuestMessage`]. Decoding never
//! panics and never allocates much more than the frame itself: unknown keys are skipped, the
//! header list is bounded, nesting is bounded.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_bytes::ByteBuf;

use crate::logs::Stream;

/// Most response headers a reply may carry.
pub const MAX_HEADERS: usize = 1024;
/// Deepest msgpack nesting accepted from a guest.
const MAX_DEPTH: usize = 32;

/// Guest network under QEMU user networking (§7).
pub const GUEST_IP: &str = "10.0.2.15/24";
pub const GUEST_ROUTE: &str = "10.0.2.2";
pub const GUEST_DNS: &str = "10.0.2.3";
/// Where the guest finds the node's API (slirp `guestfwd`).
pub const GUEST_API_ADDR: &str = "10.0.2.100";

/// Visitor methods mapping every non-text scalar (and nil) to one value.
macro_rules! scalars_to {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

// ----- host → guest --------------------------------------------------------------------------

#[derive(Serialize)]
struct HelloCommand {
    command: &'static str,
}

pub fn hello() -> Vec<u8> {
    named(&HelloCommand { command: "hello" })
}

#[derive(Serialize)]
struct Command {
    id: u64,
    command: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<u64>,
}

pub fn halt(id: u64) -> Vec<u8> {
    named(&Command {
        id,
        command: "halt",
        target: None,
    })
}

pub fn cancel(id: u64, target: u64) -> Vec<u8> {
    named(&Command {
        id,
        command: "cancel",
        target: Some(target),
    })
}

#[derive(Serialize)]
struct Resume<'a> {
    id: u64,
    command: &'static str,
    time: f64,
    #[serde(with = "serde_bytes")]
    entropy: &'a [u8],
}

/// After a restore of a configured program: sets the guest clock and reseeds its RNGs.
pub fn resume(id: u64, time: f64, entropy: &[u8]) -> Vec<u8> {
    named(&Resume {
        id,
        command: "resume",
        time,
        entropy,
    })
}

/// The configuration map (§7).
#[derive(Serialize)]
pub struct Config<'a> {
    pub vm_hash: &'a str,
    pub encoding: &'a str,
    pub entrypoint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<&'a str>,
    #[serde(with = "serde_bytes")]
    pub code: &'a [u8],
    pub input_data: Option<()>,
    pub variables: Option<Variables<'a>>,
    pub volumes: [u8; 0],
    pub ip: &'a str,
    pub route: &'a str,
    pub dns_servers: &'a [&'a str],
    pub api_host: &'a str,
    pub time: f64,
    #[serde(with = "serde_bytes")]
    pub entropy: &'a [u8],
    pub lifespan_timeout: f64,
    pub shutdown_timeout: f64,
}

/// Environment variables as a msgpack map, in order (a repeated name: the last one wins).
pub struct Variables<'a>(pub &'a [(String, String)]);

impl Serialize for Variables<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

pub fn config(config: &Config<'_>) -> Vec<u8> {
    named(config)
}

struct Bin<'a>(&'a [u8]);

impl Serialize for Bin<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

struct HeaderList<'a>(&'a [(Vec<u8>, Vec<u8>)]);

impl Serialize for HeaderList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(k, v)| (Bin(k), Bin(v))))
    }
}

#[derive(Serialize)]
struct HttpScopeOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    method: &'a str,
    path: &'a str,
    query_string: &'a str,
    headers: HeaderList<'a>,
    body: Bin<'a>,
}

#[derive(Serialize)]
struct Request<S> {
    id: u64,
    scope: S,
}

pub fn http_request(
    id: u64,
    method: &str,
    path: &str,
    query_string: &str,
    headers: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
) -> Vec<u8> {
    named(&Request {
        id,
        scope: HttpScopeOut {
            kind: "http",
            method,
            path,
            query_string,
            headers: HeaderList(headers),
            body: Bin(body),
        },
    })
}

#[derive(Serialize)]
struct HttpHeadOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    method: &'a str,
    path: &'a str,
    query_string: &'a str,
    headers: HeaderList<'a>,
}

#[derive(Serialize)]
struct StreamedRequest<'a> {
    id: u64,
    scope: HttpHeadOut<'a>,
    streamed: bool,
}

/// A request whose body follows in [`body_chunk`] frames (§8, streamed exchanges).
pub fn http_request_streamed(
    id: u64,
    method: &str,
    path: &str,
    query_string: &str,
    headers: &[(Vec<u8>, Vec<u8>)],
) -> Vec<u8> {
    named(&StreamedRequest {
        id,
        scope: HttpHeadOut {
            kind: "http",
            method,
            path,
            query_string,
            headers: HeaderList(headers),
        },
        streamed: true,
    })
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: u64,
    chunk: Bin<'a>,
    more: bool,
}

/// One piece of a streamed request's body; the last one has `more: false`.
pub fn body_chunk(id: u64, chunk: &[u8], more: bool) -> Vec<u8> {
    named(&ChunkOut {
        id,
        chunk: Bin(chunk),
        more,
    })
}

/// The message travels as a msgpack map when it is JSON (as the reference passes the parsed
/// message), as bytes otherwise.
enum MessageBody<'a> {
    Json(serde_json::Value),
    Raw(&'a [u8]),
}

impl Serialize for MessageBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MessageBody::Json(value) => value.serialize(serializer),
            MessageBody::Raw(bytes) => serializer.serialize_bytes(bytes),
        }
    }
}

#[derive(Serialize)]
struct MessageScopeOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    body: MessageBody<'a>,
}

pub fn message_request(id: u64, message_json: &[u8]) -> Vec<u8> {
    let body = match serde_json::from_slice(message_json) {
        Ok(value) => MessageBody::Json(value),
        Err(_) => MessageBody::Raw(message_json),
    };
    named(&Request {
        id,
        scope: MessageScopeOut {
            kind: "aleph.message",
            body,
        },
    })
}

fn named<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Maps of strings, integers, floats and bytes: encoding into a Vec cannot fail.
    rmp_serde::to_vec_named(value).unwrap_or_default()
}

// ----- guest → host --------------------------------------------------------------------------

/// One decoded guest frame.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestMessage {
    Log {
        stream: Stream,
        data: Vec<u8>,
    },
    Hello {
        state: String,
    },
    ConfigReply(Result<(), String>),
    Reply {
        id: u64,
        reply: Reply,
    },
    /// A piece of a streamed response body; the last one has `more: false`.
    Chunk {
        id: u64,
        data: Vec<u8>,
        more: bool,
    },
    /// A well-formed frame of no known shape.
    Other,
}

/// A reply to a request or command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Http {
        status: u16,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        body: Vec<u8>,
    },
    /// The head of a streamed response: its body follows in [`GuestMessage::Chunk`] frames.
    Head {
        status: u16,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// The program raised (or the request could not run): the traceback, else the error.
    Error(String),
    /// A reply with neither status nor error: an `aleph.message` result or a command's answer.
    Done,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub id: Option<u64>,
    pub reason: String,
}

pub fn parse(payload: &[u8]) -> Result<GuestMessage, Malformed> {
    let mut de = rmp_serde::Deserializer::from_read_ref(payload);
    de.set_max_depth(MAX_DEPTH);
    let raw = RawFrame::deserialize(&mut de).map_err(|e| Malformed {
        id: peek_id(payload),
        reason: e.to_string(),
    })?;
    Ok(raw.classify())
}

/// The request id of a reply whose first key is `id` (the guest writes replies so), read from
/// the first bytes of a frame that could not be decoded whole.
pub fn peek_id(head: &[u8]) -> Option<u64> {
    let rest = match *head.first()? {
        0x81..=0x8f => &head[1..],
        0xde => head.get(3..)?,
        0xdf => head.get(5..)?,
        _ => return None,
    };
    let rest = match rest {
        [0xa2, b'i', b'd', rest @ ..] | [0xd9, 2, b'i', b'd', rest @ ..] => rest,
        _ => return None,
    };
    let be = |n: usize| -> Option<u64> {
        let bytes = rest.get(1..1 + n)?;
        Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    match *rest.first()? {
        b @ 0x00..=0x7f => Some(u64::from(b)),
        0xcc => be(1),
        0xcd => be(2),
        0xce => be(4),
        0xcf => be(8),
        _ => None,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawFrame {
    log: Option<String>,
    data: Option<ByteBuf>,
    id: Option<u64>,
    version: Option<IgnoredAny>,
    state: Option<String>,
    success: Option<bool>,
    error: Option<String>,
    traceback: Option<String>,
    headers: Option<RawHead>,
    body: Option<RawBody>,
    chunk: Option<ByteBuf>,
    more: Option<bool>,
    streamed: Option<bool>,
}

impl RawFrame {
    fn classify(self) -> GuestMessage {
        if let Some(stream) = self.log {
            let stream = if stream == "stdout" {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            let data = self.data.map(ByteBuf::into_vec).unwrap_or_default();
            return GuestMessage::Log { stream, data };
        }
        if let Some(id) = self.id {
            if let Some(chunk) = self.chunk {
                return GuestMessage::Chunk {
                    id,
                    data: chunk.into_vec(),
                    more: self.more.unwrap_or(false),
                };
            }
            let reply = if let Some(error) = self.error {
                match self.traceback {
                    Some(tb) if !tb.trim().is_empty() => Reply::Error(tb),
                    _ => Reply::Error(error),
                }
            } else if let Some(RawHead {
                status: Some(status),
                headers,
            }) = self.headers
            {
                let headers = headers.map(|h| h.0).unwrap_or_default();
                if self.streamed == Some(true) {
                    Reply::Head { status, headers }
                } else {
                    Reply::Http {
                        status,
                        headers,
                        body: self.body.and_then(|b| b.0).unwrap_or_default(),
                    }
                }
            } else {
                Reply::Done
            };
            return GuestMessage::Reply { id, reply };
        }
        if self.version.is_some() {
            return GuestMessage::Hello {
                state: self.state.unwrap_or_default(),
            };
        }
        if let Some(success) = self.success {
            return GuestMessage::ConfigReply(if success {
                Ok(())
            } else {
                let mut text = self.error.unwrap_or_default();
                if let Some(tb) = self.traceback.filter(|tb| !tb.trim().is_empty()) {
                    text.push('\n');
                    text.push_str(&tb);
                }
                Err(text)
            });
        }
        GuestMessage::Other
    }
}

/// `{"status": int, "headers": [[bin, bin], …]}` of an HTTP reply; `{}` for other replies.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawHead {
    status: Option<u16>,
    headers: Option<Headers>,
}

struct Headers(Vec<(Vec<u8>, Vec<u8>)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of [name, value] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Headers, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some((k, v)) = seq.next_element::<(ByteBuf, ByteBuf)>()? {
                    if out.len() == MAX_HEADERS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_HEADERS} response headers"
                        )));
                    }
                    out.push((k.into_vec(), v.into_vec()));
                }
                Ok(Headers(out))
            }
        }
        deserializer.deserialize_seq(V)
    }
}

/// The `body` of a reply: `{"body": bin}` for HTTP; for `aleph.message` whatever the app sent.
/// Only `body.body` as bytes (or text) is kept; any other shape is skipped.
#[derive(Default)]
struct RawBody(Option<Vec<u8>>);

impl<'de> Deserialize<'de> for RawBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBody;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a body map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBody, A::Error> {
                let mut body = None;
                while let Some(key) = map.next_key::<Key>()? {
                    if key.0 && body.is_none() {
                        body = map.next_value::<Lenient>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(RawBody(body))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawBody, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| RawBody(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawBody, E> {
                Ok(RawBody(None))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<RawBody, E> {
                Ok(RawBody(None))
            }
            scalars_to!(RawBody(None));
        }
        deserializer.deserialize_any(V)
    }
}

/// A map key: `true` when it is "body".
struct Key(bool);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v == "body"))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key, E> {
                Ok(Key(v == b"body"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Key, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Key(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Key, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Key(false))
            }
            scalars_to!(Key(false));
        }
        deserializer.deserialize_any(V)
    }
}

/// Bytes or text as bytes; anything else skipped.
struct Lenient(Option<Vec<u8>>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                Ok(Lenient(Some(v.as_bytes().to_vec())))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Lenient, E> {
                Ok(Lenient(Some(v.to_vec())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Lenient(None))
            }
            scalars_to!(Lenient(None));
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pack<T: Serialize>(value: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(value).unwrap()
    }

    #[derive(Serialize)]
    struct HttpReply<'a> {
        id: u64,
        headers: Head<'a>,
        body: BodyOut<'a>,
        output: &'a str,
    }
    #[derive(Serialize)]
    struct Head<'a> {
        status: u16,
        headers: HeaderList<'a>,
    }
    #[derive(Serialize)]
    struct BodyOut<'a> {
        body: Bin<'a>,
    }

    #[test]
    fn http_reply() {
        let headers = vec![
            (b"set-cookie".to_vec(), b"a=1".to_vec()),
            (b"set-cookie".to_vec(), b"b=2".to_vec()),
        ];
        let frame = pack(&HttpReply {
            id: 300,
            headers: Head {
                status: 201,
                headers: HeaderList(&headers),
            },
            body: BodyOut { body: Bin(b"hi") },
            output: "",
        });
        assert_eq!(peek_id(&frame), Some(300));
        assert_eq!(
            parse(&frame).unwrap(),
            GuestMessage::Reply {
                id: 300,
                reply: Reply::Http {
                    status: 201,
                    headers,
                    body: b"hi".to_vec()
                }
            }
        );
    }

    #[test]
    fn other_shapes() {
        let f = pack(&json!({"version": "2.0.0", "state": "waiting_config", "uptime": 1.5}));
        assert_eq!(
            parse(&f).unwrap(),
            GuestMessage::Hello {
                state: "waiting_config".into()
            }
        );
        let f = pack(&json!({"success": true}));
        assert_eq!(parse(&f).unwrap(), GuestMessage::ConfigReply(Ok(())));
        let f = pack(&json!({"success": false, "error": "E", "traceback": "T"}));
        assert_eq!(
            parse(&f).unwrap(),
            GuestMessage::ConfigReply(Err("E\nT".into()))
        );
        let f = pack(&json!({"id": 7, "error": "boom", "traceback": "Traceback…", "output": ""}));
        assert_eq!(
            parse(&f).unwrap(),
            GuestMessage::Reply {
                id: 7,
                reply: Reply::Error("Traceback…".into())
            }
        );
        // aleph.message result: headers {} and the app's own message as the body.
        let f = pack(
            &json!({"id": 8, "headers": {}, "body": {"type": "x", "body": [1, 2], "n": {"a": null}}, "output": ""}),
        );
        assert_eq!(
            parse(&f).unwrap(),
            GuestMessage::Reply {
                id: 8,
                reply: Reply::Done
            }
        );
        let f = pack(&json!({"id": 9, "pong": true, "state": "ready"}));
        assert_eq!(
            parse(&f).unwrap(),
            GuestMessage::Reply {
                id: 9,
                reply: Reply::Done
            }
        );
        let f = rmp_serde::to_vec_named(&LogOut {
            log: "stdout",
            data: Bin(b"hello\n"),
        })
        .unwrap();
        assert_eq!(
            parse(&f).unwrap(),
            GuestMessage::Log {
                stream: Stream::Stdout,
                data: b"hello\n".to_vec()
            }
        );
        assert_eq!(parse(&pack(&json!({"x": 1}))).unwrap(), GuestMessage::Other);
    }

    #[derive(Serialize)]
    struct LogOut<'a> {
        log: &'a str,
        data: Bin<'a>,
    }

    #[test]
    fn malformed_frames_are_errors() {
        let f = pack(&json!({"id": 5, "headers": {"status": 99999}}));
        let err = parse(&f).unwrap_err();
        assert_eq!(err.id, Some(5));
        assert!(parse(&[]).is_err());
        assert!(parse(&[0xc1]).is_err());
        assert!(parse(&[0xdf, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Deep nesting is refused, not recursed into.
        let mut deep = vec![0x81, 0xa1, b'x'];
        deep.extend(std::iter::repeat_n(0x91, 10_000));
        deep.push(0xc0);
        assert!(parse(&deep).is_err());
        assert_eq!(peek_id(&[0x83, 0xa2, b'i', b'd', 0xcd, 1, 2]), Some(258));
        assert_eq!(peek_id(&[0x83, 0xa3, b'l', b'o', b'g']), None);
        assert_eq!(peek_id(&[0x83, 0xa2, b'i', b'd', 0xcf, 1]), None);
    }

    fn sample_reply() -> Vec<u8> {
        let headers = vec![(b"content-type".to_vec(), b"text/plain".to_vec())];
        pack(&HttpReply {
            id: 77,
            headers: Head {
                status: 200,
                headers: HeaderList(&headers),
            },
            body: BodyOut {
                body: Bin(b"hello"),
            },
            output: "out",
        })
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&data);
            let _ = peek_id(&data);
        }

        #[test]
        fn mutated_replies_never_panic(
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
                1..8,
            ),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let mut frame = sample_reply();
            for (at, byte) in flips {
                let i = at.index(frame.len());
                frame[i] = byte;
            }
            let end = cut.index(frame.len() + 1);
            if let Ok(GuestMessage::Reply { reply: Reply::Http { headers, body, .. }, .. }) = parse(&frame[..end]) {
                proptest::prop_assert!(headers.len() <= MAX_HEADERS && body.len() <= end);
            }
        }
    }

    #[test]
    fn too_many_headers() {
        let headers: Vec<_> = (0..MAX_HEADERS + 1).map(|_| (vec![], vec![])).collect();
        let f = pack(&HttpReply {
            id: 1,
            headers: Head {
                status: 200,
                headers: HeaderList(&headers),
            },
            body: BodyOut { body: Bin(b"") },
            output: "",
        });
        assert!(parse(&f).unwrap_err().reason.contains("headers"));
    }

    #[test]
    fn streamed_shapes() {
        let head =
            pack(&json!({"id": 5, "headers": {"status": 201, "headers": []}, "streamed": true}));
        assert_eq!(
            parse(&head).unwrap(),
            GuestMessage::Reply {
                id: 5,
                reply: Reply::Head {
                    status: 201,
                    headers: vec![]
                }
            }
        );
        let chunk = rmp_serde::to_vec_named(&ChunkOut {
            id: 5,
            chunk: Bin(b"abc"),
            more: true,
        })
        .unwrap();
        assert_eq!(
            parse(&chunk).unwrap(),
            GuestMessage::Chunk {
                id: 5,
                data: b"abc".to_vec(),
                more: true
            }
        );
        assert_eq!(chunk, body_chunk(5, b"abc", true));
        let v: serde_json::Value =
            rmp_serde::from_slice(&http_request_streamed(6, "GET", "/", "", &[])).unwrap();
        assert_eq!(
            v,
            json!({"id": 6, "scope": {"type": "http", "method": "GET", "path": "/", "query_string": "", "headers": []}, "streamed": true})
        );
    }

    #[test]
    fn requests_encode_as_the_guest_expects() {
        let headers = vec![(b"x-a".to_vec(), b"1".to_vec())];
        let f = http_request(3, "POST", "/p", "q=1", &headers, b"body");
        #[derive(Deserialize)]
        struct In {
            id: u64,
            scope: Scope,
        }
        #[derive(Deserialize)]
        struct Scope {
            #[serde(rename = "type")]
            kind: String,
            method: String,
            path: String,
            query_string: String,
            headers: Vec<(ByteBuf, ByteBuf)>,
            body: ByteBuf,
        }
        let In { id, scope } = rmp_serde::from_slice(&f).unwrap();
        assert_eq!(
            (id, scope.kind.as_str(), scope.method.as_str()),
            (3, "http", "POST")
        );
        assert_eq!(
            (scope.path.as_str(), scope.query_string.as_str()),
            ("/p", "q=1")
        );
        assert_eq!(scope.headers[0].0.as_slice(), b"x-a");
        assert_eq!(scope.body.as_slice(), b"body");
        // bin, not an array of integers
        assert!(f.windows(6).any(|w| w == b"\xc4\x04body"));
        let f = message_request(4, br#"{"item_hash": "abc"}"#);
        let v: serde_json::Value = rmp_serde::from_slice(&f).unwrap();
        assert_eq!(
            v,
            json!({"id": 4, "scope": {"type": "aleph.message", "body": {"item_hash": "abc"}}})
        );
        let v: serde_json::Value = rmp_serde::from_slice(&cancel(9, 3)).unwrap();
        assert_eq!(v, json!({"id": 9, "command": "cancel", "target": 3}));
        let v: serde_json::Value = rmp_serde::from_slice(&hello()).unwrap();
        assert_eq!(v, json!({"command": "hello"}));
        let vars = vec![("A".to_string(), "1".to_string())];
        let f = config(&Config {
            vm_hash: "h",
            encoding: "zip",
            entrypoint: "main:app",
            interface: None,
            code: b"",
            input_data: None,
            variables: Some(Variables(&vars)),
            volumes: [],
            ip: GUEST_IP,
            route: GUEST_ROUTE,
            dns_servers: &[],
            api_host: "http://10.0.2.100",
            time: 1.5,
            entropy: b"",
            lifespan_timeout: 30.0,
            shutdown_timeout: 3.0,
        });
        assert_eq!(f[0], 0x80 | 15);
    }
}
