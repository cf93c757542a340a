//! `ALIVE` announcements (p2p.md §5.2, §6.2).
//!
//! Reference nodes publish, every 120 s, one payload per address they can be reached at, in
//! Python `json.dumps` formatting (", " and ": " separators, `ensure_ascii`, fixed key order).
//! Because the message id is a hash of the bytes (§4.5), the exact formatting matters: the same
//! announcement from two formatters would be two different messages.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use raleph_message::push_python_json_string;
use serde::Deserialize;

/// The `peer_type` of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    P2p,
    Http,
    Ipfs,
}

impl PeerType {
    fn as_str(self) -> &'static str {
        match self {
            PeerType::P2p => "P2P",
            PeerType::Http => "HTTP",
            PeerType::Ipfs => "IPFS",
        }
    }
}

/// The payload bytes announcing `address`, byte for byte what pyaleph's `json.dumps` writes.
pub fn alive_payload(address: &str, peer_type: PeerType, version: &str) -> Vec<u8> {
    let mut out = String::with_capacity(96 + address.len() + version.len());
    out.push_str("{\"address\": ");
    push_python_json_string(&mut out, address);
    out.push_str(", \"interests\": null, \"peer_type\": ");
    push_python_json_string(&mut out, peer_type.as_str());
    out.push_str(", \"version\": ");
    push_python_json_string(&mut out, version);
    out.push('}');
    out.into_bytes()
}

/// What a received announcement says, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A P2P address whose `/p2p/` peer id is the message's author.
    P2p(Multiaddr),
    /// An HTTP API base URL (`http://host:port`, no trailing slash), announced by its author:
    /// where reference nodes serve `GET /api/v0/storage/{hash}` to their peers.
    Http(String),
    /// Anything else well-formed (HTTP, IPFS, or a P2P address of another peer): counted,
    /// not used here.
    Other,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AliveError {
    #[error("not a JSON announcement")]
    NotJson,
    #[error("unknown peer_type {0:?}")]
    UnknownPeerType(String),
    #[error("P2P address {0:?} is not a multiaddr ending in /p2p/<peer id>")]
    BadAddress(String),
}

#[derive(Deserialize)]
struct Payload {
    address: String,
    peer_type: String,
}

/// Parses an announcement authored by `author`.
///
/// Plain JSON is tried first; percent-decoding (which the reference always applies) is only a
/// fallback, so a payload that legitimately contains `%xx` is not corrupted.
///
/// Only a P2P address naming the author itself is accepted. The reference also requires the
/// author to be a bootstrap peer or registered in the `corechannel` aggregate; that list is not
/// available to this crate, so "a peer may only announce its own address" is the allowlist here.
pub fn parse_announcement(data: &[u8], author: &PeerId) -> Result<Announcement, AliveError> {
    let payload: Payload = match serde_json::from_slice(data) {
        Ok(p) => p,
        Err(_) => {
            let decoded = percent_decode(data);
            serde_json::from_slice(&decoded).map_err(|_| AliveError::NotJson)?
        }
    };
    match payload.peer_type.as_str() {
        "P2P" => {}
        "HTTP" => {
            let url = payload.address.trim_end_matches('/');
            let usable = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() <= 256
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            return if usable {
                Ok(Announcement::Http(url.to_owned()))
            } else {
                Err(AliveError::BadAddress(payload.address.clone()))
            };
        }
        "IPFS" => return Ok(Announcement::Other),
        other => return Err(AliveError::UnknownPeerType(other.to_string())),
    }
    let bad = || AliveError::BadAddress(payload.address.clone());
    let addr: Multiaddr = payload.address.parse().map_err(|_| bad())?;
    match addr.iter().last() {
        Some(Protocol::P2p(id)) if id == *author => Ok(Announcement::P2p(addr)),
        Some(Protocol::P2p(_)) => Ok(Announcement::Other),
        _ => Err(bad()),
    }
}

/// `%XX` sequences decoded to bytes, like Python's `urllib.parse.unquote` (no `+` handling).
fn percent_decode(data: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%'
            && let (Some(h), Some(l)) = (
                data.get(i + 1).copied().and_then(hex),
                data.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message_id::message_id;

    const REFERENCE_PEER: &str = "QmZkurbY2G2hWay59yiTgQNaQxHSNzKZFt2jbnwJhQcKgV";

    #[test]
    fn payload_matches_the_reference_vector() {
        let address = format!("/ip4/192.0.2.10/tcp/4025/p2p/{REFERENCE_PEER}");
        let payload = alive_payload(&address, PeerType::P2p, "v0.6.0");
        let expected = format!(
            r#"{{"address": "{address}", "interests": null, "peer_type": "P2P", "version": "v0.6.0"}}"#
        );
        assert_eq!(String::from_utf8(payload.clone()).unwrap(), expected);
        // The fourth vector of p2p.md §4.5.
        assert_eq!(message_id(&payload), "18315834386537896735");
    }

    #[test]
    fn http_payload_and_ascii_escaping() {
        let payload = alive_payload("http://192.0.2.10:4024", PeerType::Http, "é\"\\\n\u{7f}😀");
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            r#"{"address": "http://192.0.2.10:4024", "interests": null, "peer_type": "HTTP", "version": "\u00e9\"\\\n\u007f\ud83d\ude00"}"#
        );
    }

    #[test]
    fn parses_own_p2p_address_only() {
        let author: PeerId = REFERENCE_PEER.parse().unwrap();
        let address = format!("/ip4/192.0.2.10/tcp/4025/p2p/{REFERENCE_PEER}");
        let payload = alive_payload(&address, PeerType::P2p, "v0.6.0");
        assert_eq!(
            parse_announcement(&payload, &author),
            Ok(Announcement::P2p(address.parse().unwrap()))
        );
        // Someone else announcing that address is not trusted with it.
        let other = PeerId::random();
        assert_eq!(
            parse_announcement(&payload, &other),
            Ok(Announcement::Other)
        );
        let http = alive_payload("http://192.0.2.10:4024", PeerType::Http, "1");
        assert_eq!(
            parse_announcement(&http, &author),
            Ok(Announcement::Http("http://192.0.2.10:4024".into()))
        );
        let junk = alive_payload("ftp://x", PeerType::Http, "1");
        assert!(parse_announcement(&junk, &author).is_err());
    }

    #[test]
    fn percent_encoded_fallback_and_junk() {
        let author: PeerId = REFERENCE_PEER.parse().unwrap();
        let encoded = format!(
            "%7B%22address%22%3A%20%22/ip4/192.0.2.10/tcp/4025/p2p/{REFERENCE_PEER}%22%2C%20%22peer_type%22%3A%20%22P2P%22%7D"
        );
        assert!(matches!(
            parse_announcement(encoded.as_bytes(), &author),
            Ok(Announcement::P2p(_))
        ));
        assert_eq!(
            parse_announcement(b"\xff\x00%zz%", &author),
            Err(AliveError::NotJson)
        );
        assert!(matches!(
            parse_announcement(br#"{"address": "x", "peer_type": "P2P"}"#, &author),
            Err(AliveError::BadAddress(_))
        ));
        assert!(matches!(
            parse_announcement(br#"{"address": "x", "peer_type": "FOO"}"#, &author),
            Err(AliveError::UnknownPeerType(_))
        ));
    }
}
