//! The layers of the configuration, applied in order to one TOML value tree before it is
//! read into [`NodeConfig`]: so every field of every section can come from every layer, and
//! `deny_unknown_fields` and the value checks apply to all of them alike. Each value set
//! remembers its [`Source`], named in any error about it.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use toml::{Table, Value};

use super::{NodeConfig, check, text};

/// Where a setting came from. The order of the variants is the order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    /// The name of the environment variable.
    Environment(String),
    /// The flag (`--data-dir`, `--set api.max_body_bytes`).
    Flag(String),
}

impl Source {
    fn layer(&self) -> u8 {
        match self {
            Source::Default => 0,
            Source::File(_) => 1,
            Source::Environment(_) => 2,
            Source::Flag(_) => 3,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "the default"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Environment(name) => write!(f, "environment variable {name}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// `[p2p]` fields that are other names of top-level settings: (alias, setting).
const ALIASES: [(&str, &str); 3] = [
    ("p2p.listen", "p2p_addr"),
    ("p2p.peers", "peers"),
    ("p2p.key", "node_key"),
];

/// Where a value came from, and the key it was given under (an alias, or the setting's own).
struct Origin {
    source: Source,
    given_as: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (as `{}`)", self.source, self.given_as)
    }
}

/// The settings gathered so far.
pub struct Layers {
    tree: Table,
    /// Where each value in `tree` came from, by dotted key.
    origins: BTreeMap<String, Origin>,
    /// The defaults, as a tree: the type a value written as text is read as.
    defaults: Table,
    /// The top-level fields `RALEPH_<FIELD>` may set.
    top_level: Vec<String>,
}

impl Layers {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Layers {
            tree: Table::new(),
            origins: BTreeMap::new(),
            defaults: Table::try_from(NodeConfig::default())?,
            top_level: super::top_level_settings(),
        })
    }

    /// The layer of the TOML file.
    pub fn file(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("read config file {}: {e}", path.display()))?;
        let table: Table = text
            .parse()
            .map_err(|e| anyhow!("parse config file {}: {e}", path.display()))?;
        let mut values = Vec::new();
        leaves(table, String::new(), &mut values);
        for (key, value) in values {
            self.set(&key, value, Source::File(path.to_owned()))?;
        }
        Ok(())
    }

    /// The layer of the environment: `RALEPH_<SECTION>__<FIELD>` variables and
    /// `RALEPH_<FIELD>` ones naming a top-level field; the rest is not configuration. A
    /// variable set to nothing (`RALEPH_DATA_DIR=`, as unit files and scripts often leave
    /// them) sets nothing.
    pub fn environment(
        &mut self,
        variables: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> anyhow::Result<()> {
        // Sorted, so that what an error names does not depend on the environment's order.
        let mut settings = BTreeMap::new();
        for (name, value) in variables {
            let Some(name) = name.to_str() else { continue };
            let Some(key) = self.environment_key(name) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| anyhow!("environment variable {name}: the value is not UTF-8"))?;
            if value.is_empty() {
                continue;
            }
            settings.insert(name.to_owned(), (key, value));
        }
        for (name, (key, value)) in settings {
            self.set_text(&key, &value, Source::Environment(name))?;
        }
        Ok(())
    }

    /// The key an environment variable sets, if it is a setting.
    fn environment_key(&self, name: &str) -> Option<String> {
        let rest = name.strip_prefix("RALEPH_")?;
        if rest.contains("__") {
            return Some(
                rest.split("__")
                    .map(str::to_ascii_lowercase)
                    .collect::<Vec<_>>()
                    .join("."),
            );
        }
        let field = rest.to_ascii_lowercase();
        self.top_level.contains(&field).then_some(field)
    }

    /// A named flag's value (`--data-dir` and the like).
    pub fn flag(&mut self, flag: &str, key: &str, value: Value) -> anyhow::Result<()> {
        self.set(key, value, Source::Flag(flag.to_owned()))
    }

    /// A `--set section.field=value` flag. Errors name it by its key only, never echoing a
    /// value that may be a secret (a database URL's password).
    pub fn set_flag(&mut self, assignment: &str) -> anyhow::Result<()> {
        let Some((key, raw)) = assignment.split_once('=') else {
            bail!("--set {assignment}: expected section.field=value");
        };
        let key = key.trim();
        self.set_text(key, raw, Source::Flag(format!("--set {key}")))
    }

    /// Sets `key` to the value written as `raw`, read as the type of the field's default.
    fn set_text(&mut self, key: &str, raw: &str, source: Source) -> anyhow::Result<()> {
        let default = lookup(&self.defaults, key);
        let value = text::parse_value(default, raw)
            .map_err(|reason| anyhow!("setting `{key}` (from {source}): {reason}"))?;
        self.set(key, value, source)
    }

    /// Sets `key` (an alias is set as the setting it names) to `value`, replacing a value of
    /// a lower layer and leaving one of a higher layer in place, whatever order the layers
    /// are given in; the same layer may not give it two different values.
    fn set(&mut self, given: &str, value: Value, source: Source) -> anyhow::Result<()> {
        let (key, value) = canonical(given, value)
            .map_err(|reason| anyhow!("setting `{given}` (from {source}): {reason}"))?;
        if key.split('.').any(str::is_empty) {
            bail!("setting `{key}` (from {source}): not a key (section.field)");
        }
        let origin = Origin {
            source,
            given_as: given.to_owned(),
        };
        if let Some(earlier) = self.origins.get(&key) {
            match earlier.source.layer().cmp(&origin.source.layer()) {
                Ordering::Greater => return Ok(()),
                Ordering::Equal if lookup(&self.tree, &key) != Some(&value) => bail!(
                    "setting `{key}` is given twice with different values, by {earlier} and by \
                     {origin}: give it once"
                ),
                _ => {}
            }
        }
        insert(&mut self.tree, &key, value)
            .map_err(|reason| anyhow!("setting `{key}` (from {}): {reason}", origin.source))?;
        let inside = format!("{key}.");
        self.origins.retain(|set, _| !set.starts_with(&inside));
        self.origins.insert(key, origin);
        Ok(())
    }

    /// Reads the tree into the configuration, refusing unknown keys and bad values.
    pub fn resolve(self) -> anyhow::Result<NodeConfig> {
        let read: Result<NodeConfig, _> =
            serde_path_to_error::deserialize(Value::Table(self.tree.clone()));
        let mut config = match read {
            Ok(config) => config,
            Err(error) => {
                let key = error.path().to_string();
                let source = self.source_of(&key);
                bail!(
                    "invalid setting `{key}` (from {source}): {}",
                    error.into_inner().message()
                );
            }
        };
        let problems = check::problems(&config);
        if !problems.is_empty() {
            let described: Vec<String> = problems
                .iter()
                .map(|p| format!("`{}` (from {}) {}", p.key, self.source_of(&p.key), p.reason))
                .collect();
            bail!("invalid configuration: {}", described.join("; "));
        }
        config.fill_p2p_aliases()?;
        Ok(config)
    }

    /// Where the value at `key` (as serde names it, `peers[2]` for an element) came from: the
    /// layer that set it or the table holding it, or that set something inside it.
    pub fn source_of(&self, key: &str) -> Source {
        let key: String = without_indexes(key);
        let mut prefix = key.as_str();
        loop {
            if let Some(origin) = self.origins.get(prefix) {
                return origin.source.clone();
            }
            match prefix.rsplit_once('.') {
                Some((parent, _)) => prefix = parent,
                None => break,
            }
        }
        let inside = format!("{key}.");
        self.origins
            .iter()
            .find(|(set, _)| set.starts_with(&inside))
            .map_or(Source::Default, |(_, origin)| origin.source.clone())
    }
}

/// An alias's key and value as the setting it names.
fn canonical(key: &str, value: Value) -> Result<(String, Value), String> {
    let Some((_, setting)) = ALIASES.iter().find(|(alias, _)| *alias == key) else {
        return Ok((key.to_owned(), value));
    };
    if *setting == "p2p_addr" {
        let Value::String(multiaddr) = &value else {
            return Err(format!("{value} is not a multiaddr"));
        };
        let addr = text::multiaddr_to_socket(multiaddr)?;
        return Ok((setting.to_string(), Value::String(addr.to_string())));
    }
    Ok((setting.to_string(), value))
}

/// Every value of `table` that is not a table, with its dotted key (under `prefix`).
fn leaves(table: Table, prefix: String, into: &mut Vec<(String, Value)>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::Table(inner) => leaves(inner, key, into),
            value => into.push((key, value)),
        }
    }
}

/// The value at a dotted key.
fn lookup<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    let (parents, last) = match key.rsplit_once('.') {
        Some((parents, last)) => (Some(parents), last),
        None => (None, key),
    };
    let mut table = table;
    for name in parents.into_iter().flat_map(|p| p.split('.')) {
        table = table.get(name)?.as_table()?;
    }
    table.get(last)
}

/// Puts `value` at a dotted key, making the tables on the way.
fn insert(table: &mut Table, key: &str, value: Value) -> Result<(), String> {
    let mut names: Vec<&str> = key.split('.').collect();
    let last = names.pop().unwrap_or(key);
    let mut table = table;
    let mut at = String::new();
    for name in names {
        at = if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        };
        let entry = table
            .entry(name)
            .or_insert_with(|| Value::Table(Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{at}` is a value, not a section"))?;
    }
    table.insert(last.to_owned(), value);
    Ok(())
}

/// `peers[2]` as `peers`: sources are kept per field, not per element.
fn without_indexes(key: &str) -> String {
    let mut plain = String::with_capacity(key.len());
    let mut depth = 0;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain
}
