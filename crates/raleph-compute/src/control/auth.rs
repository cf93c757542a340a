//! Who is asking: the reference's owner authentication (aleph-vm `doc/operator_auth.md`).
//!
//! - `X-SignedPubKey`: `{"payload": hex(JSON), "signature": hex}`. The JSON names an ephemeral
//!   P-256 key (`pubkey`, a JWK), the wallet `address`, its `chain` (`ETH`, the default, or
//!   `SOL`) and when the key `expires` (ISO 8601). The wallet signs the JSON bytes: EIP-191 for
//!   ETH, ed25519 over the payload's hex text for SOL.
//! - `X-SignedOperation`: `{"payload": hex(JSON), "signature": hex(r ‖ s)}`. The JSON holds
//!   `time` (within two minutes of the node's clock), `method`, `domain` and `path`; the
//!   ephemeral key signs the JSON bytes (ES256).
//!
//! The checks and their answers are the reference's: a missing or malformed header (and an
//! operation outside the time window) is 400; an expired key, a wrong wallet signature,
//! another domain, path or method, or a wrong operation signature is 401. Every failure is a
//! JSON `{"error": ...}`; the message says which check failed. One difference of order: the
//! wallet signature (a public-key recovery) is checked after the cheap checks of both
//! headers, so a request wrong in several ways may name another fault than the reference.

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Map, Value};

use super::time;
use super::wallet;

/// Longest `X-SignedPubKey` or `X-SignedOperation` accepted (the SDK's are under 1 KiB).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// How far an operation's `time` may be from the node's clock, in seconds.
pub const MAX_CLOCK_SKEW_SECS: f64 = 120.0;

pub const PUBKEY_HEADER: &str = "x-signedpubkey";
pub const OPERATION_HEADER: &str = "x-signedoperation";

/// A refused request: its status and the `error` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub status: StatusCode,
    pub message: String,
}

impl AuthError {
    fn bad_request(message: impl Into<String>) -> Self {
        AuthError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        AuthError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }
}

/// The wallets the reference accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletChain {
    Eth,
    Sol,
}

/// A parsed `X-SignedPubKey` that has not expired (its wallet signature is checked by
/// [`parse_signed_pubkey`], and by [`authenticate`] once the cheaper checks passed).
#[derive(Debug, Clone)]
pub struct SignedPubKey {
    /// The wallet address, as the payload spells it.
    pub address: String,
    pub chain: WalletChain,
    /// Seconds since the epoch.
    pub expires: f64,
    /// The JWK; turned into a key only when an operation is checked, as the reference does.
    jwk: Map<String, Value>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// A parsed `X-SignedOperation`, its time within the window; its signature not checked yet.
#[derive(Debug, Clone)]
pub struct SignedOperation {
    pub time: f64,
    pub method: String,
    pub domain: String,
    pub path: String,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Authenticates an HTTP request: the wallet address that authorized it.
///
/// `domains` are the names the node answers under for this request (see
/// [`request_domains`]); `now` is seconds since the epoch.
pub fn authenticate(
    headers: &HeaderMap,
    method: &str,
    path: &str,
    domains: &[String],
    now: f64,
) -> Result<String, AuthError> {
    let pubkey = headers
        .get(PUBKEY_HEADER)
        .ok_or_else(|| AuthError::bad_request("Missing X-SignedPubKey header"))?;
    let pubkey = pubkey
        .to_str()
        .map_err(|_| AuthError::bad_request("Invalid X-SignedPubKey format: not text"))?;
    let pubkey = read_signed_pubkey(pubkey, now)?;
    let operation = headers
        .get(OPERATION_HEADER)
        .ok_or_else(|| AuthError::bad_request("Missing X-SignedOperation header"))?;
    let operation = operation
        .to_str()
        .map_err(|_| AuthError::bad_request("Invalid X-SignedOperation format: not text"))?;
    let operation = parse_signed_operation(operation, now)?;
    check_domain(&operation, domains)?;
    if operation.path != path {
        return Err(AuthError::unauthorized(format!(
            "Invalid path. Signed: '{}' != requested path: '{path}'",
            operation.path
        )));
    }
    if operation.method != method {
        return Err(AuthError::unauthorized(format!(
            "Invalid method. Signed: '{}' != request: '{method}'",
            operation.method
        )));
    }
    pubkey.verify_wallet()?;
    verify_operation(&operation, &pubkey)
}

/// Authenticates the first message of a log stream, `{"auth": {...}}`'s value: both objects
/// in one packet (browsers cannot set headers on a WebSocket). As in the reference, the
/// operation's path and method are not compared.
pub fn authenticate_packet(
    auth: &Value,
    domains: &[String],
    now: f64,
) -> Result<String, AuthError> {
    const FORMAT: &str = "Invalid format for auth packet, see /doc/operator_auth.md";
    let Value::Object(auth) = auth else {
        return Err(AuthError::bad_request(FORMAT));
    };
    let field = |name: &str| match auth.get(name) {
        Some(Value::Object(object)) => Ok(Value::Object(object.clone())),
        // A client that sent the header's text rather than its object.
        Some(Value::String(text)) if text.len() <= MAX_HEADER_BYTES => {
            serde_json::from_str(text).map_err(|_| AuthError::bad_request(FORMAT))
        }
        _ => Err(AuthError::bad_request(format!(
            "{FORMAT}: no {name} object"
        ))),
    };
    let pubkey = signed_pubkey_from_value(&field("X-SignedPubKey")?, now)?;
    let operation = signed_operation_from_value(&field("X-SignedOperation")?, now)?;
    check_domain(&operation, domains)?;
    pubkey.verify_wallet()?;
    verify_operation(&operation, &pubkey)
}

/// Whether the authenticated `address` may act for `owner`: ETH addresses compare
/// case-insensitively (as the reference), anything else exactly.
pub fn is_owner(address: &str, owner: &str) -> bool {
    if is_eth_address(address) && is_eth_address(owner) {
        address.eq_ignore_ascii_case(owner)
    } else {
        address == owner
    }
}

fn is_eth_address(text: &str) -> bool {
    text.len() == 42
        && (text.starts_with("0x") || text.starts_with("0X"))
        && text[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The names a request reached the node under, lowercase without port: its `Host` (or the
/// URI's authority) and, behind a reverse proxy that rewrites `Host`, `X-Forwarded-Host`.
///
/// The reference compares the signed domain with its configured `DOMAIN_NAME`. raleph has no
/// such setting: the name the client used is what it signs (the SDK signs the hostname of the
/// URL it calls), so the node takes it from the request.
pub fn request_domains(headers: &HeaderMap, uri_host: Option<&str>) -> Vec<String> {
    let mut domains = Vec::new();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(uri_host);
    if let Some(host) = host {
        domains.push(hostname(host));
    }
    if let Some(forwarded) = headers
        .get("x-forwarded-host")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').next())
    {
        domains.push(hostname(forwarded.trim()));
    }
    domains.retain(|d| !d.is_empty());
    domains
}

/// `example.org:443` → `example.org`; `[::1]:8080` → `::1` (what Python's `urlparse` gives).
fn hostname(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn check_domain(operation: &SignedOperation, domains: &[String]) -> Result<(), AuthError> {
    let signed = operation.domain.trim_end_matches('.').to_ascii_lowercase();
    if domains.contains(&signed) {
        return Ok(());
    }
    Err(AuthError::unauthorized(format!(
        "Invalid domain: Signed: '{}' != Request: '{}'",
        operation.domain,
        domains.first().map(String::as_str).unwrap_or_default()
    )))
}

/// Parses and checks an `X-SignedPubKey` header: format, expiry, then the wallet signature.
pub fn parse_signed_pubkey(header: &str, now: f64) -> Result<SignedPubKey, AuthError> {
    let pubkey = read_signed_pubkey(header, now)?;
    pubkey.verify_wallet()?;
    Ok(pubkey)
}

/// Parses an `X-SignedPubKey` header and checks its expiry, not its signature.
fn read_signed_pubkey(header: &str, now: f64) -> Result<SignedPubKey, AuthError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(AuthError::bad_request(format!(
            "Invalid X-SignedPubKey format: longer than {MAX_HEADER_BYTES} bytes"
        )));
    }
    let value: Value = serde_json::from_str(header)
        .map_err(|_| AuthError::bad_request("Invalid X-SignedPubKey format: not JSON"))?;
    signed_pubkey_from_value(&value, now)
}

fn signed_pubkey_from_value(value: &Value, now: f64) -> Result<SignedPubKey, AuthError> {
    let invalid = |why: &str| AuthError::bad_request(format!("Invalid X-SignedPubKey data: {why}"));
    let Value::Object(header) = value else {
        return Err(invalid("not an object"));
    };
    let signature = hex_field(header, "signature", true).map_err(|e| invalid(&e))?;
    let payload = hex_field(header, "payload", false).map_err(|e| invalid(&e))?;
    let Ok(Value::Object(content)) = serde_json::from_slice::<Value>(&payload) else {
        return Err(invalid("the payload is not a JSON object"));
    };
    let Some(Value::Object(jwk)) = content.get("pubkey") else {
        return Err(invalid("no pubkey object"));
    };
    let Some(Value::String(address)) = content.get("address") else {
        return Err(invalid("no address"));
    };
    let Some(Value::String(expires)) = content.get("expires") else {
        return Err(invalid("no expires date"));
    };
    let chain = match content.get("chain") {
        None | Some(Value::Null) => WalletChain::Eth,
        Some(Value::String(chain)) if chain == "ETH" => WalletChain::Eth,
        Some(Value::String(chain)) if chain == "SOL" => WalletChain::Sol,
        Some(_) => return Err(invalid("unsupported chain (ETH or SOL)")),
    };
    let expires = time::parse_iso(expires).map_err(|e| invalid(&format!("expires: {e}")))?;
    if expires <= now {
        return Err(AuthError::unauthorized("Token expired"));
    }
    Ok(SignedPubKey {
        address: address.clone(),
        chain,
        expires,
        jwk: jwk.clone(),
        payload,
        signature,
    })
}

impl SignedPubKey {
    /// Checks the wallet's signature of the key (the costly step: left for last).
    fn verify_wallet(&self) -> Result<(), AuthError> {
        let valid = match self.chain {
            WalletChain::Eth => wallet::eth_recover(&self.payload, &self.signature)
                .is_some_and(|recovered| recovered.eq_ignore_ascii_case(&self.address)),
            WalletChain::Sol => wallet::sol_verify(
                &self.address,
                hex::encode(&self.payload).as_bytes(),
                &self.signature,
            ),
        };
        if valid {
            Ok(())
        } else {
            Err(AuthError::unauthorized("Invalid signature"))
        }
    }
}

/// Parses an `X-SignedOperation` header and checks its time window.
pub fn parse_signed_operation(header: &str, now: f64) -> Result<SignedOperation, AuthError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(AuthError::bad_request(format!(
            "Invalid X-SignedOperation fields: longer than {MAX_HEADER_BYTES} bytes"
        )));
    }
    let value: Value = serde_json::from_str(header)
        .map_err(|_| AuthError::bad_request("Invalid X-SignedOperation fields: not JSON"))?;
    signed_operation_from_value(&value, now)
}

fn signed_operation_from_value(value: &Value, now: f64) -> Result<SignedOperation, AuthError> {
    let invalid =
        |why: &str| AuthError::bad_request(format!("Invalid X-SignedOperation fields: {why}"));
    let Value::Object(header) = value else {
        return Err(invalid("not an object"));
    };
    let signature = hex_field(header, "signature", true).map_err(|e| invalid(&e))?;
    let payload = hex_field(header, "payload", false).map_err(|e| invalid(&e))?;
    let Ok(Value::Object(content)) = serde_json::from_slice::<Value>(&payload) else {
        return Err(invalid("the payload is not a JSON object"));
    };
    let text = |name: &str| match content.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(invalid(&format!("no {name}"))),
    };
    let method = text("method")?;
    if !matches!(method.as_str(), "GET" | "POST" | "DELETE") {
        return Err(invalid("method must be GET, POST or DELETE"));
    }
    let domain = text("domain")?;
    let path = text("path")?;
    let time = match content.get("time") {
        Some(Value::String(s)) => time::parse_iso(s)
            .or_else(|e| s.trim().parse::<f64>().map(unix_time).map_err(|_| e))
            .map_err(|e| invalid(&format!("time: {e}")))?,
        Some(Value::Number(n)) => n.as_f64().map(unix_time).ok_or_else(|| invalid("time"))?,
        _ => return Err(invalid("no time")),
    };
    if !time.is_finite() || time < now - MAX_CLOCK_SKEW_SECS {
        return Err(invalid("Time is too far in the past"));
    }
    if time > now + MAX_CLOCK_SKEW_SECS {
        return Err(invalid("Time is too far in the future"));
    }
    Ok(SignedOperation {
        time,
        method,
        domain,
        path,
        payload,
        signature,
    })
}

/// A number as a date-time, as pydantic reads it: seconds, or milliseconds past 2e10.
fn unix_time(number: f64) -> f64 {
    if number.abs() > 2e10 {
        number / 1000.0
    } else {
        number
    }
}

/// Checks the operation's ES256 signature with the ephemeral key: the wallet address it acts for.
fn verify_operation(
    operation: &SignedOperation,
    pubkey: &SignedPubKey,
) -> Result<String, AuthError> {
    let key = ephemeral_key(&pubkey.jwk).map_err(|why| {
        AuthError::bad_request(format!("Invalid X-SignedPubKey data: pubkey: {why}"))
    })?;
    let valid = Signature::from_slice(&operation.signature)
        .is_ok_and(|signature| key.verify(&operation.payload, &signature).is_ok());
    if valid {
        Ok(pubkey.address.clone())
    } else {
        Err(AuthError::unauthorized("Signature could not verified"))
    }
}

/// A P-256 public key from its JWK (`kty` EC, `crv` P-256, `x` and `y` base64url).
fn ephemeral_key(jwk: &Map<String, Value>) -> Result<VerifyingKey, &'static str> {
    if jwk.get("kty").and_then(Value::as_str) != Some("EC") {
        return Err("kty must be EC");
    }
    if jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
        return Err("crv must be P-256");
    }
    let coordinate = |name: &str| -> Result<[u8; 32], &'static str> {
        let text = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or("x and y are required")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| "x and y must be base64url")?;
        if bytes.len() > 32 {
            return Err("x and y must be 32 bytes");
        }
        let mut out = [0u8; 32];
        out[32 - bytes.len()..].copy_from_slice(&bytes);
        Ok(out)
    };
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..33].copy_from_slice(&coordinate("x")?);
    sec1[33..].copy_from_slice(&coordinate("y")?);
    VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| "not a point of P-256")
}

/// A hex string member (`0x` allowed where `prefixed`), decoded.
fn hex_field(object: &Map<String, Value>, name: &str, prefixed: bool) -> Result<Vec<u8>, String> {
    let Some(Value::String(text)) = object.get(name) else {
        return Err(format!("no {name}"));
    };
    let text = if prefixed {
        text.strip_prefix("0x").unwrap_or(text)
    } else {
        text
    };
    hex::decode(text).map_err(|_| format!("{name} is not hex"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use proptest::prelude::*;

    /// aleph-vm `doc/operator_auth.md`'s example: an ETH-signed key and a GET of `/` on
    /// `localhost`, made on 2010-12-25 (the key expires a day later).
    const DOC_PUBKEY_PAYLOAD: &str = concat!(
        "7b227075626b6579223a207b22637276223a2022502d323536222c20226b7479223a20224543222c20",
        "2278223a20223962446f34754949686b735a5272677a31477972325050656d4334364e735f47305771",
        "44364d4d6a774673222c202279223a20226f48343342786c7854334f3065733336685967713143372d",
        "61325a535a71456d5f6b56356e636c79667a59227d2c2022616c67223a20224543445341222c202264",
        "6f6d61696e223a20226c6f63616c686f7374222c202261646472657373223a2022307862413236623135",
        "333539314434363230666432413734304130463165463730644164363532336230222c202265787069",
        "726573223a2022323031302d31322d32365431373a30353a35355a227d"
    );
    const DOC_PUBKEY_SIGNATURE: &str = concat!(
        "0xea99ef5f1a10f2d103f94dce4f8650730315246e6d15cf9e5862c11adfd6482703cd1ec684a4f3dffb",
        "36ae5c4a57b08a47108fe55e3b2454e45f6e63342e0f471b"
    );
    const DOC_OPERATION_PAYLOAD: &str = concat!(
        "7b2274696d65223a2022323031302d31322d32355431373a30353a35355a222c20226d6574686f642",
        "23a2022474554222c202270617468223a20222f222c2022646f6d61696e223a20226c6f63616c686f",
        "7374227d"
    );
    const DOC_OPERATION_SIGNATURE: &str = concat!(
        "6f737654cd00e4d4155d387509978e7a9a4d27f5b59c9492ac1dec7b09f9aecc58c9365526bbddd621",
        "1b65f40f4956c50ab26f395f7170ce1698c11e28e25d3a"
    );

    fn header_text(payload: &str, signature: &str) -> String {
        serde_json::json!({"payload": payload, "signature": signature}).to_string()
    }

    fn doc_pubkey() -> String {
        header_text(DOC_PUBKEY_PAYLOAD, DOC_PUBKEY_SIGNATURE)
    }

    fn doc_operation() -> String {
        header_text(DOC_OPERATION_PAYLOAD, DOC_OPERATION_SIGNATURE)
    }

    const DOC_TIME: f64 = 1_293_296_755.0;
    const DOC_ADDRESS: &str = "0xbA26b153591D4620fd2A740A0F1eF70dAd6523b0";

    fn headers(pubkey: &str, operation: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(PUBKEY_HEADER, pubkey.parse().unwrap());
        headers.insert(OPERATION_HEADER, operation.parse().unwrap());
        headers
    }

    fn localhost() -> Vec<String> {
        vec!["localhost".to_owned()]
    }

    #[test]
    fn the_reference_example_authenticates() {
        let headers = headers(&doc_pubkey(), &doc_operation());
        assert_eq!(
            authenticate(&headers, "GET", "/", &localhost(), DOC_TIME + 30.0),
            Ok(DOC_ADDRESS.to_owned())
        );
        let packet = serde_json::json!({
            "X-SignedPubKey": serde_json::from_str::<Value>(&doc_pubkey()).unwrap(),
            "X-SignedOperation": serde_json::from_str::<Value>(&doc_operation()).unwrap(),
        });
        assert_eq!(
            authenticate_packet(&packet, &localhost(), DOC_TIME),
            Ok(DOC_ADDRESS.to_owned())
        );
    }

    #[test]
    fn each_check_answers_as_the_reference() {
        let good = headers(&doc_pubkey(), &doc_operation());
        let status = |headers: &HeaderMap, method: &str, path: &str, domain: &str, now: f64| {
            authenticate(headers, method, path, &[domain.to_owned()], now)
                .map_err(|e| (e.status.as_u16(), e.message))
        };
        let err = |r: Result<String, (u16, String)>| r.unwrap_err();
        assert_eq!(
            err(status(&good, "POST", "/", "localhost", DOC_TIME)).0,
            401
        );
        assert!(
            err(status(&good, "POST", "/", "localhost", DOC_TIME))
                .1
                .starts_with("Invalid method")
        );
        assert!(
            err(status(&good, "GET", "/x", "localhost", DOC_TIME))
                .1
                .starts_with("Invalid path")
        );
        assert!(
            err(status(&good, "GET", "/", "example.org", DOC_TIME))
                .1
                .starts_with("Invalid domain")
        );
        // The operation is 121 s old: 400, as pydantic's validation error in the reference.
        let old = err(status(&good, "GET", "/", "localhost", DOC_TIME + 121.0));
        assert_eq!(old.0, 400);
        assert!(old.1.contains("too far in the past"), "{}", old.1);
        let future = err(status(&good, "GET", "/", "localhost", DOC_TIME - 121.0));
        assert!(future.1.contains("too far in the future"), "{}", future.1);
        // The key expired (a day after the example).
        let mut only_key = HeaderMap::new();
        only_key.insert(PUBKEY_HEADER, doc_pubkey().parse().unwrap());
        assert_eq!(
            err(status(
                &only_key,
                "GET",
                "/",
                "localhost",
                DOC_TIME + 86_401.0
            )),
            (401, "Token expired".to_owned())
        );
        assert_eq!(
            err(status(&only_key, "GET", "/", "localhost", DOC_TIME)),
            (400, "Missing X-SignedOperation header".to_owned())
        );
        assert_eq!(
            err(status(&HeaderMap::new(), "GET", "/", "localhost", DOC_TIME)),
            (400, "Missing X-SignedPubKey header".to_owned())
        );
        // Another address in the payload than the one that signed it.
        let forged = doc_pubkey().replace("3532336230", "3532336231");
        assert_eq!(
            err(status(
                &headers(&forged, &doc_operation()),
                "GET",
                "/",
                "localhost",
                DOC_TIME
            )),
            (401, "Invalid signature".to_owned())
        );
        // A wrong operation signature.
        let tampered = doc_operation().replace("6f737654", "6f737655");
        assert_eq!(
            err(status(
                &headers(&doc_pubkey(), &tampered),
                "GET",
                "/",
                "localhost",
                DOC_TIME
            )),
            (401, "Signature could not verified".to_owned())
        );
    }

    #[test]
    fn domains_come_from_the_request() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "Node.Example.org:4024".parse().unwrap());
        headers.insert(
            "x-forwarded-host",
            "crn.example.org, other".parse().unwrap(),
        );
        assert_eq!(
            request_domains(&headers, None),
            ["node.example.org", "crn.example.org"]
        );
        assert_eq!(
            request_domains(&HeaderMap::new(), Some("[::1]:80")),
            ["::1"]
        );
        assert!(is_owner(DOC_ADDRESS, &DOC_ADDRESS.to_lowercase()));
        assert!(!is_owner("SoLaNa", "solana"));
    }

    /// Signs `content` with a P-256 key as the SDK does (`sign_vm_control_payload`).
    fn signed(key: &SigningKey, content: &Value) -> String {
        let payload = content.to_string();
        let signature: Signature = key.sign(payload.as_bytes());
        serde_json::json!({
            "payload": hex::encode(payload),
            "signature": hex::encode(signature.to_bytes()),
        })
        .to_string()
    }

    #[test]
    fn a_key_of_another_curve_or_a_missing_coordinate_is_a_bad_request() {
        let key = SigningKey::from_slice(&[7; 32]).unwrap();
        let operation = serde_json::json!({
            "time": DOC_TIME, "method": "GET", "path": "/", "domain": "localhost"
        });
        let operation = parse_signed_operation(&signed(&key, &operation), DOC_TIME).unwrap();
        let mut pubkey = parse_signed_pubkey(&doc_pubkey(), DOC_TIME).unwrap();
        // The doc's key did not sign this operation.
        assert_eq!(
            verify_operation(&operation, &pubkey).unwrap_err().status,
            401
        );
        pubkey.jwk.insert("crv".into(), "P-384".into());
        assert_eq!(
            verify_operation(&operation, &pubkey).unwrap_err().status,
            400
        );
        pubkey.jwk.insert("crv".into(), "P-256".into());
        pubkey.jwk.remove("y");
        assert_eq!(
            verify_operation(&operation, &pubkey).unwrap_err().status,
            400
        );
    }

    proptest! {
        /// Arbitrary header text never panics, and is refused with a 400 or a 401.
        #[test]
        fn headers_never_panic(pubkey in ".{0,300}", operation in ".{0,300}") {
            for result in [
                parse_signed_pubkey(&pubkey, DOC_TIME).map(|_| ()),
                parse_signed_operation(&operation, DOC_TIME).map(|_| ()),
            ] {
                if let Err(e) = result {
                    prop_assert!(e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::UNAUTHORIZED);
                }
            }
            let packet = serde_json::json!({"X-SignedPubKey": pubkey, "X-SignedOperation": operation});
            prop_assert!(authenticate_packet(&packet, &localhost(), DOC_TIME).is_err());
        }

        /// Well-formed JSON with arbitrary (hex-encoded) payloads: the same.
        #[test]
        fn payloads_never_panic(
            payload in prop::collection::vec(any::<u8>(), 0..200),
            json_payload in r#"\{("(time|method|path|domain|pubkey|address|expires|chain|x|y|kty|crv)": ("[^"]{0,30}"|-?[0-9]{1,25}(\.[0-9]+)?|null|\{\}|\[\]),? ?){0,8}\}"#,
            signature in "(0x)?[0-9a-f]{0,140}",
        ) {
            for payload in [hex::encode(&payload), hex::encode(json_payload.as_bytes())] {
                let header = serde_json::json!({"payload": payload, "signature": signature}).to_string();
                for result in [
                    parse_signed_pubkey(&header, DOC_TIME).map(|_| ()),
                    parse_signed_operation(&header, DOC_TIME).map(|_| ()),
                ] {
                    if let Err(e) = result {
                        prop_assert!(e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::UNAUTHORIZED);
                    }
                }
            }
        }

        #[test]
        fn host_headers_never_panic(host in ".{0,60}") {
            let mut headers = HeaderMap::new();
            if let Ok(value) = host.parse() {
                headers.insert(header::HOST, value);
            }
            let _ = request_domains(&headers, Some(&host));
            let _ = hostname(&host);
        }
    }
}
