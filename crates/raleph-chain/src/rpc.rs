//! The provider the reader and the writer share, and what an RPC error means to them.

use alloy_provider::RootProvider;
use alloy_transport::TransportError;

use crate::config::EvmChainConfig;
use crate::transport::{HttpTransport, RESPONSE_TOO_LARGE};

/// A provider for one chain's RPC endpoint, with no fillers: the writer sets every field of
/// its transactions itself (nonce, fees, gas), so nothing is guessed behind its back.
pub type Provider = RootProvider;

/// The provider for `config`'s endpoint (its timeout and response bound).
pub fn provider(config: &EvmChainConfig) -> Result<Provider, RpcSetupError> {
    let url =
        reqwest::Url::parse(&config.rpc_url).map_err(|e| RpcSetupError(format!("rpc_url: {e}")))?;
    let transport = HttpTransport::new(url, config.rpc_timeout(), config.max_response_bytes)
        .map_err(|e| RpcSetupError(format!("HTTP client: {e}")))?;
    Ok(RootProvider::new(transport.into_client()))
}

/// The HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("chain RPC setup: {0}")]
pub struct RpcSetupError(pub String);

/// The JSON-RPC error code Infura and others answer `eth_getLogs` with when a request would
/// return too many logs (the reference halves its window on it).
pub const TOO_MANY_RESULTS_CODE: i64 = -32005;

/// Whether `err` says the request covered too much (too many logs, too wide a block range,
/// too large a response), so a smaller window may succeed. Providers word this differently;
/// the code -32005 is the reference's test, the phrases cover the common others.
pub fn is_too_many_results(err: &TransportError) -> bool {
    if let Some(payload) = err.as_error_resp() {
        if payload.code == TOO_MANY_RESULTS_CODE {
            return true;
        }
        let message = payload.message.to_ascii_lowercase();
        const PHRASES: [&str; 7] = [
            "too many",
            "more than",
            "limit exceeded",
            "response size",
            "block range",
            "range too large",
            "range is too large",
        ];
        return PHRASES.iter().any(|phrase| message.contains(phrase));
    }
    if let Some(http) = err.as_transport_err().and_then(|kind| kind.as_http_error()) {
        return http.status == 413;
    }
    err.to_string().contains(RESPONSE_TOO_LARGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_json_rpc::{ErrorPayload, RpcError};
    use alloy_transport::TransportErrorKind;

    fn rpc_error(code: i64, message: &str) -> TransportError {
        RpcError::ErrorResp(ErrorPayload {
            code,
            message: message.to_owned().into(),
            data: None,
        })
    }

    #[test]
    fn classifies_window_errors() {
        assert!(is_too_many_results(&rpc_error(
            -32005,
            "query returned more than 10000 results"
        )));
        assert!(is_too_many_results(&rpc_error(
            -32602,
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"
        )));
        assert!(is_too_many_results(&rpc_error(
            -32000,
            "block range is too large"
        )));
        assert!(is_too_many_results(&TransportErrorKind::custom_str(
            RESPONSE_TOO_LARGE
        )));
        assert!(is_too_many_results(&TransportErrorKind::http_error(
            413,
            String::new()
        )));
        assert!(!is_too_many_results(&rpc_error(-32000, "header not found")));
        assert!(!is_too_many_results(&TransportErrorKind::http_error(
            502,
            String::new()
        )));
        assert!(!is_too_many_results(&TransportErrorKind::backend_gone()));
    }
}
