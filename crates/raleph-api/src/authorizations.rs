//! `GET /api/v0/authorizations/granted/{address}.json` and `.../received/{address}.json`: the
//! entries of `security` aggregates, grouped by the other party, filtered and paged as the
//! reference does. Granted reads the address's own aggregate; received finds the aggregates
//! naming the address through the store's `security_grants` index.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use raleph_db::StoreError;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;

/// The largest page (the reference's bound on `pagination`).
pub(crate) const MAX_AUTHORIZATIONS_PAGE: u64 = 500;
/// The aggregate key that holds an address's grants.
const SECURITY: &str = "security";

/// What a request filters on: an entry matches a filter unless it names values for that
/// field and none of them is among the filter's (an entry without the field allows all).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Filters {
    /// Only this other party (`grantee` for granted, `granter` for received).
    pub party: Option<String>,
    pub channels: Vec<String>,
    pub types: Vec<String>,
    pub post_types: Vec<String>,
    pub chains: Vec<String>,
    pub aggregate_keys: Vec<String>,
    pub page: u64,
    pub per_page: u64,
}

pub(crate) fn filters(params: &Params, party: &str) -> ApiResult<Filters> {
    let page = params.int(&["page"], 1)?;
    if page < 1 {
        return Err(ApiError::unprocessable("page must be 1 or more"));
    }
    let per_page = params.int(&["pagination"], 20)?;
    if !(1..=MAX_AUTHORIZATIONS_PAGE).contains(&per_page) {
        return Err(ApiError::unprocessable(format!(
            "pagination must be between 1 and {MAX_AUTHORIZATIONS_PAGE}"
        )));
    }
    if (page - 1).checked_mul(per_page).is_none() {
        return Err(ApiError::unprocessable("page is past the end of any list"));
    }
    Ok(Filters {
        party: params
            .get(&[party])
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        channels: params.list(&["channels"]),
        types: params.list(&["types"]),
        post_types: params.list(&["postTypes", "post_types"]),
        chains: params.list(&["chains"]),
        aggregate_keys: params.list(&["aggregateKeys", "aggregate_keys"]),
        page,
        per_page,
    })
}

/// The values an entry names for a field: a list's strings, or a lone string. Nothing
/// (absent, null, empty) means no restriction.
fn named(entry: &Map<String, Value>, field: &str) -> Vec<String> {
    match entry.get(field) {
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

impl Filters {
    fn matches(&self, entry: &Map<String, Value>) -> bool {
        [
            ("channels", &self.channels),
            ("types", &self.types),
            ("post_types", &self.post_types),
            ("chain", &self.chains),
            ("aggregate_keys", &self.aggregate_keys),
        ]
        .into_iter()
        .all(|(field, wanted)| {
            let values = named(entry, field);
            wanted.is_empty() || values.is_empty() || values.iter().any(|v| wanted.contains(v))
        })
    }
}

/// The entries of a `security` value, grouped by the address each names (in order of first
/// appearance), without that address. Entries that are not objects naming an address are
/// left out.
pub(crate) fn grouped(value: &Value) -> Vec<(String, Vec<Map<String, Value>>)> {
    let mut groups: Vec<(String, Vec<Map<String, Value>>)> = Vec::new();
    let entries = value
        .get("authorizations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for entry in entries {
        let Some(entry) = entry.as_object() else {
            continue;
        };
        let Some(address) = entry.get("address").and_then(Value::as_str) else {
            continue;
        };
        if address.is_empty() {
            continue;
        }
        let mut rest = entry.clone();
        rest.remove("address");
        match groups.iter_mut().find(|(a, _)| a == address) {
            Some((_, list)) => list.push(rest),
            None => groups.push((address.to_owned(), vec![rest])),
        }
    }
    groups
}

/// Filters and pages parties as they come, holding only the page: what the answer's
/// `authorizations` and `pagination_total` (the parties left after filtering) are made of.
pub(crate) struct Pager<'a> {
    filters: &'a Filters,
    skip: u64,
    shown: Map<String, Value>,
    total: u64,
}

impl<'a> Pager<'a> {
    pub(crate) fn new(filters: &'a Filters) -> Pager<'a> {
        Pager {
            filters,
            // `filters` checked that this does not overflow.
            skip: (filters.page - 1) * filters.per_page,
            shown: Map::new(),
            total: 0,
        }
    }

    /// One party's entries: counted if any passes the filters; true if shown on the page.
    pub(crate) fn offer(&mut self, party: String, entries: Vec<Map<String, Value>>) -> bool {
        let f = self.filters;
        if f.party.as_ref().is_some_and(|p| *p != party) {
            return false;
        }
        let entries: Vec<Value> = entries
            .into_iter()
            .filter(|e| f.matches(e))
            .map(Value::Object)
            .collect();
        if entries.is_empty() {
            return false;
        }
        let shown = self.total >= self.skip && (self.shown.len() as u64) < f.per_page;
        if shown {
            self.shown.insert(party, Value::Array(entries));
        }
        self.total += 1;
        shown
    }

    pub(crate) fn finish(self) -> (Map<String, Value>, u64) {
        (self.shown, self.total)
    }
}

/// Filters and pages the groups (see [`Pager`]).
pub(crate) fn page(
    groups: Vec<(String, Vec<Map<String, Value>>)>,
    f: &Filters,
) -> (Map<String, Value>, u64) {
    let mut pager = Pager::new(f);
    for (party, entries) in groups {
        pager.offer(party, entries);
    }
    pager.finish()
}

fn parse(content: &str) -> ApiResult<Value> {
    serde_json::from_str(content).map_err(ApiError::internal)
}

fn answer(address: &str, f: &Filters, (authorizations, total): (Map<String, Value>, u64)) -> Value {
    json!({
        "authorizations": authorizations,
        "pagination_page": f.page,
        "pagination_per_page": f.per_page,
        "pagination_total": total,
        "pagination_item": "authorizations",
        "address": address,
    })
}

/// The address a route names (with or without `.json`) and the request's filters, `party`
/// naming the other side's parameter.
fn request(
    state: &AppState,
    address: &str,
    query: Option<&str>,
    party: &str,
) -> ApiResult<(String, Filters)> {
    let address = address.strip_suffix(".json").unwrap_or(address).to_owned();
    let params = Params::parse(query, &state.config)?;
    Ok((address, filters(&params, party)?))
}

pub async fn granted(
    State(state): State<AppState>,
    Path(address): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let (address, f) = request(&state, &address, query.as_deref(), "grantee")?;
    let owner = address.clone();
    let max_bytes = state.config.max_response_bytes;
    let records = state
        .read(move |r| r.aggregates_of_bounded(&owner, &[SECURITY.to_owned()], max_bytes))
        .await?;
    let groups = match records.first() {
        Some(record) => grouped(&parse(&record.content)?),
        None => Vec::new(),
    };
    Ok(Json(answer(&address, &f, page(groups, &f))))
}

pub async fn received(
    State(state): State<AppState>,
    Path(address): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let (address, f) = request(&state, &address, query.as_deref(), "granter")?;
    let max_bytes = state.config.max_response_bytes;
    // However many owners grant the address, the read holds one of their aggregates and the
    // page at a time; the page itself is bounded like any other answer.
    let (address, f, paged) = state
        .read(move |r| {
            let mut pager = Pager::new(&f);
            let mut page_bytes = 0usize;
            r.each_grant_to(&address, &mut |grant| {
                let value: Value = serde_json::from_str(&grant.content).map_err(|e| {
                    StoreError::Corrupt(format!("the security aggregate of {}: {e}", grant.owner))
                })?;
                let entries: Vec<Map<String, Value>> = grouped(&value)
                    .into_iter()
                    .filter(|(party, _)| *party == address)
                    .flat_map(|(_, entries)| entries)
                    .collect();
                if pager.offer(grant.owner, entries) {
                    // The aggregate's size bounds what its entries add to the page.
                    page_bytes = page_bytes.saturating_add(grant.content.len());
                    if max_bytes > 0 && page_bytes > max_bytes {
                        return Err(StoreError::TooLarge { limit: max_bytes });
                    }
                }
                Ok(())
            })?;
            let paged = pager.finish();
            Ok((address, f, paged))
        })
        .await?;
    Ok(Json(answer(&address, &f, paged)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::params::tests::{params, status};

    fn entries(value: Value) -> Vec<(String, Vec<Map<String, Value>>)> {
        grouped(&value)
    }

    #[test]
    fn grouped_by_party_in_order_without_the_address() {
        let value = json!({"authorizations": [
            {"address": "0xB", "types": ["POST"]}, "junk", {"address": ""}, {"types": []},
            {"address": "0xA"}, {"address": "0xB", "chain": "ETH"}, {"address": 7},
        ]});
        let groups = entries(value);
        let names: Vec<&str> = groups.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(names, ["0xB", "0xA"]);
        assert_eq!(
            Value::Object(groups[0].1[1].clone()),
            json!({"chain": "ETH"})
        );
        assert!(entries(json!({"authorizations": {"address": "0xA"}})).is_empty());
        assert!(entries(json!([1])).is_empty());
    }

    #[test]
    fn filters_allow_what_an_entry_leaves_open() {
        let f = filters(&params("types=POST&chains=ETH"), "grantee").expect("valid");
        let entry = |v: Value| v.as_object().cloned().expect("an object");
        assert!(f.matches(&entry(json!({}))));
        assert!(f.matches(&entry(json!({"types": [], "chain": null}))));
        assert!(f.matches(&entry(json!({"types": ["STORE", "POST"], "chain": "ETH"}))));
        assert!(!f.matches(&entry(json!({"types": ["STORE"]}))));
        assert!(!f.matches(&entry(json!({"chain": "SOL"}))));
        for q in [
            "pagination=0",
            "pagination=501",
            "page=0",
            "page=-1",
            "pagination=x",
        ] {
            assert_eq!(status(filters(&params(q), "grantee")), 422, "{q}");
        }
        let f = filters(&params("pagination=500&page=2&grantee="), "grantee").expect("valid");
        assert_eq!((f.page, f.per_page, f.party), (2, 500, None));
    }

    /// Any JSON value, a few levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[ab0x]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("address".to_owned()),
                            Just("types".to_owned()),
                            Just("chain".to_owned()),
                            "[a-z]{1,3}"
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the query, its filters are read within the page bounds or refused (422).
        #[test]
        fn any_query_is_bounded_or_refused(
            page in "-?[0-9]{0,22}",
            pagination in "-?[0-9_.]{0,8}",
            lists in "[a-zA-Z,]{0,20}",
        ) {
            let q = format!("page={page}&pagination={pagination}&types={lists}&chains={lists}&grantee={lists}");
            let params = Params::parse(Some(&q), &crate::ApiConfig::default()).expect("few values");
            match filters(&params, "grantee") {
                Ok(f) => {
                    prop_assert!((1..=MAX_AUTHORIZATIONS_PAGE).contains(&f.per_page));
                    prop_assert!(f.page >= 1);
                    prop_assert!((f.page - 1).checked_mul(f.per_page).is_some());
                    prop_assert!(f.types.iter().all(|t| !t.is_empty() && !t.contains(',')));
                }
                Err(e) => {
                    let code = axum::response::IntoResponse::into_response(e).status().as_u16();
                    prop_assert_eq!(code, 422);
                }
            }
        }

        /// Any security value and any page: no panic, a page of at most `per_page` parties,
        /// a total that counts the parties left after filtering.
        #[test]
        fn any_value_is_grouped_and_paged(
            list in prop::collection::vec(json_value(), 0..8),
            page in 1u64..4,
            per_page in 1u64..4,
            types in prop::option::of("[a-z]{1,2}"),
        ) {
            let value = json!({"authorizations": list});
            let f = Filters {
                types: types.into_iter().collect(),
                page,
                per_page,
                ..Default::default()
            };
            let groups = grouped(&value);
            let parties = groups.len() as u64;
            let (shown, total) = super::page(groups, &f);
            prop_assert!(total <= parties);
            prop_assert!(shown.len() as u64 <= per_page);
            prop_assert_eq!(shown.len() as u64, total.saturating_sub((page - 1) * per_page).min(per_page));
        }
    }
}
