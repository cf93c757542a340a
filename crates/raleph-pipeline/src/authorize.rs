//! Who may act for an owner: the owner itself, or a delegate its `security` aggregate names.

use raleph_db::WriteStore;
use raleph_message::Envelope;
use serde_json::Value;

/// An action to authorize: a message `sender` acting on behalf of `owner`.
pub struct Action<'a> {
    pub sender: &'a str,
    pub owner: &'a str,
    pub chain: &'a str,
    pub message_type: &'a str,
    pub channel: Option<&'a str>,
    pub post_type: Option<&'a str>,
    pub aggregate_key: Option<&'a str>,
}

impl<'a> Action<'a> {
    /// `env`'s sender acting for `owner`, with no post type or aggregate key.
    pub fn of(env: &'a Envelope, owner: &'a str) -> Action<'a> {
        Action {
            sender: &env.sender,
            owner,
            chain: env.chain.as_str(),
            message_type: env.message_type.as_str(),
            channel: env.channel.as_deref(),
            post_type: None,
            aggregate_key: None,
        }
    }
}

pub(crate) fn is_authorized(
    store: &mut dyn WriteStore,
    action: &Action<'_>,
) -> raleph_db::Result<bool> {
    // Addresses compare case-insensitively: EVM addresses may or may not carry their checksum.
    if action.sender.eq_ignore_ascii_case(action.owner) {
        return Ok(true);
    }
    let security = store.aggregate_value(action.owner, "security")?;
    Ok(security.is_some_and(|security| delegation_allows(&security, action)))
}

/// Whether the owner's `security` aggregate lets `action.sender` act for it. An action whose
/// post type or aggregate key is unknown (`None`) passes only grants that restrict neither.
pub fn delegation_allows(security: &Value, action: &Action<'_>) -> bool {
    let grants = security.get("authorizations").and_then(Value::as_array);
    grants.is_some_and(|grants| grants.iter().any(|grant| grant_allows(grant, action)))
}

/// One `authorizations` entry: every restriction it sets must hold.
fn grant_allows(grant: &Value, action: &Action<'_>) -> bool {
    let Some(address) = grant.get("address").and_then(Value::as_str) else {
        return false;
    };
    if !address.eq_ignore_ascii_case(action.sender) {
        return false;
    }
    if let Some(chain) = grant
        .get("chain")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        && chain != action.chain
    {
        return false;
    }
    allows(grant, "channels", action.channel)
        && allows(grant, "types", Some(action.message_type))
        && (action.message_type != "POST" || allows(grant, "post_types", action.post_type))
        && (action.message_type != "AGGREGATE"
            || allows(grant, "aggregate_keys", action.aggregate_key))
}

/// An absent or empty list allows anything; otherwise the value must be in it.
fn allows(grant: &Value, field: &str, value: Option<&str>) -> bool {
    match grant.get(field).and_then(Value::as_array) {
        None => true,
        Some(list) if list.is_empty() => true,
        Some(list) => value.is_some_and(|v| list.iter().any(|item| item.as_str() == Some(v))),
    }
}
