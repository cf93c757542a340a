//! Query strings as the reference reads them: lists are comma-separated, every parameter is
//! accepted under its alias and its field name, unknown parameters are ignored. Numbers and
//! booleans are read as pydantic reads them (`" 7 "`, `"1_000"`, `"7.0"` are 7; `"1e3"` is a
//! float, not an int; `yes`/`no`, `t`/`f` ... are booleans); an empty value is the default
//! (but for a date).
//!
//! Unlike the reference, a query is bounded: at most `api.max_query_values` values in all
//! (every comma-separated item counts), and pages of at most `api.max_page_size` rows at an
//! offset a database can take; past either, the client gets a 422 naming the limit, never a
//! 500 from the database.

use raleph_db::{Cursor, SortOrder};
use raleph_message::content::lax;
use raleph_message::limits::END_ENVELOPE_TIME;

use crate::ApiConfig;
use crate::error::{ApiError, ApiResult};

pub struct Params {
    pairs: Vec<(String, String)>,
    max_page_size: u64,
    max_cursor_page_size: u64,
}

/// The deepest row a page may start at: SQL offsets are signed 64-bit integers.
const MAX_OFFSET: u64 = i64::MAX as u64;

impl Params {
    pub fn parse(query: Option<&str>, limits: &ApiConfig) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let values: usize = pairs
            .iter()
            .map(|(_, v)| v.split(',').filter(|v| !v.trim().is_empty()).count().max(1))
            .sum();
        if values > limits.max_query_values {
            return Err(ApiError::unprocessable(format!(
                "the query has {values} values; at most {} are taken (api.max_query_values)",
                limits.max_query_values
            )));
        }
        Ok(Params {
            pairs,
            max_page_size: limits.max_page_size.max(1),
            max_cursor_page_size: limits.max_cursor_page_size.max(1),
        })
    }

    /// The last value given under any of `names`.
    pub fn get(&self, names: &[&str]) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list, also accepting repeated `name` and `name[]` parameters.
    pub fn list(&self, names: &[&str]) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| {
                names
                    .iter()
                    .any(|n| k == n || k.strip_suffix("[]") == Some(n))
            })
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A non-negative number (pydantic's `float` with `ge=0`: `inf` passes, `nan` does not;
    /// an empty value is refused).
    pub fn float(&self, names: &[&str]) -> ApiResult<Option<f64>> {
        match self.get(names) {
            None => Ok(None),
            Some(v) => lax::float_from_str(v)
                .filter(|f| *f >= 0.0)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::unprocessable(format!("{} must be a non-negative number", names[0]))
                }),
        }
    }

    /// An integer of any sign and size (values past `i128` saturate).
    pub fn signed_int(&self, names: &[&str]) -> ApiResult<Option<i128>> {
        match self.get(names) {
            None | Some("") => Ok(None),
            Some(v) => lax::int_from_str(v)
                .map(Some)
                .ok_or_else(|| ApiError::unprocessable(format!("{} must be an integer", names[0]))),
        }
    }

    /// A non-negative integer; values past `u64` saturate, which every bound then refuses.
    pub fn int(&self, names: &[&str], default: u64) -> ApiResult<u64> {
        match self.signed_int(names)? {
            None => Ok(default),
            Some(n) => u64::try_from(n).or_else(|_| {
                if n > 0 {
                    Ok(u64::MAX)
                } else {
                    Err(ApiError::unprocessable(format!(
                        "{} must be a non-negative integer",
                        names[0]
                    )))
                }
            }),
        }
    }

    pub fn bool(&self, names: &[&str]) -> ApiResult<bool> {
        match self.get(names) {
            None | Some("") => Ok(false),
            Some(v) => lax::bool_from_str(v)
                .ok_or_else(|| ApiError::unprocessable(format!("{} must be a boolean", names[0]))),
        }
    }

    pub fn sort_order(&self) -> ApiResult<SortOrder> {
        match self.signed_int(&["sortOrder", "sort_order"]) {
            Ok(None | Some(-1)) => Ok(SortOrder::Descending),
            Ok(Some(1)) => Ok(SortOrder::Ascending),
            _ => Err(ApiError::unprocessable("sortOrder must be 1 or -1")),
        }
    }

    /// `sortBy` of messages and posts: whether it is `tx-time` (else `time`, the default):
    /// the first confirmation's time, unconfirmed messages first when descending. Messages
    /// are listed so; posts in `time` order (their store keeps no first confirmation). A cursor is refused with `tx-time`,
    /// as by the reference.
    pub fn sort_by_tx_time(&self) -> ApiResult<bool> {
        let tx_time = match self.get(&["sortBy", "sort_by"]) {
            None | Some("time") => false,
            Some("tx-time") => true,
            Some(_) => return Err(ApiError::unprocessable("sortBy must be time or tx-time")),
        };
        if tx_time && self.get(&["cursor"]).is_some_and(|c| !c.is_empty()) {
            return Err(ApiError::unprocessable(
                "cursor pagination does not apply to the tx-time sort order",
            ));
        }
        Ok(tx_time)
    }

    /// A date bound, where 0 means none. The reference reads dates as Python `datetime`s,
    /// so it fails (a 500) from the year 10000 on, infinity included; here that is a 422.
    fn date(&self, names: &[&str]) -> ApiResult<Option<f64>> {
        match self.float(names)? {
            Some(t) if t >= END_ENVELOPE_TIME => Err(ApiError::unprocessable(format!(
                "{} must be before {END_ENVELOPE_TIME} (the year 10000)",
                names[0]
            ))),
            t => Ok(t.filter(|t| *t > 0.0)),
        }
    }

    /// `startDate`/`endDate`, each checked, but not against each other (posts: the
    /// reference's check of their order never runs there).
    pub fn dates(&self) -> ApiResult<(Option<f64>, Option<f64>)> {
        Ok((
            self.date(&["startDate", "start_date"])?,
            self.date(&["endDate", "end_date"])?,
        ))
    }

    /// `startDate`/`endDate`, where 0 means no bound; an end before the start is a 422.
    pub fn date_range(&self) -> ApiResult<(Option<f64>, Option<f64>)> {
        let (start, end) = self.dates()?;
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(ApiError::unprocessable("endDate is before startDate"));
        }
        Ok((start, end))
    }

    /// `startBlock`/`endBlock`: integers ≥ 0, where 0 means no bound; an end before the start
    /// is a 422.
    pub fn block_range(&self) -> ApiResult<(u64, u64)> {
        let start = self.int(&["startBlock", "start_block"], 0)?;
        let end = self.int(&["endBlock", "end_block"], 0)?;
        if start != 0 && end != 0 && end < start {
            return Err(ApiError::unprocessable("endBlock is before startBlock"));
        }
        Ok((start, end))
    }

    /// The page number: the path's (not an integer: 400) overrides the query's; either
    /// below 1 is a 422. Checked in cursor mode too, where it is otherwise unused.
    pub fn page_number(&self, path_page: Option<&str>) -> ApiResult<u64> {
        let query_page = self.int(&["page"], 1)?;
        if query_page < 1 {
            return Err(ApiError::unprocessable("page must be 1 or more"));
        }
        let page = match path_page {
            Some(p) => {
                let p = p
                    .trim_end_matches(".json")
                    .parse::<i64>()
                    .map_err(|_| ApiError::bad_request("page must be an integer"))?;
                u64::try_from(p).unwrap_or(0)
            }
            None => query_page,
        };
        if page < 1 {
            return Err(ApiError::unprocessable("page must be 1 or more"));
        }
        Ok(page)
    }

    /// Page-number pagination: `(page, per_page)`; the path's page overrides the query's.
    /// `pagination=0`, the reference's "no limit", is a page of `api.max_page_size` rows; a
    /// larger size, or a page whose first row lies past what an SQL offset can reach, is a 422.
    pub fn page(&self, path_page: Option<&str>, default_per_page: u64) -> ApiResult<(u64, u64)> {
        let page = self.page_number(path_page)?;
        let per_page = self.page_size(default_per_page)?;
        if (page - 1)
            .checked_mul(per_page)
            .is_none_or(|offset| offset > MAX_OFFSET)
        {
            return Err(ApiError::unprocessable(format!(
                "page {page} of {per_page} rows is past the end of any list"
            )));
        }
        Ok((page, per_page))
    }

    /// `pagination`, at most `api.max_page_size`; 0 (the reference's "no limit") is the
    /// largest page.
    pub fn page_size(&self, default_per_page: u64) -> ApiResult<u64> {
        match self.int(&["pagination"], default_per_page)? {
            0 => Ok(self.max_page_size),
            n if n > self.max_page_size => Err(ApiError::unprocessable(format!(
                "pagination must be at most {} (api.max_page_size)",
                self.max_page_size
            ))),
            n => Ok(n),
        }
    }

    /// The rows of a cursor page asked for `per_page`: at most `api.max_cursor_page_size`.
    pub fn cursor_page_size(&self, per_page: u64) -> u64 {
        per_page.min(self.max_cursor_page_size)
    }

    /// A list whose entries must each be `what` (`valid`): every comma-separated entry of
    /// every value given, as written (`" x"` or an empty entry is refused, as by the
    /// reference); only a value that is empty as a whole means "none".
    pub fn typed_list(
        &self,
        names: &[&str],
        what: &str,
        valid: impl Fn(&str) -> bool,
    ) -> ApiResult<Vec<String>> {
        let entries: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, v)| {
                !v.is_empty()
                    && names
                        .iter()
                        .any(|n| k == n || k.strip_suffix("[]") == Some(n))
            })
            .flat_map(|(_, v)| v.split(','))
            .map(str::to_owned)
            .collect();
        match entries.iter().find(|e| !valid(e)) {
            Some(bad) => Err(ApiError::unprocessable(format!(
                "{} holds {bad:?}, which is not {what}",
                names[0]
            ))),
            None => Ok(entries),
        }
    }

    /// A list of item hashes, each of the shape the reference accepts (64 lowercase hex
    /// characters, or an IPFS CID).
    pub fn hash_list(&self, names: &[&str]) -> ApiResult<Vec<String>> {
        self.typed_list(names, "an item hash", |h| {
            raleph_message::ItemHash::parse(h).is_ok()
        })
    }

    /// Cursor mode is asked for by a `cursor` parameter, empty for the first page:
    /// `None` = page mode, `Some(None)` = first cursor page, `Some(Some(_))` = later pages.
    pub fn cursor(&self) -> ApiResult<Option<Option<Cursor>>> {
        match self.get(&["cursor"]) {
            None => Ok(None),
            Some("") => Ok(Some(None)),
            Some(text) => crate::cursor::decode(text).map(|c| Some(Some(c))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use axum::response::IntoResponse;

    use super::*;

    /// The parameters of `query`, with the default limits.
    pub(crate) fn params(query: &str) -> Params {
        Params::parse(Some(query), &ApiConfig::default()).expect("a query within the limits")
    }

    /// The HTTP status a result answers with (200 when it is a value).
    pub(crate) fn status<T>(result: ApiResult<T>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(e) => e.into_response().status().as_u16(),
        }
    }

    const SHA: &str = "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588";

    #[test]
    fn integers_as_pydantic_reads_them() {
        for (q, page) in [
            ("page=7", 7),
            ("page=+7", 7),
            ("page=%207%20", 7),
            ("page=1_000", 1000),
            ("page=7.0", 7),
            ("page=", 1),
            ("", 1),
        ] {
            assert_eq!(params(q).int(&["page"], 1).ok(), Some(page), "{q}");
        }
        for q in ["page=1.5", "page=1e3", "page=-1", "page=x", "page=1__0"] {
            assert_eq!(status(params(q).int(&["page"], 1)), 422, "{q}");
        }
        // Past u64, a page saturates, and is past the end of any list.
        let huge = params(&format!("page={}", "9".repeat(40)));
        assert_eq!(huge.int(&["page"], 1).ok(), Some(u64::MAX));
        assert_eq!(status(huge.page(None, 20)), 422);
        assert_eq!(
            params("limit=-5").signed_int(&["limit"]).ok(),
            Some(Some(-5))
        );
        assert_eq!(status(params("limit=x").signed_int(&["limit"])), 422);
    }

    #[test]
    fn booleans_and_sort_orders() {
        for (q, value) in [("b=t", true), ("b=Y", true), ("b=f", false), ("b=N", false)] {
            assert_eq!(params(q).bool(&["b"]).ok(), Some(value), "{q}");
        }
        assert_eq!(status(params("b=2").bool(&["b"])), 422);
        for q in [
            "sortOrder=1",
            "sortOrder=+1",
            "sortOrder=1.0",
            "sortOrder=%201",
        ] {
            assert_eq!(
                params(q).sort_order().ok(),
                Some(SortOrder::Ascending),
                "{q}"
            );
        }
        assert_eq!(
            params("sortOrder=-1").sort_order().ok(),
            Some(SortOrder::Descending)
        );
        assert_eq!(status(params("sortOrder=2").sort_order()), 422);
    }

    #[test]
    fn dates_are_bounded_by_the_year_10000() {
        assert_eq!(
            params("startDate=1_0&endDate=253402300799.5")
                .date_range()
                .ok(),
            Some((Some(10.0), Some(253_402_300_799.5)))
        );
        assert_eq!(params("startDate=0").date_range().ok(), Some((None, None)));
        for q in [
            "startDate=253402300800",
            "endDate=inf",
            "endDate=1e400",
            "startDate=nan",
            "startDate=-1",
            "endDate=x",
            "endDate=",
        ] {
            assert_eq!(status(params(q).date_range()), 422, "{q}");
            assert_eq!(status(params(q).dates()), 422, "{q}");
        }
        // An end before the start: refused for messages, not for posts.
        let reversed = params("startDate=10&endDate=5");
        assert_eq!(status(reversed.date_range()), 422);
        assert_eq!(reversed.dates().ok(), Some((Some(10.0), Some(5.0))));
    }

    #[test]
    fn blocks_are_integers_in_order() {
        assert_eq!(
            params("startBlock=5&endBlock=9").block_range().ok(),
            Some((5, 9))
        );
        assert_eq!(
            params("startBlock=5&endBlock=0").block_range().ok(),
            Some((5, 0))
        );
        assert_eq!(params("endBlock=3").block_range().ok(), Some((0, 3)));
        for q in [
            "startBlock=5&endBlock=3",
            "startBlock=-1",
            "endBlock=1.5",
            "startBlock=x",
        ] {
            assert_eq!(status(params(q).block_range()), 422, "{q}");
        }
    }

    #[test]
    fn page_numbers() {
        assert_eq!(params("page=3").page_number(None).ok(), Some(3));
        assert_eq!(params("page=3").page_number(Some("4.json")).ok(), Some(4));
        assert_eq!(status(params("page=0").page_number(None)), 422);
        assert_eq!(status(params("page=0").page_number(Some("2.json"))), 422);
        assert_eq!(status(params("").page_number(Some("x.json"))), 400);
        assert_eq!(status(params("").page_number(Some("0.json"))), 422);
        assert_eq!(status(params("").page_number(Some("-2"))), 422);
    }

    #[test]
    fn sort_by_and_cursors() {
        assert_eq!(params("").sort_by_tx_time().ok(), Some(false));
        assert_eq!(params("sortBy=tx-time").sort_by_tx_time().ok(), Some(true));
        assert_eq!(
            params("sortBy=tx-time&cursor=").sort_by_tx_time().ok(),
            Some(true)
        );
        assert_eq!(
            status(params("sortBy=tx-time&cursor=abc").sort_by_tx_time()),
            422
        );
        assert_eq!(status(params("sortBy=size").sort_by_tx_time()), 422);
    }

    #[test]
    fn typed_lists() {
        let cid = "QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen";
        assert_eq!(
            params(&format!("hashes={SHA},{cid}&hashes[]={SHA}"))
                .hash_list(&["hashes"])
                .ok(),
            Some(vec![SHA.to_owned(), cid.to_owned(), SHA.to_owned()])
        );
        assert_eq!(params("hashes=").hash_list(&["hashes"]).ok(), Some(vec![]));
        let upper = SHA.to_uppercase();
        for q in [
            "hashes=abc".to_owned(),
            format!("hashes={upper}"),
            format!("hashes={SHA},"),
            format!("hashes={SHA},%20{SHA}"),
        ] {
            assert_eq!(status(params(&q).hash_list(&["hashes"])), 422, "{q}");
        }
    }

    #[test]
    fn a_cursor_page_is_at_most_the_configured_size() {
        assert_eq!(params("").cursor_page_size(500), 200);
        assert_eq!(params("").cursor_page_size(20), 20);
        let raised = ApiConfig {
            max_cursor_page_size: 400,
            ..ApiConfig::default()
        };
        let raised = Params::parse(None, &raised).expect("params");
        assert_eq!(raised.cursor_page_size(500), 400);
    }
}
