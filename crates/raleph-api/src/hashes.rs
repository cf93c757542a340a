//! `GET /api/v0/messages/hashes`: item hashes of every status (pending, processed, rejected,
//! forgotten, removing, removed) by reception time, as the reference lists them.

use axum::Json;
use axum::extract::{RawQuery, State};
use raleph_db::{HashQuery, MessageStatus};
use raleph_message::content::lax;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::shapes::iso_time;

/// A request, checked: the store's query, its page, and whether only hashes are shown.
#[derive(Debug, PartialEq)]
pub(crate) struct HashesRequest {
    pub query: HashQuery,
    pub page: u64,
    pub per_page: u64,
    pub hash_only: bool,
}

pub(crate) fn request(params: &Params) -> ApiResult<HashesRequest> {
    let status = match params.get(&["status"]) {
        None | Some("") => None,
        Some(s) => Some(s.parse::<MessageStatus>().map_err(|_| {
            ApiError::unprocessable(format!(
                "status must be one of {}",
                MessageStatus::ALL.map(MessageStatus::as_str).join(", ")
            ))
        })?),
    };
    let (page, per_page) = params.page(None, 20)?;
    // Unlike the message list, an end before the start is no error here: the reference
    // checks neither, and answers an empty page.
    let (start, end) = params.dates()?;
    // `hash_only` defaults to true, so an absent or empty value is true.
    let hash_only = match params.get(&["hash_only", "hashOnly"]) {
        None | Some("") => true,
        Some(v) => lax::bool_from_str(v)
            .ok_or_else(|| ApiError::unprocessable("hash_only must be a boolean"))?,
    };
    Ok(HashesRequest {
        query: HashQuery {
            status,
            start,
            end,
            order: params.sort_order()?,
            limit: per_page,
            offset: (page - 1) * per_page,
        },
        page,
        per_page,
        hash_only,
    })
}

pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::parse(query.as_deref(), &state.config)?;
    let HashesRequest {
        query,
        page,
        per_page,
        hash_only,
    } = request(&params)?;
    let dated = query.start.is_some() || query.end.is_some();
    let counts = state.counts.clone();
    let reader = state.reader.clone();
    let (rows, total) = state
        .read(move |r| {
            let rows = r.message_hashes(&query)?;
            let seen = query.offset + rows.len() as u64;
            let total =
                if (rows.len() as u64) < query.limit && (query.offset == 0 || !rows.is_empty()) {
                    // A short page that is not past the end knows its total.
                    seen
                } else if dated {
                    // A range's total is counted on its index, and cached.
                    let count_query = HashQuery {
                        limit: 0,
                        offset: 0,
                        ..query
                    };
                    let key = format!("hashes {count_query:?}");
                    counts.get_or(&key, move || reader.count_message_hashes(&count_query))?
                } else {
                    // Without dates the store's kept counts are exact.
                    r.counts()?
                        .by_status
                        .iter()
                        .filter(|(s, _)| query.status.is_none_or(|wanted| wanted == *s))
                        .map(|(_, n)| n)
                        .sum()
                };
            Ok((rows, total))
        })
        .await?;
    let hashes: Vec<Value> = rows
        .into_iter()
        .map(|r| match hash_only {
            true => json!(r.item_hash),
            false => json!({
                "status": r.status.as_str(),
                "item_hash": r.item_hash,
                "reception_time": iso_time(r.reception_time),
            }),
        })
        .collect();
    Ok(Json(json!({
        "hashes": hashes,
        "pagination_per_page": per_page,
        "pagination_page": page,
        "pagination_total": total,
        "pagination_item": "hashes",
    })))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use raleph_db::SortOrder;

    use super::*;
    use crate::params::tests::{params, status};

    #[test]
    fn requests_as_the_reference_reads_them() {
        let r = request(&params("")).expect("defaults");
        assert_eq!(
            r.query,
            HashQuery {
                limit: 20,
                ..Default::default()
            }
        );
        assert!(r.hash_only);
        let r = request(&params(
            "status=rejected&page=3&pagination=5&startDate=10&endDate=5&sortOrder=1&hash_only=0",
        ))
        .expect("valid");
        assert_eq!(
            r.query,
            HashQuery {
                status: Some(MessageStatus::Rejected),
                start: Some(10.0),
                end: Some(5.0),
                order: SortOrder::Ascending,
                limit: 5,
                offset: 10,
            }
        );
        assert_eq!((r.page, r.per_page, r.hash_only), (3, 5, false));
        // 0 is the largest page; empty values are the defaults.
        let r = request(&params("pagination=0&status=&hash_only=")).expect("valid");
        assert_eq!(
            (r.per_page, r.query.status, r.hash_only),
            (1000, None, true)
        );
        for q in [
            "status=PROCESSED",
            "pagination=1001",
            "hash_only=2",
            "startDate=-1",
            "sortOrder=0",
        ] {
            assert_eq!(status(request(&params(q))), 422, "{q}");
        }
    }

    proptest! {
        /// Whatever the query, a request is refused with a 422 or read within the limits.
        #[test]
        fn any_query_is_bounded_or_refused(
            status_value in "[a-z]{0,10}",
            page in "-?[0-9]{0,22}",
            pagination in "-?[0-9]{0,22}",
            start in "[-0-9.e]{0,12}",
            hash_only in "[a-z0-9]{0,6}",
        ) {
            let q = format!(
                "status={status_value}&page={page}&pagination={pagination}&startDate={start}&hash_only={hash_only}"
            );
            let params = Params::parse(Some(&q), &crate::ApiConfig::default()).expect("few values");
            match request(&params) {
                Ok(r) => {
                    prop_assert!(r.per_page >= 1 && r.per_page <= 1000);
                    prop_assert_eq!(r.query.limit, r.per_page);
                    prop_assert!(r.query.offset <= i64::MAX as u64);
                    prop_assert!(r.query.start.is_none_or(|s| s > 0.0));
                }
                Err(e) => {
                    let code = axum::response::IntoResponse::into_response(e).status().as_u16();
                    prop_assert_eq!(code, 422);
                }
            }
        }
    }
}
