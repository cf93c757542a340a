//! Message content: parsing, the address/time coercion, and the schema of each type.
//!
//! The stored and served content is the object as parsed (key order kept) plus the coerced
//! `address` and `time`; the typed view beside it holds what processing and indexing need.

mod executable;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use executable::{ExecutableContent, VolumeRef};

use crate::item_hash::{ItemHash, ItemHashKind};
use crate::limits::{MAX_CONTENT_TIME, MAX_FORGET_TARGETS};
use crate::{ItemType, MessageType};

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
    /// The user-defined type; `"amend"` makes this POST an amendment of `reference` (an amend
    /// without a reference is refused by processing with its own error code).
    pub post_type: String,
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
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForgetContent {
    pub hashes: Vec<ItemHash>,
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
        Some(Value::Object(chain_ref)) => Some(
            opt_str(chain_ref, "item_hash")?
                .ok_or_else(|| ContentError::Missing("ref.item_hash".into()))?,
        ),
        Some(_) => {
            return Err(ContentError::invalid(
                "ref",
                "must be a string or a message reference",
            ));
        }
    };
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
        // Legacy form {"name": key}.
        Some(Value::Object(o)) => {
            opt_str(o, "name")?.ok_or_else(|| ContentError::Missing("key.name".into()))?
        }
        None | Some(Value::Null) => return Err(ContentError::Missing("key".into())),
        Some(_) => return Err(ContentError::invalid("key", "must be a string")),
    };
    let payload = match map.get("content") {
        Some(Value::Object(o)) => o.clone(),
        None | Some(Value::Null) => return Err(ContentError::Missing("content".into())),
        Some(_) => return Err(ContentError::invalid("content", "must be a JSON object")),
    };
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
            v.as_u64()
                .ok_or_else(|| ContentError::invalid("size", "must be a non-negative integer"))?,
        ),
    };
    if let Some(payment) = map.get("payment").filter(|p| !p.is_null()) {
        let kind = payment.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("hold" | "credit")) {
            return Err(ContentError::invalid(
                "payment.type",
                "a STORE pays with hold or credit",
            ));
        }
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
    let hashes = string_list(map, "hashes")?
        .iter()
        .map(|h| ItemHash::parse(h).map_err(|e| ContentError::invalid("hashes", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let aggregates = string_list(map, "aggregates")?;
    let reason = opt_str(map, "reason")?;
    if reason.as_ref().is_some_and(|r| r.chars().count() > 1000) {
        return Err(ContentError::invalid("reason", "at most 1000 characters"));
    }
    Ok(ForgetContent {
        hashes,
        aggregates,
        reason,
    })
}

pub(crate) fn string_list(
    map: &Map<String, Value>,
    field: &str,
) -> Result<Vec<String>, ContentError> {
    let items = match map.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
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
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ContentError::invalid(field, "must hold strings"))
        })
        .collect()
}
