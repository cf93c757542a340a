//! Settings written as text (an environment variable, `--set`) read as TOML values, and the
//! two spellings of the p2p listen address.

use std::net::SocketAddr;

use toml::Value;

/// Reads `raw` as the value of a field whose default is `default` (`None`: an optional field,
/// or no such field). A string field takes the text as it is, or a quoted TOML string; a
/// boolean one also takes `1`/`0`, `yes`/`no`, `on`/`off`; others take a TOML value.
pub fn parse_value(default: Option<&Value>, raw: &str) -> Result<Value, String> {
    match default {
        Some(Value::String(_)) => Ok(match raw.parse::<Value>() {
            Ok(quoted @ Value::String(_)) => quoted,
            _ => Value::String(raw.to_owned()),
        }),
        Some(Value::Boolean(_)) => boolean(raw)
            .map(Value::Boolean)
            .ok_or_else(|| format!("{raw:?} is not a boolean (true or false)")),
        // Unset by default: most are paths or URLs; a TOML value when the text is one.
        None => Ok(raw
            .parse::<Value>()
            .unwrap_or_else(|_| Value::String(raw.to_owned()))),
        Some(_) => raw
            .trim()
            .parse::<Value>()
            .map_err(|e| format!("{raw:?} is not a TOML value: {}", e.message())),
    }
}

/// A boolean as flags and environment variables spell it (an empty value is false, as for a
/// set-but-empty flag variable).
fn boolean(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// `/ip4/<ip>/tcp/<port>` or `/ip6/<ip>/tcp/<port>` as a socket address (`[p2p] listen` as
/// `p2p_addr`); any other multiaddr cannot be listened on by the node.
pub fn multiaddr_to_socket(multiaddr: &str) -> Result<SocketAddr, String> {
    let refuse = || {
        format!(
            "{multiaddr:?} is not /ip4/<ip>/tcp/<port> or /ip6/<ip>/tcp/<port>, the addresses \
             the node listens on"
        )
    };
    let parts: Vec<&str> = multiaddr.split('/').collect();
    let ["", family @ ("ip4" | "ip6"), ip, "tcp", port] = parts.as_slice() else {
        return Err(refuse());
    };
    let ip: std::net::IpAddr = ip.parse().map_err(|_| refuse())?;
    if ip.is_ipv4() != (*family == "ip4") {
        return Err(refuse());
    }
    let port: u16 = port.parse().map_err(|_| refuse())?;
    Ok(SocketAddr::new(ip, port))
}

/// The multiaddr of a TCP socket address.
pub fn socket_to_multiaddr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("/ip4/{}/tcp/{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("/ip6/{}/tcp/{}", v6.ip(), v6.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_field_takes_the_text_as_it_is() {
        let string = Value::String(String::new());
        for (raw, read) in [
            ("127.0.0.1:4024", "127.0.0.1:4024"),
            ("123", "123"),
            ("\"quoted\"", "quoted"),
            ("", ""),
        ] {
            assert_eq!(
                parse_value(Some(&string), raw),
                Ok(Value::String(read.into()))
            );
        }
    }

    #[test]
    fn other_fields_take_a_toml_value() {
        let number = Value::Integer(0);
        assert_eq!(parse_value(Some(&number), "42"), Ok(Value::Integer(42)));
        assert_eq!(parse_value(Some(&number), " 1.5 "), Ok(Value::Float(1.5)));
        let list = parse_value(Some(&Value::Array(vec![])), r#"["a", "b"]"#).expect("list");
        assert_eq!(list.as_array().map(Vec::len), Some(2));
        let error = parse_value(Some(&number), "many").expect_err("not a value");
        assert!(error.contains("\"many\""), "{error}");
    }

    #[test]
    fn booleans_take_the_usual_spellings() {
        let flag = Value::Boolean(false);
        for (raw, read) in [("true", true), ("1", true), ("On", true), ("0", false)] {
            assert_eq!(parse_value(Some(&flag), raw), Ok(Value::Boolean(read)));
        }
        assert!(parse_value(Some(&flag), "maybe").is_err());
    }

    #[test]
    fn an_unset_field_takes_a_value_or_the_text() {
        assert_eq!(
            parse_value(None, "/keys/node"),
            Ok(Value::String("/keys/node".into()))
        );
        assert_eq!(parse_value(None, "7"), Ok(Value::Integer(7)));
    }

    #[test]
    fn listen_multiaddrs_and_socket_addresses_convert_both_ways() {
        for (multiaddr, socket) in [
            ("/ip4/127.0.0.1/tcp/4025", "127.0.0.1:4025"),
            ("/ip6/::1/tcp/0", "[::1]:0"),
        ] {
            let addr: SocketAddr = socket.parse().expect("socket");
            assert_eq!(multiaddr_to_socket(multiaddr), Ok(addr));
            assert_eq!(socket_to_multiaddr(addr), multiaddr);
        }
        for refused in [
            "/ip4/127.0.0.1/udp/4025",
            "/dns4/node.example/tcp/4025",
            "/ip6/127.0.0.1/tcp/1",
            "/ip4/127.0.0.1/tcp/4025/p2p/x",
            "127.0.0.1:4025",
        ] {
            assert!(multiaddr_to_socket(refused).is_err(), "{refused}");
        }
    }
}
