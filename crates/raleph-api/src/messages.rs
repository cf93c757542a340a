//! Submitting messages, and reading them back one at a time or as lists.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use raleph_db::{MessageQuery, MessageStatus};
use raleph_message::{Envelope, ItemHash, MessageType};
use raleph_pipeline::{Event, SubmitError, SubmitOutcome};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::body::LimitedBody;
use crate::confirmations::PageConfirmations;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::shapes::{self, ContentFormat, iso_time};
use crate::{AppState, cursor};

fn publication(status: StatusCode, message_status: Option<&str>) -> Response {
    let body = json!({
        "publication_status": {"status": "success", "failed": []},
        "message_status": message_status,
    });
    (status, Json(body)).into_response()
}

/// `POST /api/v0/messages`: `{"sync": bool, "message": {...}}`.
pub async fn submit(
    State(state): State<AppState>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<Response> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::unprocessable(format!("request body is not valid JSON: {e}")))?;
    let sync = sync_flag(&request)?;
    let message = request
        .get("message")
        .ok_or_else(|| ApiError::unprocessable("`message` is required"))?;
    let envelope =
        Envelope::from_json(message).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let (status, message_status) = publish(&state, envelope, sync).await?;
    Ok(publication(status, Some(message_status)))
}

/// `sync`, a pydantic `bool` with a default (`"true"`, `1`, `"yes"` ... pass; `null` does not).
fn sync_flag(request: &Value) -> ApiResult<bool> {
    match request.get("sync") {
        None => Ok(false),
        Some(v) => raleph_message::content::lax::bool_from_value(v)
            .ok_or_else(|| ApiError::unprocessable("`sync` must be a boolean")),
    }
}

/// Submits a message to the pipeline and, for `sync`, waits for its fate: the HTTP status
/// and `message_status` the reference answers with.
pub(crate) async fn publish(
    state: &AppState,
    envelope: Envelope,
    sync: bool,
) -> ApiResult<(StatusCode, &'static str)> {
    let item_hash = envelope.item_hash.clone();
    let mut events = sync.then(|| state.pipeline.subscribe());
    let gossip = state
        .network
        .as_ref()
        .filter(|network| network.has_peers())
        .map(|network| (network, envelope.to_gossip_json()));
    // Without `sync` the answer comes once the message is durable, before it is processed.
    let outcome = submit_envelope(state, envelope, !sync).await?;
    // Accepted submissions go to peers, as the reference gossips what its API accepts.
    if let Some((network, json)) = gossip
        && !matches!(
            outcome,
            SubmitOutcome::Rejected(_)
                | SubmitOutcome::Known(
                    MessageStatus::Rejected | MessageStatus::Forgotten | MessageStatus::Removed
                )
        )
    {
        network.broadcast(json.into_bytes());
    }
    Ok(match outcome {
        SubmitOutcome::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
        SubmitOutcome::Known(status) => known(status),
        SubmitOutcome::Queued => {
            let Some(events) = events.as_mut() else {
                return Ok((StatusCode::ACCEPTED, "pending"));
            };
            // While the store is down nothing is processed: waiting would hold the client for
            // the whole outage. The message is journaled; it is processed once the store is back.
            if state.pipeline.store_down() {
                return Ok((StatusCode::ACCEPTED, "pending"));
            }
            // Checked at start (finite, not negative); a bad value never panics a request.
            let timeout = Duration::try_from_secs_f64(state.config.sync_timeout_secs)
                .unwrap_or(Duration::from_secs(30));
            match tokio::time::timeout(timeout, wait_for(events, &item_hash)).await {
                Ok(Some(answer)) => answer,
                // Timed out, or events were missed: answer from the stored status.
                _ => {
                    let hash = item_hash.clone();
                    match state
                        .read(move |r| r.status(&hash))
                        .await?
                        .map(|s| s.status)
                    {
                        Some(status) => known(status),
                        None => (StatusCode::ACCEPTED, "pending"),
                    }
                }
            }
        }
    })
}

async fn submit_envelope(
    state: &AppState,
    envelope: Envelope,
    answer_when_durable: bool,
) -> ApiResult<SubmitOutcome> {
    let outcome = if answer_when_durable {
        state.pipeline.accept(envelope, "api").await
    } else {
        state.pipeline.submit(envelope, "api").await
    };
    outcome.map_err(|e| match e {
        SubmitError::Busy | SubmitError::Unavailable(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        other => ApiError::internal(other),
    })
}

/// Submits a message without gossiping it (the caller publishes the bytes it was given).
pub(crate) async fn submit_only(
    state: &AppState,
    envelope: Envelope,
) -> ApiResult<(StatusCode, &'static str)> {
    Ok(match submit_envelope(state, envelope, true).await? {
        SubmitOutcome::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
        SubmitOutcome::Known(status) => known(status),
        SubmitOutcome::Queued => (StatusCode::ACCEPTED, "pending"),
    })
}

fn known(status: MessageStatus) -> (StatusCode, &'static str) {
    match status {
        MessageStatus::Processed | MessageStatus::Removing => (StatusCode::OK, "processed"),
        MessageStatus::Forgotten => (StatusCode::GONE, "forgotten"),
        MessageStatus::Removed => (StatusCode::GONE, "removed"),
        MessageStatus::Rejected => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
        MessageStatus::Pending => (StatusCode::ACCEPTED, "pending"),
    }
}

/// Waits for the first decisive event about `item_hash`; `None` if events were lost.
async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    item_hash: &ItemHash,
) -> Option<(StatusCode, &'static str)> {
    loop {
        match events.recv().await {
            Ok(event) if event.item_hash() == item_hash => {
                return Some(match event {
                    Event::Processed(_) | Event::Confirmed { .. } => (StatusCode::OK, "processed"),
                    Event::Rejected { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
                    Event::Retrying { .. } => (StatusCode::ACCEPTED, "pending"),
                    Event::Forgotten { .. } => (StatusCode::GONE, "forgotten"),
                });
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
        }
    }
}

/// A message type a filter may name: the six types, and `V-PROGRAM`, which the reference
/// knows and this node never holds (so it matches nothing).
fn is_message_type(t: &str) -> bool {
    t == "V-PROGRAM" || t.parse::<raleph_message::MessageType>().is_ok()
}

const PAYMENT_TYPES: [&str; 3] = ["hold", "superfluid", "credit"];

/// Filters shared by the list and the websocket.
pub fn message_query(params: &Params) -> ApiResult<MessageQuery> {
    let (start_date, end_date) = params.date_range()?;
    // Checked here; applied by the list (`list_messages`).
    params.block_range()?;
    let mut message_types = params.typed_list(
        &["msgTypes", "message_types"],
        "a message type",
        is_message_type,
    )?;
    message_types.extend(params.typed_list(
        &["msgType", "message_type"],
        "a message type",
        is_message_type,
    )?);
    let statuses = params
        .typed_list(&["msgStatuses", "message_statuses"], "a status", |s| {
            s.parse::<MessageStatus>().is_ok()
        })?
        .iter()
        .map(|s| s.parse::<MessageStatus>().map_err(ApiError::unprocessable))
        .collect::<ApiResult<Vec<_>>>()?;
    let statuses = if statuses.is_empty() {
        vec![MessageStatus::Processed, MessageStatus::Removing]
    } else {
        statuses
    };
    let skeleton = statuses
        .iter()
        .any(|s| matches!(s, MessageStatus::Forgotten | MessageStatus::Removed));
    if skeleton && statuses.len() > 1 {
        return Err(ApiError::bad_request(
            "forgotten and removed statuses must be requested alone",
        ));
    }
    Ok(MessageQuery {
        hashes: params.hash_list(&["hashes"])?,
        addresses: params.list(&["addresses"]),
        owners: params.list(&["owners"]),
        refs: params.list(&["refs"]),
        content_hashes: params.hash_list(&["contentHashes", "content_hashes"])?,
        // Any string, unlike the reference (which wants item hashes): keys are free text.
        content_keys: params.list(&["contentKeys", "content_keys"]),
        content_types: params.list(&["contentTypes", "content_types"]),
        chains: params.typed_list(&["chains"], "a chain", |c| {
            c.parse::<raleph_message::Chain>().is_ok()
        })?,
        channels: params.list(&["channels"]),
        tags: params.list(&["tags"]),
        payment_types: params.typed_list(
            &["paymentTypes", "payment_types"],
            "a payment type (hold, superfluid, credit)",
            |t| PAYMENT_TYPES.contains(&t),
        )?,
        message_types,
        statuses,
        start_date,
        end_date,
        sort_order: params.sort_order()?,
        ..Default::default()
    })
}

pub fn content_format(params: &Params) -> ApiResult<ContentFormat> {
    if params.bool(&["excludeContent", "exclude_content"])? {
        return Ok(ContentFormat::None);
    }
    match params.get(&["contentFormat", "content_format"]) {
        None | Some("") | Some("full") => Ok(ContentFormat::Full),
        Some("headers") => Ok(ContentFormat::Headers),
        Some("none") => Ok(ContentFormat::None),
        Some(other) => Err(ApiError::unprocessable(format!(
            "unknown contentFormat {other:?}"
        ))),
    }
}

pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    list_messages(state, params, None).await
}

pub async fn list_page(
    State(state): State<AppState>,
    Path(page): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    list_messages(state, params, Some(page)).await
}

/// A page of a list, keys in the order the reference emits them.
#[derive(Serialize)]
struct Page<T> {
    messages: Vec<T>,
    pagination_item: &'static str,
    pagination_page: u64,
    pagination_per_page: u64,
    pagination_total: u64,
}

impl<T> Page<T> {
    fn new(messages: Vec<T>, page: u64, per_page: u64, total: u64) -> Self {
        Page {
            messages,
            pagination_item: "messages",
            pagination_page: page,
            pagination_per_page: per_page,
            pagination_total: total,
        }
    }
}

/// How a list is paged.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Paging {
    Cursor,
    Pages { page: u64, per_page: u64 },
}

/// A list request, checked as the reference checks it.
#[derive(Debug)]
struct ListRequest {
    query: MessageQuery,
    format: ContentFormat,
    /// Forgotten or removed messages: their skeletons are listed.
    skeletons: bool,
    paging: Paging,
}

fn list_request(params: &Params, path_page: Option<&str>) -> ApiResult<ListRequest> {
    let mut query = message_query(params)?;
    // By first confirmation time and height (0: no bound), as the reference.
    query.sort_by_tx_time = params.sort_by_tx_time()?;
    let format = content_format(params)?;
    let (start_block, end_block) = params.block_range()?;
    query.start_block = (start_block != 0).then_some(start_block);
    query.end_block = (end_block != 0).then_some(end_block);
    let skeletons = query
        .statuses
        .iter()
        .any(|s| matches!(s, MessageStatus::Forgotten | MessageStatus::Removed));
    if skeletons {
        // As the reference: what a skeleton cannot be filtered on is refused, not ignored.
        if params.get(&["cursor"]).is_some() {
            return Err(ApiError::bad_request(
                "cursor pagination does not apply to forgotten or removed messages",
            ));
        }
        let unsupported: Vec<&str> = [
            ("refs", !query.refs.is_empty()),
            ("contentTypes", !query.content_types.is_empty()),
            ("contentHashes", !query.content_hashes.is_empty()),
            ("contentKeys", !query.content_keys.is_empty()),
            ("tags", !query.tags.is_empty()),
            ("startBlock", start_block != 0),
            ("endBlock", end_block != 0),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        if !unsupported.is_empty() {
            return Err(ApiError::bad_request(format!(
                "filters not supported for forgotten or removed messages: {}",
                unsupported.join(", ")
            )));
        }
    }
    let paging = match params.cursor()? {
        Some(cursor) => {
            params.page_number(path_page)?;
            let per_page = params.int(&["pagination"], 20)?;
            if per_page == 0 {
                return Err(ApiError::unprocessable(
                    "pagination must be at least 1 with a cursor",
                ));
            }
            query.limit = params.cursor_page_size(per_page);
            query.cursor = cursor;
            Paging::Cursor
        }
        None => {
            let (page, per_page) = params.page(path_page, 20)?;
            query.limit = per_page;
            query.offset = (page - 1).saturating_mul(per_page);
            Paging::Pages { page, per_page }
        }
    };
    Ok(ListRequest {
        query,
        format,
        skeletons,
        paging,
    })
}

async fn list_messages(
    state: AppState,
    params: Params,
    path_page: Option<String>,
) -> ApiResult<Response> {
    let ListRequest {
        query,
        format,
        skeletons,
        paging,
    } = list_request(&params, path_page.as_deref())?;
    let (page, per_page) = match paging {
        Paging::Cursor => return cursor_page(state, query, format).await,
        Paging::Pages { page, per_page } => (page, per_page),
    };
    let counts = state.counts.clone();
    // The total's query: read from the store's kept totals when it keeps it (exact now),
    // otherwise counted here or, when its cached total is stale, later on the count cache's
    // thread (hence its own reader handle).
    let count_query = MessageQuery {
        limit: 0,
        offset: 0,
        ..query.clone()
    };
    let count_key = format!("{count_query:?}");
    let reader = state.reader.clone();
    // The body is written on the blocking thread, straight from the rows.
    let body = if skeletons {
        state
            .read(move |r| {
                let rows = r.forgotten_messages(&query)?;
                let total = counts.get_or(&count_key, move || {
                    reader.count_forgotten_messages(&count_query)
                })?;
                let hint = shapes::size_hint(rows.len(), 0);
                let messages = rows.iter().map(shapes::forgotten).collect::<Vec<_>>();
                Ok(shapes::to_json(
                    &Page::new(messages, page, per_page, total),
                    hint,
                ))
            })
            .await??
    } else {
        let mut query = query;
        query.max_bytes = state.config.max_response_bytes;
        state
            .read(move |r| {
                let rows = r.messages(&query)?;
                let short = query.limit == 0 || (rows.len() as u64) < query.limit;
                let total = if short && (!rows.is_empty() || query.offset == 0) {
                    query.offset + rows.len() as u64
                } else if let Some(kept) = r.kept_message_total(&count_query)? {
                    kept
                } else {
                    counts.get_or(&count_key, move || reader.count_messages(&count_query))?
                };
                let confirmations =
                    PageConfirmations::read(r, rows.iter().map(|m| &m.envelope.item_hash))?;
                let text = rows.iter().map(shapes::message_text).sum();
                let messages = rows
                    .iter()
                    .map(|m| {
                        shapes::message(m, true, format)
                            .confirmed_by(confirmations.of(&m.envelope.item_hash))
                    })
                    .collect::<Vec<_>>();
                Ok(shapes::to_json(
                    &Page::new(messages, page, per_page, total),
                    shapes::size_hint(rows.len(), text),
                ))
            })
            .await??
    };
    Ok(shapes::json_response(body))
}

#[derive(Serialize)]
struct CursorPage<'a> {
    messages: Vec<shapes::MessageShape<'a>>,
    next_cursor: Option<String>,
    pagination_per_page: u64,
}

async fn cursor_page(
    state: AppState,
    mut query: MessageQuery,
    format: ContentFormat,
) -> ApiResult<Response> {
    query.max_bytes = state.config.max_response_bytes;
    let body = state
        .read(move |r| {
            let limit = query.limit;
            let rows = r.messages(&query)?;
            let next_cursor = (rows.len() as u64 == limit)
                .then(|| rows.last())
                .flatten()
                .map(|m| {
                    cursor::encode(&raleph_db::Cursor {
                        time: m.envelope.time,
                        item_hash: m.envelope.item_hash.to_string(),
                    })
                });
            let confirmations =
                PageConfirmations::read(r, rows.iter().map(|m| &m.envelope.item_hash))?;
            let text = rows.iter().map(shapes::message_text).sum();
            let hint = shapes::size_hint(rows.len(), text);
            Ok(shapes::to_json(
                &CursorPage {
                    messages: rows
                        .iter()
                        .map(|m| {
                            shapes::message(m, true, format)
                                .confirmed_by(confirmations.of(&m.envelope.item_hash))
                        })
                        .collect(),
                    next_cursor,
                    pagination_per_page: limit,
                },
                hint,
            ))
        })
        .await??;
    Ok(shapes::json_response(body))
}

fn checked_hash(item_hash: &str) -> ApiResult<ItemHash> {
    ItemHash::parse(item_hash).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /api/v0/messages/{hash}`: the message with its status, in the shape of that status.
pub async fn one(
    State(state): State<AppState>,
    Path(item_hash): Path<String>,
) -> ApiResult<Json<Value>> {
    let item_hash = checked_hash(&item_hash)?;
    let hash = item_hash.clone();
    let (status, message, pending, rejection, forgotten) = state
        .read(move |r| {
            let Some(status) = r.status(&hash)? else {
                return Ok((None, None, vec![], None, None));
            };
            let message = if status.status.is_live() {
                match r.message(&hash)? {
                    Some(message) => {
                        let confirmations = PageConfirmations::read(r, [&hash])?;
                        Some((message, confirmations))
                    }
                    None => None,
                }
            } else {
                None
            };
            let pending = if status.status == MessageStatus::Pending {
                r.pending_copies(&hash)?
            } else {
                vec![]
            };
            let rejection = if status.status == MessageStatus::Rejected {
                r.rejection(&hash)?
            } else {
                None
            };
            let forgotten = if status.status == MessageStatus::Forgotten {
                r.forgotten(&hash)?
            } else {
                None
            };
            Ok((Some(status), message, pending, rejection, forgotten))
        })
        .await?;
    let status =
        status.ok_or_else(|| ApiError::not_found(format!("message {item_hash} not found")))?;
    let mut body = json!({
        "status": status.status.as_str(),
        "item_hash": item_hash,
        "reception_time": iso_time(status.reception_time),
    });
    match status.status {
        MessageStatus::Pending => {
            let copies: Vec<Value> = pending
                .into_iter()
                .map(|copy| {
                    let mut m = copy.message;
                    if let Some(obj) = m.as_object_mut() {
                        let time = obj.get("time").and_then(Value::as_f64).unwrap_or(0.0);
                        obj.insert("time".into(), iso_time(time).into());
                        obj.insert("content".into(), Value::Null);
                        obj.insert(
                            "reception_time".into(),
                            iso_time(copy.reception_time).into(),
                        );
                    }
                    m
                })
                .collect();
            body["messages"] = copies.into();
        }
        MessageStatus::Processed | MessageStatus::Removing => {
            let (message, confirmations) =
                message.ok_or_else(|| ApiError::internal("a processed message has no row"))?;
            let shape = shapes::message(&message, false, ContentFormat::Full)
                .confirmed_by(confirmations.of(&item_hash));
            body["message"] = serde_json::to_value(shape).map_err(ApiError::internal)?;
        }
        MessageStatus::Rejected => {
            let rejection = rejection
                .ok_or_else(|| ApiError::internal("a rejected message has no rejection"))?;
            body["message"] = rejection.message;
            body["error_code"] = rejection.error_code.into();
            body["details"] = rejection.details;
        }
        MessageStatus::Forgotten => {
            let forgotten = forgotten
                .ok_or_else(|| ApiError::internal("a forgotten message has no skeleton"))?;
            body["forgotten_by"] = json!(forgotten.forgotten_by);
            body["message"] = shapes::forgotten(&forgotten);
        }
        MessageStatus::Removed => return Err(ApiError::new(StatusCode::GONE, "message removed")),
    }
    Ok(Json(body))
}

pub async fn status(
    State(state): State<AppState>,
    Path(item_hash): Path<String>,
) -> ApiResult<Json<Value>> {
    let item_hash = checked_hash(&item_hash)?;
    let hash = item_hash.clone();
    let status = state
        .read(move |r| r.status(&hash))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message {item_hash} not found")))?;
    Ok(Json(json!({
        "item_hash": status.item_hash,
        "reception_time": iso_time(status.reception_time),
        "status": status.status.as_str(),
    })))
}

/// `GET /api/v0/messages/{hash}/content`: a POST's payload, or the whole content of others.
pub async fn content(
    State(state): State<AppState>,
    Path(item_hash): Path<String>,
) -> ApiResult<Json<Value>> {
    let item_hash = checked_hash(&item_hash)?;
    let hash = item_hash.clone();
    let (status, message) = state
        .read(move |r| Ok((r.status(&hash)?, r.message(&hash)?)))
        .await?;
    let status =
        status.ok_or_else(|| ApiError::not_found(format!("message {item_hash} not found")))?;
    let message = message.filter(|_| status.status.is_live()).ok_or_else(|| {
        ApiError::unprocessable(format!("message {item_hash} is {}", status.status))
    })?;
    let content: Value = serde_json::from_str(&message.content).map_err(ApiError::internal)?;
    Ok(Json(
        if message.envelope.message_type == MessageType::Post {
            content.get("content").cloned().unwrap_or(Value::Null)
        } else {
            content
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::tests::{params, status};

    fn request(query: &str) -> ApiResult<ListRequest> {
        list_request(&params(query), None)
    }

    #[test]
    fn sync_is_a_pydantic_bool() {
        for (sync, expected) in [
            (json!(true), true),
            (json!("true"), true),
            (json!("yes"), true),
            (json!(1), true),
            (json!(0), false),
            (json!("off"), false),
        ] {
            assert_eq!(
                sync_flag(&json!({ "sync": sync })).ok(),
                Some(expected),
                "{sync}"
            );
        }
        assert_eq!(sync_flag(&json!({})).ok(), Some(false));
        for sync in [json!(null), json!(2), json!(""), json!([])] {
            assert_eq!(status(sync_flag(&json!({ "sync": sync }))), 422, "{sync}");
        }
    }

    #[test]
    fn typed_filters() {
        for q in [
            "msgType=V-PROGRAM",
            "msgTypes=POST,V-PROGRAM",
            "msgType=",
            "chains=ETH,SOL",
            "paymentTypes=hold,superfluid,credit",
            "contentKeys=profile",
            "msgStatuses=processed,rejected",
        ] {
            assert_eq!(status(request(q)), 200, "{q}");
        }
        let types = request("msgTypes=POST&msgType=V-PROGRAM").expect("valid");
        assert_eq!(types.query.message_types, ["POST", "V-PROGRAM"]);
        for q in [
            "msgTypes=FOO",
            "msgTypes=POST,",
            "msgType=post",
            "chains=eth",
            "chains=ETH,%20SOL",
            "paymentTypes=gold",
            "hashes=abc",
            "contentHashes=abc",
            "msgStatuses=done",
        ] {
            assert_eq!(status(request(q)), 422, "{q}");
        }
    }

    #[test]
    fn blocks() {
        let blocks = |q: &str| {
            let query = request(q).expect("valid").query;
            (query.start_block, query.end_block, query.sort_by_tx_time)
        };
        assert_eq!(blocks("startBlock=3"), (Some(3), None, false));
        assert_eq!(blocks("endBlock=3"), (None, Some(3), false));
        assert_eq!(blocks("startBlock=0&endBlock=0"), (None, None, false));
        assert_eq!(
            blocks("startBlock=3&endBlock=9&sortBy=tx-time"),
            (Some(3), Some(9), true)
        );
        assert_eq!(status(request("startBlock=9&endBlock=3")), 422);
        assert_eq!(status(request("startBlock=-1")), 422);
        assert_eq!(status(request("endBlock=x")), 422);
    }

    #[test]
    fn skeleton_statuses_refuse_what_they_cannot_filter() {
        assert!(
            request("msgStatuses=forgotten&startBlock=0&chains=ETH")
                .expect("valid")
                .skeletons
        );
        for q in [
            "startBlock=1",
            "endBlock=1",
            "refs=a",
            "contentTypes=note",
            "contentHashes=93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588",
            "contentKeys=k",
            "tags=t",
            "cursor=",
        ] {
            assert_eq!(
                status(request(&format!("msgStatuses=removed&{q}"))),
                400,
                "{q}"
            );
        }
        assert_eq!(status(request("msgStatuses=forgotten,processed")), 400);
    }

    #[test]
    fn cursors() {
        let first = request("cursor=&pagination=500").expect("valid");
        assert_eq!(first.paging, Paging::Cursor);
        assert_eq!(
            first.query.limit,
            crate::ApiConfig::default().max_cursor_page_size
        );
        assert_eq!(status(request("cursor=&page=0")), 422);
        assert_eq!(status(request("cursor=&page=x")), 422);
        assert_eq!(status(request("cursor=&pagination=0")), 422);
        assert_eq!(status(request("cursor=&sortBy=tx-time")), 200);
        let next = cursor::encode(&raleph_db::Cursor {
            time: 5.0,
            item_hash: "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588".into(),
        });
        assert_eq!(status(request(&format!("cursor={next}"))), 200);
        assert_eq!(
            status(request(&format!("cursor={next}&sortBy=tx-time"))),
            422
        );
        assert_eq!(
            status(list_request(&params("cursor="), Some("x.json"))),
            400
        );
        let pages = request("page=2&pagination=10").expect("valid");
        assert_eq!(
            pages.paging,
            Paging::Pages {
                page: 2,
                per_page: 10
            }
        );
        assert_eq!(pages.query.offset, 10);
    }
}
