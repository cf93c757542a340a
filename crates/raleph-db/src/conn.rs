//! Running a statement on a connection of either backend, the writer's or a reader's:
//! parameters borrowed from the caller, rows read through [`Columns`], and the few helpers
//! every shared read and write uses.
//!
//! Statements use `$N` placeholders, numbered in the order they first appear: PostgreSQL's
//! own, and SQLite reads them as named parameters bound by position (its connections check
//! the order in debug builds).

use crate::query::rows::Columns;
use crate::{ItemHash, Result, StoreError};

/// A statement parameter, borrowed from the caller's data.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Real(f64),
    Int(i64),
    /// A 32-bit integer column's value (PostgreSQL types them apart).
    Int32(i32),
    Bool(bool),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Text(s)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Text(s)
    }
}

impl<'a> From<&'a ItemHash> for Value<'a> {
    fn from(h: &'a ItemHash) -> Self {
        Value::Text(h.as_str())
    }
}

impl<'a> From<&'a Option<ItemHash>> for Value<'a> {
    fn from(h: &'a Option<ItemHash>) -> Self {
        Value::OptText(h.as_ref().map(ItemHash::as_str))
    }
}

impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(s: &'a Option<String>) -> Self {
        Value::OptText(s.as_deref())
    }
}

impl From<f64> for Value<'_> {
    fn from(f: f64) -> Self {
        Value::Real(f)
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

/// A result row, read with the store's errors.
pub(crate) type Row<'r> = &'r dyn Columns<Error = StoreError>;

/// A connection that runs statements and hands back their rows.
pub(crate) trait Connection {
    /// Runs a query, handing each row to `each`.
    fn each_row(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(Row<'_>) -> Result<()>,
    ) -> Result<()>;
}

/// The rows of a query, each mapped.
pub(crate) fn rows<T>(
    c: &mut dyn Connection,
    sql: &str,
    params: &[Value<'_>],
    mut map: impl FnMut(Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    c.each_row(sql, params, &mut |r| {
        out.push(map(r)?);
        Ok(())
    })?;
    Ok(out)
}

/// The first row of a query, mapped, if there is one.
pub(crate) fn first<T>(
    c: &mut dyn Connection,
    sql: &str,
    params: &[Value<'_>],
    map: impl FnOnce(Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut map = Some(map);
    let mut out = None;
    c.each_row(sql, params, &mut |r| {
        if let Some(map) = map.take() {
            out = Some(map(r)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The first column of each row, as text.
pub(crate) fn strings(
    c: &mut dyn Connection,
    sql: &str,
    params: &[Value<'_>],
) -> Result<Vec<String>> {
    rows(c, sql, params, |r| r.text(0))
}

/// The first column of each row, as item hashes.
pub(crate) fn hashes(
    c: &mut dyn Connection,
    sql: &str,
    params: &[Value<'_>],
) -> Result<Vec<ItemHash>> {
    rows(c, sql, params, |r| crate::query::rows::parsed(r, 0))
}

/// Whether a query returns a row.
pub(crate) fn exists(c: &mut dyn Connection, sql: &str, params: &[Value<'_>]) -> Result<bool> {
    Ok(first(c, sql, params, |_| Ok(()))?.is_some())
}
