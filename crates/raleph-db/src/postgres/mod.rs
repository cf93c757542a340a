//! The PostgreSQL backend: one write connection owned by the pipeline's writer thread, a small
//! bounded pool of read connections for the API. It behaves exactly as the SQLite backend
//! (same results, orders, tie-breaks and counts; `tests/conformance.rs` runs the same tests on
//! both), for an index larger than one machine or read by several API processes.
//!
//! Text columns use the `"C"` collation, so sorting and keyset comparisons are bytewise as in
//! SQLite whatever the database's default collation. Content is stored as `TEXT`, never
//! `JSONB`, so it is served byte for byte (JSONB would reorder keys and drop duplicates).
//!
//! The `postgres` client drives a small tokio runtime of its own: call this backend from a
//! plain or a blocking thread, never from async code (as the traits require anyway).

mod read;
mod schema;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ::postgres::{Client, Config, NoTls, Statement};

pub use read::PgReader;
pub use schema::SCHEMA_VERSION;
pub use write::PgWriter;

use crate::{Durability, Result, StoreError};

/// How to open a PostgreSQL index.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `synchronous_commit = on` for [`Durability::Full`] (an acknowledged commit survives a
    /// crash of the database server), `off` for [`Durability::Normal`].
    pub durability: Durability,
    /// The schema holding the tables, created if missing; `None` uses the connection's
    /// default `search_path` (normally `public`).
    pub schema: Option<String>,
    /// Most read connections open at once; readers wait for a free one beyond that.
    pub max_read_connections: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            durability: Durability::Full,
            schema: None,
            max_read_connections: 16,
        }
    }
}

/// Whether `database` names a PostgreSQL database (a `postgres://` or `postgresql://` URL).
pub fn is_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// `url` without its password, for logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

pub(crate) fn backend(e: ::postgres::Error) -> StoreError {
    if unavailable(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// Whether an error says the server cannot be used right now rather than that a statement
/// failed: the connection is closed or was never made, or the server reports a connection
/// exception (class 08), insufficient resources such as a full disk (53), an operator
/// intervention such as a shutdown (57P), or a system error (58).
fn unavailable(e: &::postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(state) => {
            let code = state.code();
            ["08", "53", "57P", "58"]
                .iter()
                .any(|class| code.starts_with(class))
        }
        // No SQLSTATE: unavailable if talking to the server failed (an I/O error, as when
        // connecting to a server that is down), not if a value failed to convert.
        None => {
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                if cause.is::<std::io::Error>() {
                    return true;
                }
                source = cause.source();
            }
            false
        }
    }
}

fn other(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into().into())
}

/// Opens (creating the schema and migrating if needed) the database at `url`.
///
/// Only one writer may use a schema at a time: the writer holds a session advisory lock, and a
/// second node opening the same schema fails here.
pub fn open(url: &str, options: &PgOptions) -> Result<(PgWriter, PgReader)> {
    let session = Session::new(url, options)?;
    let mut conn = session.connect(Role::Writer(options.durability))?;
    if let Some(name) = &session.schema {
        schema::create_schema(&mut conn, name)?;
    }
    schema::migrate(&mut conn, session.schema.as_deref())?;
    let writer = PgWriter::new(session.clone(), options.durability, conn)?;
    Ok((writer, PgReader::new(read_pool(session, options))))
}

/// Opens only the read side, for a process that serves reads beside the node that writes:
/// it checks that the schema is one this build reads, and changes nothing.
pub fn open_reader(url: &str, options: &PgOptions) -> Result<PgReader> {
    let session = Session::new(url, options)?;
    let mut conn = session.connect(Role::Reader)?;
    let found = schema::version(&mut conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        return Err(other(format!(
            "the database schema is at version {found}, this build reads {SCHEMA_VERSION}: \
             start the node (the writer) first, it migrates the schema"
        )));
    }
    let pool = read_pool(session, options);
    pool.adopt(conn);
    Ok(PgReader::new(pool))
}

fn read_pool(session: Arc<Session>, options: &PgOptions) -> Arc<ReadPool> {
    Arc::new(ReadPool {
        session,
        max: options.max_read_connections.max(1),
        state: Mutex::new(PoolState::default()),
        freed: Condvar::new(),
    })
}

/// What a connection is for: its session settings differ.
#[derive(Clone, Copy)]
pub(crate) enum Role {
    Writer(Durability),
    Reader,
}

/// How to open a connection of this store.
pub(crate) struct Session {
    config: Config,
    schema: Option<String>,
}

impl Session {
    fn new(url: &str, options: &PgOptions) -> Result<Arc<Session>> {
        let mut config: Config = url.parse().map_err(|e| StoreError::Backend(Box::new(e)))?;
        if config.get_application_name().is_none() {
            config.application_name("raleph");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(Arc::new(Session {
            config,
            schema: options.schema.clone(),
        }))
    }

    pub(crate) fn connect(&self, role: Role) -> Result<Conn> {
        let mut client = self.config.connect(NoTls).map_err(backend)?;
        let mut setup = String::from("SET TIME ZONE 'UTC'; SET client_min_messages = warning;");
        if let Some(schema) = &self.schema {
            setup.push_str(&format!("SET search_path TO {};", quote_ident(schema)));
        }
        match role {
            Role::Writer(Durability::Full) => setup.push_str("SET synchronous_commit = on;"),
            Role::Writer(Durability::Normal) => setup.push_str("SET synchronous_commit = off;"),
            Role::Reader => setup.push_str("SET default_transaction_read_only = on;"),
        }
        client.batch_execute(&setup).map_err(backend)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
            broken: false,
        })
    }
}

/// `"name"`, with inner quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Prepared statements kept per connection, by their SQL.
const MAX_CACHED_STATEMENTS: usize = 256;

/// A connection and its prepared statements.
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
    /// Left in an unknown state (a failed rollback): never reused.
    broken: bool,
}

impl Conn {
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.broken || self.client.is_closed()
    }

    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// The prepared statement for `sql`, prepared on first use.
    pub(crate) fn prepared(
        &mut self,
        sql: &str,
    ) -> std::result::Result<Statement, ::postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        if self.statements.len() >= MAX_CACHED_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Borrowed values as the driver's parameters.
pub(crate) fn driver_params<'a>(
    params: &'a [crate::conn::Value<'a>],
) -> Vec<&'a (dyn ::postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|value| -> &(dyn ::postgres::types::ToSql + Sync) {
            match value {
                crate::conn::Value::Text(s) => s,
                crate::conn::Value::OptText(o) => o,
                crate::conn::Value::Real(f) => f,
                crate::conn::Value::Int(i) => i,
                crate::conn::Value::Int32(i) => i,
                crate::conn::Value::Bool(b) => b,
            }
        })
        .collect()
}

/// Drops a connection on a thread of its own: closing it runs the client's runtime, which
/// must not happen on a thread that runs async code (where the last reference may go).
pub(crate) fn close_off_thread<T: Send + 'static>(value: T) {
    let handle = std::thread::Builder::new()
        .name("raleph-db-close".into())
        .spawn(move || drop(value));
    if let Ok(handle) = handle {
        let _ = handle.join();
    }
}

/// Read connections, opened on demand up to `max`, and kept for reuse.
pub(crate) struct ReadPool {
    session: Arc<Session>,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Conn>,
    /// Connections open, idle or in use.
    open: usize,
}

/// How long a reader waits for a free connection before giving up.
const POOL_WAIT: Duration = Duration::from_secs(30);

impl ReadPool {
    /// Runs `f` on a pooled connection. A connection found lost (the server restarted, or
    /// closed it) is replaced and `f` runs once more: reads are safe to repeat.
    pub(crate) fn with<T>(&self, mut f: impl FnMut(&mut Conn) -> Result<T>) -> Result<T> {
        let mut conn = self.take()?;
        let mut result = f(&mut conn);
        if result.is_err() && conn.is_closed() {
            self.give_back(conn);
            conn = self.take()?;
            result = f(&mut conn);
        }
        self.give_back(conn);
        result
    }

    fn take(&self) -> Result<Conn> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(conn);
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                let conn = self.session.connect(Role::Reader);
                if conn.is_err() {
                    let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.open -= 1;
                    self.freed.notify_one();
                }
                return conn;
            }
            let (next, timeout) = self
                .freed
                .wait_timeout(state, POOL_WAIT)
                .unwrap_or_else(|p| p.into_inner());
            state = next;
            if timeout.timed_out() && state.idle.is_empty() && state.open >= self.max {
                return Err(other(format!(
                    "no free database connection after {}s ({} in use)",
                    POOL_WAIT.as_secs(),
                    self.max
                )));
            }
        }
    }

    /// Adds a connection opened elsewhere to the pool.
    fn adopt(&self, conn: Conn) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).open += 1;
        self.give_back(conn);
    }

    fn give_back(&self, conn: Conn) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if conn.is_closed() {
            state.open -= 1;
            drop(state);
            close_off_thread(conn);
        } else {
            state.idle.push(conn);
        }
        self.freed.notify_one();
    }
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let idle = std::mem::take(&mut state.idle);
        if !idle.is_empty() {
            close_off_thread(idle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognized_and_redacted() {
        assert!(is_url("postgres://u@h/db"));
        assert!(is_url("postgresql://h/db"));
        assert!(!is_url("/var/lib/raleph/index.sqlite"));
        assert_eq!(
            redact("postgres://user:secret@host:5432/db?sslmode=disable"),
            "postgres://user:***@host:5432/db?sslmode=disable"
        );
        assert_eq!(redact("postgres://user@host/db"), "postgres://user@host/db");
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    }
}
