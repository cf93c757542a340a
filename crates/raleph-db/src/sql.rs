//! The backend-neutral pieces of a read statement: parameters, and a WHERE clause built with
//! them, over a small [`Dialect`] (how a placeholder is written and how a column is matched
//! against a list of values). The query layer writes its SQL once with these; each backend
//! turns the parameters into its driver's values.

use std::marker::PhantomData;

/// A statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    /// A list, bound as one array parameter: only by dialects with arrays.
    Texts(Vec<String>),
    Real(f64),
    Int(i64),
}

/// What differs between the SQL of the backends' read statements.
pub(crate) trait Dialect {
    /// The placeholder of the `n`-th parameter (from 1).
    fn placeholder(n: usize) -> String;
    /// Whether a list of values binds as one array parameter (`= ANY($n)`), so a statement's
    /// text does not depend on how many values a filter has; otherwise `IN (?1, ?2, …)`.
    const ARRAYS: bool;
    /// `table` (with its alias, if any) read through the named index, where the dialect lets
    /// a statement choose (SQLite's planner, with approximate statistics, sometimes does not
    /// find the index a list is ordered by); otherwise `table` itself.
    fn indexed_by(table: &str, index: &str) -> String;
    /// Tag rows `t` joined to their messages `m`, in that order.
    const TAG_JOIN: &'static str;
    /// An inner join that keeps its left side as the outer loop (SQLite's `CROSS JOIN`);
    /// a plain `JOIN` where the planner orders joins itself.
    const CROSS_JOIN: &'static str;
    /// The column that identifies a row, for pages past the first skipped on an index alone
    /// (`None`: such pages read through the rows they skip).
    const ROW_ID: Option<&'static str>;
    /// Whether an owner filter is written for the sender index plus the small index of
    /// delegated owners (SQLite has no separate owner index).
    const OWNER_BY_SENDER_INDEX: bool;
}

/// SQLite: numbered `?N` placeholders (they mix with plain `?` ones, which take the next
/// number), no arrays.
#[cfg(feature = "sqlite")]
pub(crate) struct Sqlite;

#[cfg(feature = "sqlite")]
impl Dialect for Sqlite {
    fn placeholder(n: usize) -> String {
        format!("?{n}")
    }
    const ARRAYS: bool = false;
    fn indexed_by(table: &str, index: &str) -> String {
        format!("{table} INDEXED BY {index}")
    }
    // CROSS JOIN: SQLite then keeps the tag rows as the outer loop.
    const TAG_JOIN: &'static str =
        "message_tags t CROSS JOIN messages m ON m.item_hash = t.item_hash";
    const CROSS_JOIN: &'static str = "CROSS JOIN";
    const ROW_ID: Option<&'static str> = Some("rowid");
    const OWNER_BY_SENDER_INDEX: bool = true;
}

/// PostgreSQL: `$N` placeholders, arrays.
#[cfg(feature = "postgres")]
pub(crate) struct Postgres;

#[cfg(feature = "postgres")]
impl Dialect for Postgres {
    fn placeholder(n: usize) -> String {
        format!("${n}")
    }
    const ARRAYS: bool = true;
    fn indexed_by(table: &str, _index: &str) -> String {
        table.to_owned()
    }
    const TAG_JOIN: &'static str = "message_tags t JOIN messages m ON m.item_hash = t.item_hash";
    const CROSS_JOIN: &'static str = "JOIN";
    const ROW_ID: Option<&'static str> = None;
    const OWNER_BY_SENDER_INDEX: bool = false;
}

/// A WHERE clause under construction, with its numbered parameters.
pub(crate) struct Filter<D> {
    pub clauses: Vec<String>,
    pub params: Vec<Param>,
    dialect: PhantomData<D>,
}

impl<D> Default for Filter<D> {
    fn default() -> Self {
        Filter {
            clauses: Vec::new(),
            params: Vec::new(),
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> Filter<D> {
    /// Adds a parameter; returns its placeholder.
    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        D::placeholder(self.params.len())
    }

    pub fn push(&mut self, clause: impl Into<String>) {
        self.clauses.push(clause.into());
    }

    /// `column` is one of `values` (nothing when the list is empty). One value is `column =
    /// $n`: a B-tree range of `(column, time)` then comes in time order, so a page stops after
    /// its rows, where `= ANY` (before PostgreSQL 17) has every row of the range read and
    /// sorted.
    pub fn any_of(&mut self, column: &str, values: &[String]) {
        match values {
            [] => {}
            [value] => {
                let p = self.bind(Param::Text(value.clone()));
                self.push(format!("{column} = {p}"));
            }
            _ if D::ARRAYS => {
                let p = self.bind(Param::Texts(values.to_vec()));
                self.push(format!("{column} = ANY({p})"));
            }
            _ => {
                let marks: Vec<String> = values
                    .iter()
                    .map(|v| self.bind(Param::Text(v.clone())))
                    .collect();
                self.push(format!("{column} IN ({})", marks.join(", ")));
            }
        }
    }

    /// `column` is none of `values` (nothing when the list is empty).
    pub fn none_of(&mut self, column: &str, values: &[String]) {
        match values {
            [] => {}
            [value] => {
                let p = self.bind(Param::Text(value.clone()));
                self.push(format!("{column} <> {p}"));
            }
            _ if D::ARRAYS => {
                let p = self.bind(Param::Texts(values.to_vec()));
                self.push(format!("NOT ({column} = ANY({p}))"));
            }
            _ => {
                let marks: Vec<String> = values
                    .iter()
                    .map(|v| self.bind(Param::Text(v.clone())))
                    .collect();
                self.push(format!("{column} NOT IN ({})", marks.join(", ")));
            }
        }
    }

    /// The clauses `build` adds, taken out again and joined with `AND` (their parameters stay
    /// bound), to write inside a larger clause.
    pub fn detached(&mut self, build: impl FnOnce(&mut Self)) -> String {
        let from = self.clauses.len();
        build(self);
        let parts: Vec<String> = self.clauses.drain(from..).collect();
        parts.join(" AND ")
    }

    /// `column` in `[start, end)`, either side open when `None`.
    pub fn date_range(&mut self, column: &str, start: Option<f64>, end: Option<f64>) {
        if let Some(start) = start {
            let p = self.bind(Param::Real(start));
            self.push(format!("{column} >= {p}"));
        }
        if let Some(end) = end {
            let p = self.bind(Param::Real(end));
            self.push(format!("{column} < {p}"));
        }
    }

    /// The WHERE clause so far; the clauses start over, the parameters are kept (for a query
    /// made of several parts).
    pub fn take_sql(&mut self) -> String {
        let sql = self.sql();
        self.clauses.clear();
        sql
    }

    /// The WHERE clause with one more condition, which takes no parameters.
    pub fn sql_and(&self, condition: &str) -> String {
        let mut clauses = self.clauses.clone();
        clauses.push(condition.to_owned());
        format!("WHERE {}", clauses.join(" AND "))
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}
