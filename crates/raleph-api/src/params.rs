//! Query strings as the reference reads them: lists are comma-separated, every parameter is
//! accepted under its alias and its field name, unknown parameters are ignored.

use raleph_db::{Cursor, SortOrder};

use crate::error::{ApiError, ApiResult};

pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        Params(pairs)
    }

    /// The last value given under any of `names`.
    pub fn get(&self, names: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list, also accepting repeated `name` and `name[]` parameters.
    pub fn list(&self, names: &[&str]) -> Vec<String> {
        self.0
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
    pub fn page(&self, path_page: Option<&str>, default_per_page: u64) -> ApiResult<(u64, u64)> {
        let page = match path_page {
            Some(p) => p
                .trim_end_matches(".json")
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("page must be an integer"))?,
            None => self.int(&["page"], 1)? as i64,
        };
        if page < 1 {
            return Err(ApiError::unprocessable("page must be 1 or more"));
        }
        Ok((page as u64, self.int(&["pagination"], default_per_page)?))
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
