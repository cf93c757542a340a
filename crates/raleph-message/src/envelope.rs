//! The signed envelope of a message, as submitted by clients and peers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::Chain;
use crate::item_hash::{ItemHash, ItemHashKind};
use crate::limits::{END_ENVELOPE_TIME, MAX_INLINE_CHARS, MIN_ENVELOPE_TIME};

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $s:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s,)* }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$variant),)*
                    _ => Err(format!("unknown {} {s:?}", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum! {
    /// The six message types.
    MessageType {
        Post = "POST",
        Aggregate = "AGGREGATE",
        Store = "STORE",
        Program = "PROGRAM",
        Instance = "INSTANCE",
        Forget = "FORGET",
    }
}

string_enum! {
    /// Where the content of a message lives.
    ItemType {
        Inline = "inline",
        Storage = "storage",
        Ipfs = "ipfs",
    }
}

/// Why an envelope was refused. Every variant is a permanent `INVALID_FORMAT` rejection.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("message must be a JSON object")]
    NotAnObject,
    #[error("field `{0}` is required")]
    Missing(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("item_content is {0} characters long, over the limit of {MAX_INLINE_CHARS}")]
    ContentTooLong(usize),
    #[error("item_content must not contain the escape \\u0000")]
    NulEscape,
    #[error("item_hash {declared} does not match the sha256 of item_content ({computed})")]
    HashMismatch { declared: String, computed: String },
}

impl EnvelopeError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        EnvelopeError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// A message envelope whose shape, limits and inline hash have been checked.
/// The signature has not been checked: that needs `raleph-crypto`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub sender: String,
    pub chain: Chain,
    /// `None` only for messages synthesized from on-chain events.
    pub signature: Option<String>,
    pub message_type: MessageType,
    pub item_type: ItemType,
    /// Exactly the bytes received, for inline messages.
    pub item_content: Option<String>,
    pub item_hash: ItemHash,
    /// Sender-declared time, seconds since the epoch. Not covered by the signature.
    pub time: f64,
    pub channel: Option<String>,
}

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Envelope {
    /// Validates a submitted message. `content`, if a client sent it, is ignored: the node
    /// always derives content from `item_content` or from storage.
    pub fn from_json(value: &Value) -> Result<Self, EnvelopeError> {
        let obj = value.as_object().ok_or(EnvelopeError::NotAnObject)?;
        let sender = required_str(obj, "sender")?.to_owned();
        let chain = required_str(obj, "chain")?
            .parse::<Chain>()
            .map_err(|e| EnvelopeError::invalid("chain", e.to_string()))?;
        let signature = optional_str(obj, "signature")?.map(str::to_owned);
        let message_type = required_str(obj, "type")?
            .parse::<MessageType>()
            .map_err(|e| EnvelopeError::invalid("type", e))?;
        let item_hash = ItemHash::parse(required_str(obj, "item_hash")?)
            .map_err(|e| EnvelopeError::invalid("item_hash", e.to_string()))?;
        let item_content = optional_str(obj, "item_content")?.map(str::to_owned);
        let declared_type = optional_str(obj, "item_type")?
            .map(|s| {
                s.parse::<ItemType>()
                    .map_err(|e| EnvelopeError::invalid("item_type", e))
            })
            .transpose()?;
        let item_type = resolve_item_type(declared_type, item_content.is_some(), &item_hash)?;
        let time = match obj.get("time") {
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|t| (MIN_ENVELOPE_TIME..END_ENVELOPE_TIME).contains(t)),
            // The reference reads a boolean as 1 or 0 seconds.
            Some(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
            Some(_) => None,
            None => return Err(EnvelopeError::Missing("time")),
        }
        .ok_or_else(|| {
            EnvelopeError::invalid(
                "time",
                "must be a number of seconds between the years 1 and 9999",
            )
        })?;
        let channel = optional_str(obj, "channel")?.map(str::to_owned);
        // `hash_type` is not a field the reference reads: any value is ignored.
        let envelope = Envelope {
            sender,
            chain,
            signature,
            message_type,
            item_type,
            item_content,
            item_hash,
            time,
            channel,
        };
        envelope.check_inline()?;
        Ok(envelope)
    }

    fn check_inline(&self) -> Result<(), EnvelopeError> {
        let Some(content) = &self.item_content else {
            return Ok(());
        };
        let chars = content.chars().count();
        if chars > MAX_INLINE_CHARS {
            return Err(EnvelopeError::ContentTooLong(chars));
        }
        if content.contains("\\u0000") {
            return Err(EnvelopeError::NulEscape);
        }
        let computed = sha256_hex(content.as_bytes());
        if computed != self.item_hash.as_str() {
            return Err(EnvelopeError::HashMismatch {
                declared: self.item_hash.to_string(),
                computed,
            });
        }
        Ok(())
    }

    /// Length of the raw content as the reference counts it, for inline messages.
    pub fn inline_size(&self) -> Option<usize> {
        self.item_content.as_ref().map(|c| c.chars().count())
    }

    /// The submitted fields, as the SDK sends them and as peers relay them.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("sender".into(), self.sender.clone().into());
        obj.insert("chain".into(), self.chain.as_str().into());
        obj.insert("signature".into(), self.signature.clone().into());
        obj.insert("type".into(), self.message_type.as_str().into());
        obj.insert("item_type".into(), self.item_type.as_str().into());
        obj.insert("item_content".into(), self.item_content.clone().into());
        obj.insert("item_hash".into(), self.item_hash.as_str().into());
        obj.insert("time".into(), time_value(self.time));
        obj.insert("channel".into(), self.channel.clone().into());
        Value::Object(obj)
    }
}

impl Envelope {
    /// The envelope as reference nodes gossip it: compact JSON with sorted keys.
    pub fn to_gossip_json(&self) -> String {
        let mut fields: Vec<(String, Value)> = match self.to_json() {
            Value::Object(fields) => fields.into_iter().collect(),
            _ => Vec::new(),
        };
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Object(fields.into_iter().collect()).to_string()
    }
}

/// A time as a JSON number that always carries a fraction, as Python floats print.
pub fn time_value(time: f64) -> Value {
    serde_json::Number::from_f64(time).map_or(Value::Null, Value::Number)
}

fn resolve_item_type(
    declared: Option<ItemType>,
    has_content: bool,
    hash: &ItemHash,
) -> Result<ItemType, EnvelopeError> {
    let from_hash = match hash.kind() {
        ItemHashKind::Sha256 => ItemType::Storage,
        ItemHashKind::Cid => ItemType::Ipfs,
    };
    let item_type = match declared {
        Some(t) => t,
        None if has_content => ItemType::Inline,
        None => from_hash,
    };
    match item_type {
        ItemType::Inline if !has_content => Err(EnvelopeError::Missing("item_content")),
        ItemType::Inline if hash.kind() != ItemHashKind::Sha256 => Err(EnvelopeError::invalid(
            "item_hash",
            "an inline message's item_hash is a sha256 hex digest",
        )),
        ItemType::Storage | ItemType::Ipfs if has_content => Err(EnvelopeError::invalid(
            "item_content",
            format!("must be absent when item_type is {item_type}"),
        )),
        ItemType::Storage | ItemType::Ipfs if item_type != from_hash => {
            Err(EnvelopeError::invalid(
                "item_hash",
                format!("its format does not match item_type {item_type}"),
            ))
        }
        _ => Ok(item_type),
    }
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, EnvelopeError> {
    optional_str(obj, field)?.ok_or(EnvelopeError::Missing(field))
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, EnvelopeError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EnvelopeError::invalid(field, "must be a string")),
    }
}

#[cfg(test)]
mod tests;
