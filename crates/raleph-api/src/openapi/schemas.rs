//! The shapes the API answers with, as JSON Schema (OpenAPI 3.1 components), written from
//! what the handlers build (`shapes.rs` and each route's module).

use serde_json::{Map, Value, json};

/// A reference to a component.
pub(crate) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn object(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

/// The fields every page-number list carries, with `pagination_item` naming its list.
fn paged(list: &str, items: Value, extra: Value) -> Value {
    let mut properties = json!({
        list: {"type": "array", "items": items},
        "pagination_page": {"type": "integer"},
        "pagination_per_page": {"type": "integer"},
        "pagination_total": {"type": "integer"},
        "pagination_item": {"const": list},
    });
    if let (Some(p), Value::Object(extra)) = (properties.as_object_mut(), extra) {
        p.extend(extra);
    }
    object(properties)
}

pub(crate) fn all() -> Map<String, Value> {
    let string = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_string = json!({"type": ["string", "null"]});
    let schemas = json!({
        "Error": object(json!({"error": {"type": "string", "description": "What is wrong"}})),
        "Status": {"enum": ["pending", "processed", "rejected", "forgotten", "removing", "removed"]},
        "Message": {
            "type": "object",
            "description": "A message as the reference lists it: its signed envelope, its \
                            parsed content and what the node learnt of it.",
            "properties": {
                "item_hash": string, "type": {"enum": ["POST", "AGGREGATE", "STORE", "FORGET", "PROGRAM", "INSTANCE"]},
                "chain": string, "sender": string, "signature": nullable_string,
                "item_type": {"enum": ["inline", "storage", "ipfs"]},
                "item_content": nullable_string, "content": {"type": "object"},
                "channel": nullable_string, "time": {"type": "number"},
                "size": {"type": "integer"},
                "confirmed": {"type": "boolean"},
                "confirmations": {"type": "array", "items": {"type": "object"}},
                "status": schema_ref("Status"),
            },
        },
        "MessageList": paged("messages", schema_ref("Message"), json!({})),
        "MessageWithStatus": object(json!({
            "status": schema_ref("Status"), "item_hash": string,
            "reception_time": time, "message": schema_ref("Message"),
        })),
        "MessageStatus": object(json!({
            "status": schema_ref("Status"), "item_hash": string, "reception_time": time,
        })),
        "Hashes": paged("hashes", json!({"oneOf": [string, schema_ref("MessageStatus")]}), json!({})),
        "Publication": object(json!({
            "publication_status": object(json!({"status": string, "failed": {"type": "array"}})),
            "message_status": {"type": ["string", "null"]},
        })),
        "PostV0": {
            "type": "object",
            "description": "A post in the v0 shape: the latest version's message fields, \
                            with the original's hash and type.",
            "properties": {
                "item_hash": string, "original_item_hash": string, "type": string,
                "content": {}, "address": string, "time": {"type": "number"},
                "channel": nullable_string, "hash": string, "original_type": string,
            },
        },
        "PostV1": object(json!({
            "item_hash": string, "original_item_hash": string, "content": {},
            "owner": string, "ref": {}, "channel": nullable_string,
            "created": time, "last_updated": time, "original_type": string,
        })),
        "PostListV0": paged("posts", schema_ref("PostV0"), json!({})),
        "PostListV1": paged("posts", schema_ref("PostV1"), json!({})),
        "AddressAggregates": object(json!({
            "address": string,
            "data": {"type": "object", "description": "Each key's merged value"},
            "info": {"type": "object"},
        })),
        "AggregateList": paged("aggregates", object(json!({
            "address": string, "key": string, "content": {}, "created": time, "last_updated": time,
        })), json!({})),
        "StoredFile": object(json!({
            "status": {"const": "success"}, "hash": string,
            "engine": {"enum": ["storage", "ipfs"]}, "content": {"type": "string", "contentEncoding": "base64"},
        })),
        "AddedFile": object(json!({"status": {"const": "success"}, "hash": string})),
        "FileMetadata": object(json!({
            "file_hash": string, "type": {"enum": ["file", "dir"]}, "size": {"type": "integer"},
            "download_url": string,
        })),
        "PinnedFile": object(json!({
            "ref": string, "owner": string, "file_hash": string, "download_url": string,
            "size": {"type": "integer"},
        })),
        "StorageLimits": object(json!({"storage": {"type": "object"}, "ipfs": {"type": "object"}})),
        "AddressFiles": object(json!({
            "address": string, "total_size": {"type": "integer"},
            "files": {"type": "array", "items": object(json!({
                "file_hash": string, "size": {"type": "integer"}, "type": string,
                "created": time, "item_hash": string,
            }))},
            "pagination_page": {"type": "integer"}, "pagination_total": {"type": "integer"},
            "pagination_per_page": {"type": "integer"},
        })),
        "AddressStats": object(json!({
            "messages": {"type": "integer"}, "post": {"type": "integer"},
            "aggregate": {"type": "integer"}, "store": {"type": "integer"},
            "forget": {"type": "integer"}, "program": {"type": "integer"},
            "instance": {"type": "integer"},
        })),
        "AddressStatsMap": object(json!({
            "data": {"type": "object", "additionalProperties": schema_ref("AddressStats")},
        })),
        "Authorizations": object(json!({
            "authorizations": {
                "type": "object",
                "description": "By the other party's address: its entries (without `address`)",
                "additionalProperties": {"type": "array", "items": {"type": "object"}},
            },
            "pagination_page": {"type": "integer"}, "pagination_per_page": {"type": "integer"},
            "pagination_total": {"type": "integer"}, "pagination_item": {"const": "authorizations"},
            "address": string,
        })),
        "AddressPostTypes": object(json!({"address": string, "post_types": {"type": "array", "items": string}})),
        "AddressChannels": object(json!({"address": string, "channels": {"type": "array", "items": string}})),
        "Channels": object(json!({"channels": {"type": "array", "items": string}})),
        "Version": object(json!({"version": string})),
        "PublicInfo": object(json!({"node_multi_addresses": {"type": "array", "items": string}})),
        "Balance": object(json!({
            "address": string, "balance": {"type": "number"}, "details": {"type": ["object", "null"]},
            "locked_amount": {"type": "number"}, "credit_balance": {"type": "integer"},
            "credit_balance_details": {"type": ["array", "null"]},
        })),
        "PriceEstimate": object(json!({
            "required_tokens": {"type": "number"}, "payment_type": string, "cost": string,
            "detail": {"type": "array"}, "charged_address": {},
        })),
        "Metrics": {
            "type": "object",
            "description": "The reference's metrics dict, then raleph's own counters.",
            "properties": {
                "pyaleph_build_info": object(json!({"version": string})),
                "pyaleph_status_peers_total": {"type": "integer"},
                "pyaleph_status_sync_messages_total": {"type": "integer"},
                "pyaleph_status_sync_pending_messages_total": {"type": "integer"},
                "pyaleph_status_sync_pending_txs_total": {"type": "integer"},
                "raleph_intake_journal_unapplied": {"type": "integer"},
                "raleph_websocket_connections": {"type": "integer"},
                "raleph_status_websocket_connections": {"type": "integer"},
                "raleph_messages_by_status": {"type": "object", "additionalProperties": {"type": "integer"}},
                "raleph_storage_bytes": {"type": ["integer", "null"]},
                "raleph_p2p_peer_totals": {"type": ["object", "null"]},
            },
        },
        "StatusHistory": object(json!({
            "interval_secs": {"const": 10},
            "samples": {"type": "array", "items": object(json!({
                "time": {"type": "number", "description": "Unix seconds"},
                "messages": {"type": "integer"},
                "pending": {"type": "integer"},
                "peers": {"type": "integer"},
                "storage_bytes": {"type": ["integer", "null"]},
            }))},
        })),
        "PubsubResult": object(json!({"status": string, "failed": {"type": "array", "items": string}})),
        "Peers": object(json!({"peers": {"type": "array", "items": {"type": "object"}}})),
        "Identity": object(json!({"peer_id": string, "addresses": {"type": "array", "items": string}})),
        "Proofs": {"type": "object", "description": "The Merkle proofs of a message in each anchor that lists it"},
        "Any": {"description": "Any JSON value"},
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
