//! Message content: parsing, the address/time coercion, and the schema of each type.
//!
//! The stored and served content is the object as parsed (key order kept) plus the coerced
//! `address` and `time`; the typed view beside it holds what processing and indexing need.

mod executable;
pub mod lax;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use executable::{ExecutableContent, VolumeRef};

use crate::item_hash::{ItemHash, ItemHashKind};
use crate::limits::{
    MAX_CHAIN_REF_CHANNEL_CHARS, MAX_CONTENT_TIME, MAX_FORGET_REASON_CHARS, MAX_FORGET_TARGETS,
    MAX_TAG_CHARS, MAX_TAGS,
};
use crate::{Chain, ItemType, MessageType};

/// Why content was refused: a permanent `INVALID_FORMAT` rejection.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    #[error("content is not valid JSON: {0}")]
    Json(String),
    #[error("content must be a JSON object")]
    NotAnObject,
    #[error("content field `{0}` is required")]
    Missing(String),
    #[error("content field `{field}` is invalid: {reason}")]
    Invalid { field: String, reason: String },
    #[error("content field `{0}` is not allowed for this message type")]
    Unexpected(String),
}

impl ContentError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ContentError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parsed, coerced and validated content.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// The object the node stores and serves.
    pub value: Map<String, Value>,
    /// The owner: `content.address`, the sender when absent.
    pub address: String,
    /// `content.time`, the envelope time when absent. Orders amends, aggregates and file tags.
    pub time: f64,
    pub typed: TypedContent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TypedContent {
    Post(PostContent),
    Aggregate(AggregateContent),
    Store(StoreContent),
    Program(ExecutableContent),
    Instance(ExecutableContent),
    Forget(ForgetContent),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PostContent {
    /// The user-defined type; `"amend"` makes this POST an amendment of `reference`, which
    /// an amend always has (one without, or with an empty one, is refused as malformed).
    pub post_type: String,
    /// `ref`: a string, or the `item_hash` of a message reference object.
    pub reference: Option<String>,
    pub payload: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggregateContent {
    pub key: String,
    pub payload: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoreContent {
    pub item_type: ItemType,
    pub item_hash: ItemHash,
    pub reference: Option<String>,
    /// `size` as the reference's model reads it (a lax `int`: negative values, `5.0`, `"5"`
    /// and `true` pass); unused, the node measures files itself. Huge values saturate.
    pub size: Option<i128>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForgetContent {
    pub hashes: Vec<ItemHash>,
    /// Aggregate keys of `content.address` whose elements are forgotten. The reference types
    /// them as item hashes, so only keys of that shape can be forgotten this way.
    pub aggregates: Vec<String>,
    pub reason: Option<String>,
}

impl Content {
    /// The content of `envelope` from its raw bytes (its `item_content`, or the stored file of
    /// a non-inline message), as the reference reads it: inline content is validated as it is,
    /// so it must carry its own `address` and `time`; stored content gets the sender and the
    /// envelope's time where they are missing.
    pub fn of_message(envelope: &crate::Envelope, raw: &[u8]) -> Result<Content, ContentError> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| ContentError::Json(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ContentError::NotAnObject);
        };
        if envelope.item_type == ItemType::Inline {
            for field in ["address", "time"] {
                if map.get(field).is_none_or(Value::is_null) {
                    return Err(ContentError::Missing(field.into()));
                }
            }
        }
        Content::from_map(envelope.message_type, map, &envelope.sender, envelope.time)
    }

    /// Parses raw content bytes for a message, filling in a missing `address` (the sender)
    /// and `time` (the envelope's), as for stored content.
    pub fn parse(
        message_type: MessageType,
        raw: &[u8],
        sender: &str,
        envelope_time: f64,
    ) -> Result<Content, ContentError> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| ContentError::Json(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ContentError::NotAnObject);
        };
        Content::from_map(message_type, map, sender, envelope_time)
    }

    pub fn from_map(
        message_type: MessageType,
        mut value: Map<String, Value>,
        sender: &str,
        envelope_time: f64,
    ) -> Result<Content, ContentError> {
        let address = match value.get("address") {
            None | Some(Value::Null) => {
                value.insert("address".into(), sender.into());
                sender.to_owned()
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ContentError::invalid("address", "must be a string")),
        };
        let time = match value.get("time") {
            None | Some(Value::Null) => {
                value.insert("time".into(), crate::envelope::time_value(envelope_time));
                envelope_time
            }
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            // The reference's model reads a boolean as 1 or 0 (and its processing takes it);
            // a numeric string passes its model but fails its processing: refused here.
            Some(Value::Bool(b)) => f64::from(u8::from(*b)),
            Some(_) => return Err(ContentError::invalid("time", "must be a number")),
        };
        if !(0.0..=MAX_CONTENT_TIME).contains(&time) {
            return Err(ContentError::invalid(
                "time",
                format!("must be between 0 and {MAX_CONTENT_TIME}"),
            ));
        }
        let typed = match message_type {
            MessageType::Post => TypedContent::Post(parse_post(&value)?),
            MessageType::Aggregate => TypedContent::Aggregate(parse_aggregate(&value)?),
            MessageType::Store => TypedContent::Store(parse_store(&value)?),
            MessageType::Forget => TypedContent::Forget(parse_forget(&value)?),
            MessageType::Program => TypedContent::Program(executable::parse_program(&value)?),
            MessageType::Instance => TypedContent::Instance(executable::parse_instance(&value)?),
        };
        Ok(Content {
            value,
            address,
            time,
            typed,
        })
    }

    /// Tags indexed for the `tags` filter: `content.content.tags` of POST and AGGREGATE,
    /// `content.tags` of STORE, `content.metadata.tags` of programs and instances.
    pub fn tags(&self) -> Vec<String> {
        let list = match &self.typed {
            TypedContent::Post(_) | TypedContent::Aggregate(_) => {
                self.value.get("content").and_then(|c| c.get("tags"))
            }
            TypedContent::Store(_) => self.value.get("tags"),
            TypedContent::Program(_) | TypedContent::Instance(_) => {
                self.value.get("metadata").and_then(|m| m.get("tags"))
            }
            TypedContent::Forget(_) => None,
        };
        list.and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `content.payment.type`, for the `paymentTypes` filter.
    pub fn payment_type(&self) -> Option<&str> {
        self.value.get("payment")?.get("type")?.as_str()
    }

    /// `content.type` of a POST.
    pub fn content_type(&self) -> Option<&str> {
        match &self.typed {
            TypedContent::Post(p) => Some(&p.post_type),
            _ => None,
        }
    }

    /// `content.ref` of a POST or STORE.
    pub fn content_ref(&self) -> Option<&str> {
        match &self.typed {
            TypedContent::Post(p) => p.reference.as_deref(),
            TypedContent::Store(s) => s.reference.as_deref(),
            _ => None,
        }
    }

    /// `content.key` of an AGGREGATE.
    pub fn content_key(&self) -> Option<&str> {
        match &self.typed {
            TypedContent::Aggregate(a) => Some(&a.key),
            _ => None,
        }
    }

    /// `content.item_hash` of a STORE: the file.
    pub fn content_item_hash(&self) -> Option<&str> {
        match &self.typed {
            TypedContent::Store(s) => Some(s.item_hash.as_str()),
            _ => None,
        }
    }
}

/// Refuses keys outside `allowed`, as the reference's strict content models do.
fn only_keys(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), ContentError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(extra) => Err(ContentError::Unexpected(extra.clone())),
        None => Ok(()),
    }
}

pub(crate) fn opt_str(
    map: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ContentError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ContentError::invalid(field, "must be a string")),
    }
}

fn parse_post(map: &Map<String, Value>) -> Result<PostContent, ContentError> {
    only_keys(map, &["address", "time", "type", "content", "ref"])?;
    let post_type = opt_str(map, "type")?.ok_or_else(|| ContentError::Missing("type".into()))?;
    let reference = match map.get("ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        // A ChainRef: an embedded message; what it refers to is its item_hash.
        Some(Value::Object(chain_ref)) => Some(parse_chain_ref(chain_ref)?),
        Some(_) => {
            return Err(ContentError::invalid(
                "ref",
                "must be a string or a message reference",
            ));
        }
    };
    // The reference's `check_type`: an amend needs a (truthy) ref.
    if post_type == "amend" && reference.as_deref().is_none_or(str::is_empty) {
        return Err(ContentError::invalid(
            "ref",
            "a POST of type amend needs a ref to the post it amends",
        ));
    }
    nested_tags(map.get("content"))?;
    Ok(PostContent {
        post_type,
        reference,
        payload: map.get("content").cloned(),
    })
}

fn parse_aggregate(map: &Map<String, Value>) -> Result<AggregateContent, ContentError> {
    only_keys(map, &["address", "time", "key", "content"])?;
    let key = match map.get("key") {
        Some(Value::String(s)) => s.clone(),
        // Legacy form {"name": key}, nothing else.
        Some(Value::Object(o)) => {
            if let Some(extra) = o.keys().find(|k| *k != "name") {
                return Err(ContentError::Unexpected(format!("key.{extra}")));
            }
            match o.get("name") {
                Some(Value::String(s)) => s.clone(),
                None => return Err(ContentError::Missing("key.name".into())),
                Some(_) => return Err(ContentError::invalid("key.name", "must be a string")),
            }
        }
        None | Some(Value::Null) => return Err(ContentError::Missing("key".into())),
        Some(_) => return Err(ContentError::invalid("key", "must be a string")),
    };
    let payload = match map.get("content") {
        Some(Value::Object(o)) => o.clone(),
        None | Some(Value::Null) => return Err(ContentError::Missing("content".into())),
        Some(_) => return Err(ContentError::invalid("content", "must be a JSON object")),
    };
    nested_tags(map.get("content"))?;
    Ok(AggregateContent { key, payload })
}

fn parse_store(map: &Map<String, Value>) -> Result<StoreContent, ContentError> {
    let item_type = opt_str(map, "item_type")?
        .ok_or_else(|| ContentError::Missing("item_type".into()))?
        .parse::<ItemType>()
        .map_err(|e| ContentError::invalid("item_type", e))?;
    let raw_hash =
        opt_str(map, "item_hash")?.ok_or_else(|| ContentError::Missing("item_hash".into()))?;
    let item_hash = ItemHash::parse(&raw_hash)
        .map_err(|e| ContentError::invalid("item_hash", e.to_string()))?;
    let expected = match item_type {
        ItemType::Storage => ItemHashKind::Sha256,
        ItemType::Ipfs => ItemHashKind::Cid,
        ItemType::Inline => {
            return Err(ContentError::invalid(
                "item_type",
                "a STORE file is storage or ipfs",
            ));
        }
    };
    if item_hash.kind() != expected {
        return Err(ContentError::invalid(
            "item_hash",
            format!("does not have the format of an {item_type} hash"),
        ));
    }
    let size = match map.get("size") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            lax::int_from_value(v)
                .ok_or_else(|| ContentError::invalid("size", "must be an integer"))?,
        ),
    };
    opt_str(map, "content_type")?;
    match map.get("metadata") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(_) => return Err(ContentError::invalid("metadata", "must be an object")),
    }
    match map.get("tags") {
        None | Some(Value::Null) => {}
        Some(tags) => check_tags(tags, "tags")?,
    }
    if let Some(payment) = map.get("payment").filter(|p| !p.is_null()) {
        store_payment(payment)?;
    }
    Ok(StoreContent {
        item_type,
        item_hash,
        reference: opt_str(map, "ref")?,
        size,
    })
}

fn parse_forget(map: &Map<String, Value>) -> Result<ForgetContent, ContentError> {
    only_keys(map, &["address", "time", "hashes", "aggregates", "reason"])?;
    // `hashes` is required; `aggregates` has a default; neither may be null.
    if !map.contains_key("hashes") {
        return Err(ContentError::Missing("hashes".into()));
    }
    let hashes = item_hash_list(map, "hashes")?;
    // Keys, typed as item hashes by the reference.
    let aggregates = item_hash_list(map, "aggregates")?
        .into_iter()
        .map(ItemHash::into_string)
        .collect();
    let reason = opt_str(map, "reason")?;
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_FORGET_REASON_CHARS)
    {
        return Err(ContentError::invalid(
            "reason",
            format!("at most {MAX_FORGET_REASON_CHARS} characters"),
        ));
    }
    Ok(ForgetContent {
        hashes,
        aggregates,
        reason,
    })
}

/// A FORGET's list of item hashes: absent is empty, null is refused.
fn item_hash_list(map: &Map<String, Value>, field: &str) -> Result<Vec<ItemHash>, ContentError> {
    let items = match map.get(field) {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ContentError::invalid(field, "must be a list")),
    };
    if items.len() > MAX_FORGET_TARGETS {
        return Err(ContentError::invalid(
            field,
            format!("at most {MAX_FORGET_TARGETS} entries"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("{field}[{i}]");
            let s = v
                .as_str()
                .ok_or_else(|| ContentError::invalid(&at, "must be a string"))?;
            ItemHash::parse(s).map_err(|e| ContentError::invalid(at, e.to_string()))
        })
        .collect()
}

/// A list of tags: at most [`MAX_TAGS`] strings of 1 to [`MAX_TAG_CHARS`] characters.
fn check_tags(value: &Value, at: &str) -> Result<(), ContentError> {
    let Value::Array(tags) = value else {
        return Err(ContentError::invalid(at, "must be a list"));
    };
    if tags.len() > MAX_TAGS {
        return Err(ContentError::invalid(
            at,
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        let chars = tag.as_str().map(|t| t.chars().count());
        if !chars.is_some_and(|n| (1..=MAX_TAG_CHARS).contains(&n)) {
            return Err(ContentError::invalid(
                format!("{at}[{i}]"),
                format!("a tag is a string of 1 to {MAX_TAG_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

/// The reference's check of POST and AGGREGATE payloads (`_validate_nested_tags`): when the
/// payload is an object whose `tags` is not null, those are tags.
fn nested_tags(payload: Option<&Value>) -> Result<(), ContentError> {
    match payload.and_then(|p| p.get("tags")) {
        None | Some(Value::Null) => Ok(()),
        Some(tags) => check_tags(tags, "content.tags"),
    }
}

/// A POST's `ref` given as an object, the reference's `ChainRef` (unknown keys ignored): the
/// message referred to, whose `item_hash` is returned.
fn parse_chain_ref(r: &Map<String, Value>) -> Result<String, ContentError> {
    let required = |key: &str| match r.get(key) {
        None => Err(ContentError::Missing(format!("ref.{key}"))),
        Some(value) => Ok(value),
    };
    let string = |key: &str| -> Result<&str, ContentError> {
        required(key)?
            .as_str()
            .ok_or_else(|| ContentError::invalid(format!("ref.{key}"), "must be a string"))
    };
    string("chain")?
        .parse::<Chain>()
        .map_err(|e| ContentError::invalid("ref.chain", e.to_string()))?;
    match r.get("channel") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) if c.chars().count() <= MAX_CHAIN_REF_CHANNEL_CHARS => {}
        Some(_) => {
            return Err(ContentError::invalid(
                "ref.channel",
                format!("must be a string of at most {MAX_CHAIN_REF_CHANNEL_CHARS} characters"),
            ));
        }
    }
    string("item_content")?;
    let item_hash = ItemHash::parse(string("item_hash")?)
        .map_err(|e| ContentError::invalid("ref.item_hash", e.to_string()))?;
    string("item_type")?
        .parse::<ItemType>()
        .map_err(|e| ContentError::invalid("ref.item_type", e))?;
    string("sender")?;
    string("signature")?;
    lax::float_from_value(required("time")?)
        .ok_or_else(|| ContentError::invalid("ref.time", "must be a number"))?;
    match r.get("type") {
        None => {}
        Some(Value::String(t)) if t == "POST" => {}
        Some(_) => return Err(ContentError::invalid("ref.type", "must be \"POST\"")),
    }
    Ok(item_hash.into_string())
}

/// A STORE's `payment` (unknown keys ignored): a type of hold or credit, and when given a
/// known `chain` and a string `receiver`.
fn store_payment(payment: &Value) -> Result<(), ContentError> {
    let Value::Object(payment) = payment else {
        return Err(ContentError::invalid("payment", "must be an object"));
    };
    match payment.get("chain") {
        None | Some(Value::Null) => {}
        Some(Value::String(chain)) => {
            chain
                .parse::<Chain>()
                .map_err(|e| ContentError::invalid("payment.chain", e.to_string()))?;
        }
        Some(_) => return Err(ContentError::invalid("payment.chain", "must be a string")),
    }
    opt_str(payment, "receiver")
        .map_err(|_| ContentError::invalid("payment.receiver", "must be a string"))?;
    match payment.get("type").and_then(Value::as_str) {
        Some("hold" | "credit") => Ok(()),
        _ => Err(ContentError::invalid(
            "payment.type",
            "a STORE pays with hold or credit",
        )),
    }
}
