//! Query strings as the reference reads them: lists are comma-separated, every parameter is
//! accepted under its alias and its field name, unknown parameters are ignored.
//!
//! Unlike the reference, a query is bounded: at most `api.max_query_values` values in all
//! (every comma-separated item counts), and pages of at most `api.max_page_size` rows at an
//! offset a database can take; past either, the client gets a 422 naming the limit, never a
//! 500 from the database.

use raleph_db::{Cursor, SortOrder};

use crate::ApiConfig;
use crate::error::{ApiError, ApiResult};

pub struct Params {
    pairs: Vec<(String, String)>,
    max_page_size: u64,
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

    pub fn float(&self, names: &[&str]) -> ApiResult<Option<f64>> {
        self.get(names)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "{} must be a non-negative number",
                            names[0]
                        ))
                    })
            })
            .transpose()
    }

    pub fn int(&self, names: &[&str], default: u64) -> ApiResult<u64> {
        match self.get(names) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| {
                ApiError::unprocessable(format!("{} must be a non-negative integer", names[0]))
            }),
        }
    }

    pub fn bool(&self, names: &[&str]) -> ApiResult<bool> {
        match self.get(names).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("false" | "0" | "no" | "off") => Ok(false),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some(_) => Err(ApiError::unprocessable(format!(
                "{} must be a boolean",
                names[0]
            ))),
        }
    }

    pub fn sort_order(&self) -> ApiResult<SortOrder> {
        match self.get(&["sortOrder", "sort_order"]) {
            None | Some("") | Some("-1") => Ok(SortOrder::Descending),
            Some("1") => Ok(SortOrder::Ascending),
            Some(_) => Err(ApiError::unprocessable("sortOrder must be 1 or -1")),
        }
    }

    /// `startDate`/`endDate`, where 0 means no bound.
    pub fn date_range(&self) -> ApiResult<(Option<f64>, Option<f64>)> {
        let start = self
            .float(&["startDate", "start_date"])?
            .filter(|t| *t > 0.0);
        let end = self.float(&["endDate", "end_date"])?.filter(|t| *t > 0.0);
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(ApiError::unprocessable("endDate is before startDate"));
        }
        Ok((start, end))
    }

    /// Page-number pagination: `(page, per_page)`; the path's page overrides the query's.
    /// `pagination=0`, the reference's "no limit", is a page of `api.max_page_size` rows; a
    /// larger size, or a page whose first row lies past what an SQL offset can reach, is a 422.
    pub fn page(&self, path_page: Option<&str>, default_per_page: u64) -> ApiResult<(u64, u64)> {
        let page = match path_page {
            Some(p) => p
                .trim_end_matches(".json")
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("page must be an integer"))?,
            None => i64::try_from(self.int(&["page"], 1)?).unwrap_or(i64::MAX),
        };
        if page < 1 {
            return Err(ApiError::unprocessable("page must be 1 or more"));
        }
        let per_page = self.page_size(default_per_page)?;
        let page = page as u64;
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
