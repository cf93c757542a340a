//! The write side's domain operations, written once for both backends over [`Session`]: the
//! statements of an operation and the kept totals it changes. Each backend keeps its
//! connection, transactions, sequence numbers, how it writes the kept totals at commit, and
//! the operations whose statements differ on purpose.
//!
//! Statements use `$N` placeholders, numbered in the order they first appear: PostgreSQL's
//! own, and SQLite reads them as named parameters bound by position (its session checks the
//! order in debug builds).

pub(crate) mod aggregates;
pub(crate) mod files;
pub(crate) mod pending;
pub(crate) mod posts;
pub(crate) mod records;

use crate::query::rows::Columns;
use crate::totals::Totals;
use crate::{Result, StoreError};

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

/// The writer's connection, as the shared operations use it.
pub(crate) trait Session {
    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64>;
    /// Runs a query, handing each row to `each`.
    fn each_row(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(Row<'_>) -> Result<()>,
    ) -> Result<()>;
    /// The open transaction's changes to the kept totals.
    fn totals(&mut self) -> &mut Totals;
    /// Outside a transaction each statement commits alone: so do the kept totals.
    fn settle_if_autocommit(&mut self) -> Result<()>;
    /// SQL for the size in bytes of a text expression, as a 64-bit integer.
    fn byte_length(&self, expr: &str) -> String;
    /// SQL for the greater of two values.
    fn greatest(&self, a: &str, b: &str) -> String;
    /// SQL for "the text `haystack` contains `needle`".
    fn contains(&self, haystack: &str, needle: &str) -> String;
}

/// The rows of a query, each mapped.
pub(crate) fn rows<T>(
    s: &mut dyn Session,
    sql: &str,
    params: &[Value<'_>],
    mut map: impl FnMut(Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    s.each_row(sql, params, &mut |r| {
        out.push(map(r)?);
        Ok(())
    })?;
    Ok(out)
}

/// The first row of a query, mapped, if there is one.
pub(crate) fn first<T>(
    s: &mut dyn Session,
    sql: &str,
    params: &[Value<'_>],
    map: impl FnOnce(Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut map = Some(map);
    let mut out = None;
    s.each_row(sql, params, &mut |r| {
        if let Some(map) = map.take() {
            out = Some(map(r)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The first column of each row, as text.
pub(crate) fn strings(s: &mut dyn Session, sql: &str, params: &[Value<'_>]) -> Result<Vec<String>> {
    rows(s, sql, params, |r| r.text(0))
}
