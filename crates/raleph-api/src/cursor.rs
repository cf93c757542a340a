//! Opaque keyset cursors: unpadded URL-safe base64 of `{"h": item_hash, "t": time}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use raleph_db::Cursor;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

pub fn encode(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(json!({"h": cursor.item_hash, "t": cursor.time}).to_string())
}

pub fn decode(text: &str) -> ApiResult<Cursor> {
    let invalid = || ApiError::unprocessable("invalid cursor");
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let item_hash = value
        .get("h")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?
        .to_owned();
    let time = value.get("t").and_then(Value::as_f64).ok_or_else(invalid)?;
    Ok(Cursor { time, item_hash })
}
