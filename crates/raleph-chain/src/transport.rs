//! The JSON-RPC transport under alloy's provider: HTTP POST on the workspace's reqwest, with a
//! timeout per request and a bound on the response body (a hostile or broken endpoint cannot
//! make the node read an unbounded answer).
//!
//! Ours rather than alloy's reqwest transport because alloy 2.5 builds on reqwest 0.13 with its
//! own TLS stack, which would put a second HTTP client in the node.

use std::task;
use std::time::Duration;

use alloy_json_rpc::{RequestPacket, ResponsePacket};
use alloy_rpc_client::RpcClient;
use alloy_transport::{TransportError, TransportErrorKind, TransportFut};
use tower::Service;

/// The message of the error returned for a response over the size bound; the reader treats
/// it like an RPC's "too many results" and halves its window.
pub const RESPONSE_TOO_LARGE: &str = "JSON-RPC response larger than max_response_bytes";

/// An HTTP JSON-RPC transport (see the module doc).
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    url: reqwest::Url,
    max_response_bytes: usize,
}

impl HttpTransport {
    pub fn new(
        url: reqwest::Url,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(HttpTransport {
            client,
            url,
            max_response_bytes,
        })
    }

    /// An alloy RPC client on this transport.
    pub fn into_client(self) -> RpcClient {
        let local = matches!(
            self.url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]")
        );
        RpcClient::new(self, local)
    }

    async fn send(self, request: RequestPacket) -> Result<ResponsePacket, TransportError> {
        let mut response = self
            .client
            .post(self.url)
            .json(&request)
            .send()
            .await
            .map_err(TransportErrorKind::custom)?;
        let status = response.status();
        if let Some(length) = response.content_length()
            && length > self.max_response_bytes as u64
        {
            return Err(TransportErrorKind::custom_str(RESPONSE_TOO_LARGE));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(TransportErrorKind::custom)? {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(TransportErrorKind::custom_str(RESPONSE_TOO_LARGE));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            // Keep the start of the body: an RPC's reason, not a page of HTML.
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            return Err(TransportErrorKind::http_error(status.as_u16(), text));
        }
        serde_json::from_slice(&body).map_err(|e| {
            TransportError::deser_err(e, String::from_utf8_lossy(&body[..body.len().min(512)]))
        })
    }
}

impl Service<RequestPacket> for HttpTransport {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut task::Context<'_>) -> task::Poll<Result<(), Self::Error>> {
        // reqwest's client is always ready; its pool queues requests itself.
        task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}
