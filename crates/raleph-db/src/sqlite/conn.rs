//! The SQLite side of [`crate::conn`]: parameters bound by position (their `$N` names
//! checked against their order in debug builds), rows read with the store's errors.

use rusqlite::types::{ToSqlOutput, Value as Owned, ValueRef};

use super::backend;
use crate::conn::{Connection, Row, Value};
use crate::query::rows::Columns;
use crate::{Result, StoreError};

/// A connection of the store's, the writer's or a reader's, running shared statements.
pub(crate) struct Sql<'c>(pub(crate) &'c rusqlite::Connection);

impl Sql<'_> {
    /// Runs a statement; returns how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64> {
        let mut statement = self.0.prepare_cached(sql).map_err(backend)?;
        debug_assert!(
            numbered_in_order(&statement),
            "placeholders out of order: {sql}"
        );
        statement
            .execute(rusqlite::params_from_iter(params))
            .map(|n| n as u64)
            .map_err(backend)
    }
}

impl Connection for Sql<'_> {
    fn each_row(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut statement = self.0.prepare_cached(sql).map_err(backend)?;
        debug_assert!(
            numbered_in_order(&statement),
            "placeholders out of order: {sql}"
        );
        let mut rows = statement
            .query(rusqlite::params_from_iter(params))
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            each(&Checked(row))?;
        }
        Ok(())
    }
}

/// Whether a statement's `$N` placeholders are numbered in the order they first appear, as
/// SQLite binds named parameters by position in that order.
fn numbered_in_order(statement: &rusqlite::Statement<'_>) -> bool {
    (1..=statement.parameter_count())
        .all(|i| statement.parameter_name(i) == Some(format!("${i}").as_str()))
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match *self {
            Value::Text(s) | Value::OptText(Some(s)) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            Value::OptText(None) => ToSqlOutput::Owned(Owned::Null),
            Value::Real(f) => ToSqlOutput::Owned(Owned::Real(f)),
            Value::Int(i) => ToSqlOutput::Owned(Owned::Integer(i)),
            Value::Int32(i) => ToSqlOutput::Owned(Owned::Integer(i64::from(i))),
            Value::Bool(b) => ToSqlOutput::Owned(Owned::Integer(i64::from(b))),
        })
    }
}

/// A row read with the store's errors.
struct Checked<'a, 'b>(&'a rusqlite::Row<'b>);

impl Columns for Checked<'_, '_> {
    type Error = StoreError;
    fn text(&self, i: usize) -> Result<String> {
        Columns::text(self.0, i).map_err(backend)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Columns::opt_text(self.0, i).map_err(backend)
    }
    fn real(&self, i: usize) -> Result<f64> {
        Columns::real(self.0, i).map_err(backend)
    }
    fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        Columns::opt_real(self.0, i).map_err(backend)
    }
    fn integer(&self, i: usize) -> Result<i64> {
        Columns::integer(self.0, i).map_err(backend)
    }
    fn opt_integer(&self, i: usize) -> Result<Option<i64>> {
        Columns::opt_integer(self.0, i).map_err(backend)
    }
    fn boolean(&self, i: usize) -> Result<bool> {
        Columns::boolean(self.0, i).map_err(backend)
    }
    fn corrupt(&self, i: usize, reason: String) -> StoreError {
        StoreError::Corrupt(format!("column {i}: {reason}"))
    }
}
