//! The state of one execution: what a program's instance may touch. Nothing is granted by
//! default; the PROGRAM's fields open what they name.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

/// The node's API as a program sees it at the reserved authority: a request in, a response
/// out, served in-process (no socket). Given by the node.
pub type GuestApi =
    Arc<dyn Fn(http::Request<Bytes>) -> BoxFuture<'static, http::Response<Bytes>> + Send + Sync>;

pub struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub limits: MemoryLimit,
    pub outbound: Outbound,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// `resources.memory`: the sum of the instance's linear memories may not grow past it.
pub struct MemoryLimit {
    pub cap: usize,
    /// Most elements a table may grow to.
    pub max_table_elements: usize,
    pub used: usize,
    /// Set when a growth was refused, so the failure is reported as memory exhaustion.
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.used.saturating_add(desired.saturating_sub(current));
        if next > self.cap {
            self.exceeded = true;
            return Ok(false);
        }
        self.used = next;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

/// Outgoing HTTP: to the node's API at the reserved authority always (reads only), elsewhere
/// only with `environment.internet`, and then only to public addresses unless the node allows
/// private ones.
#[derive(Clone)]
pub struct Outbound {
    pub guest_api_authority: String,
    pub guest_api: Option<GuestApi>,
    /// Largest request body sent to the guest API (`max_guest_api_request_bytes`).
    pub max_guest_api_body: usize,
    pub internet: bool,
    pub allow_private: bool,
    /// Connect and first-byte timeouts: the program's own deadline.
    pub timeout: Duration,
}

type Sent = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Sent {
        let host = request
            .uri()
            .host()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if host == self.guest_api_authority {
            let api = self.guest_api.clone();
            let max_body = self.max_guest_api_body;
            return Box::new(async move {
                let Some(api) = api else {
                    return Err(HttpError::HttpRequestDenied);
                };
                let response = call_guest_api(&api, request, max_body).await?;
                let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                    Box::new(async { Ok(()) });
                Ok((response, done))
            });
        }
        if !self.internet {
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let allow_private = self.allow_private;
        let options = Some(RequestOptions {
            connect_timeout: Some(self.timeout),
            first_byte_timeout: Some(self.timeout),
            between_bytes_timeout: Some(self.timeout),
        });
        let destination = destination(&request);
        Box::new(async move {
            if !allow_private {
                refuse_private_destination(destination?).await?;
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(io);
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}

/// Reads only: GET, HEAD and OPTIONS reach the node's API, with a body of at most
/// `max_body` bytes; anything else is denied.
async fn call_guest_api(
    api: &GuestApi,
    request: http::Request<WasiBody>,
    max_body: usize,
) -> Result<http::Response<WasiBody>, HttpError> {
    let (parts, body) = request.into_parts();
    if !matches!(
        parts.method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) {
        return Err(HttpError::HttpRequestDenied);
    }
    let body = http_body_util::Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|_| HttpError::HttpRequestBodySize(Some(max_body as u64)))?
        .to_bytes();
    let response = api(http::Request::from_parts(parts, body)).await;
    Ok(response.map(|body| {
        http_body_util::Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync()
    }))
}

/// A program on the internet must not reach the node's own loopback services or the
/// operator's private network: every address the name resolves to must be public.
async fn refuse_private_destination((host, port): (String, u16)) -> Result<(), HttpError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| HttpError::DnsError {
                rcode: None,
                info_code: None,
            })?
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty() || addresses.iter().any(|ip| !is_public(ip)) {
        return Err(HttpError::DestinationIpProhibited);
    }
    Ok(())
}

/// The host and port a request goes to.
fn destination(request: &http::Request<WasiBody>) -> Result<(String, u16), HttpError> {
    let uri = request.uri();
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    };
    Ok((host.to_owned(), uri.port_u16().unwrap_or(default_port)))
}

/// Not loopback, private, link-local, unspecified, shared (CGNAT) or documentation space.
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(&IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_grow_up_to_the_configured_elements_and_memory_up_to_its_cap() {
        let mut limits = MemoryLimit {
            cap: 2 << 20,
            max_table_elements: 10,
            used: 0,
            exceeded: false,
        };
        assert!(limits.table_growing(0, 10, None).expect("answer"));
        assert!(!limits.table_growing(10, 11, None).expect("answer"));
        assert!(limits.memory_growing(0, 2 << 20, None).expect("answer"));
        assert!(
            !limits
                .memory_growing(2 << 20, 3 << 20, None)
                .expect("answer")
        );
        assert!(limits.exceeded);
    }

    /// A request of `body_len` bytes to the guest API, through `Outbound` with `config`'s
    /// body limit: the body length the API saw, or the error the program reads.
    async fn send_to_guest_api(
        config: &crate::ComputeConfig,
        body_len: usize,
    ) -> Result<String, HttpError> {
        let api: GuestApi = Arc::new(|request: http::Request<Bytes>| {
            let seen = request.body().len().to_string();
            Box::pin(async move { http::Response::new(Bytes::from(seen)) })
        });
        let mut outbound = Outbound {
            guest_api_authority: "aleph.api".to_owned(),
            guest_api: Some(api),
            max_guest_api_body: config.max_guest_api_request_bytes,
            internet: false,
            allow_private: false,
            timeout: Duration::from_secs(1),
        };
        let body = http_body_util::Full::new(Bytes::from(vec![b'x'; body_len]))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::get("http://aleph.api/api/v0/version")
            .body(body)
            .map_err(|_| HttpError::HttpRequestDenied)?;
        let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
            Box::new(async { Ok(()) });
        let (response, _) = Box::into_pin(outbound.send_request(request, None, done)).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|_| HttpError::HttpProtocolError)?
            .to_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    #[test]
    fn the_guest_api_request_limit_defaults_to_its_former_value() {
        let config = crate::ComputeConfig::default();
        assert_eq!(config.max_guest_api_request_bytes, 1 << 20);
    }

    #[tokio::test]
    async fn the_configured_guest_api_request_limit_is_the_one_applied() {
        let config = crate::ComputeConfig {
            max_guest_api_request_bytes: 8,
            ..crate::ComputeConfig::default()
        };
        assert_eq!(
            send_to_guest_api(&config, 8).await.ok().as_deref(),
            Some("8")
        );
        match send_to_guest_api(&config, 9).await {
            Err(HttpError::HttpRequestBodySize(Some(8))) => {}
            other => panic!("a body past the limit: {other:?}"),
        }
        // The default lets that body through.
        let default = crate::ComputeConfig::default();
        assert_eq!(
            send_to_guest_api(&default, 9).await.ok().as_deref(),
            Some("9")
        );
    }

    #[test]
    fn private_and_local_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(&private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(&public.parse().unwrap()), "{public}");
        }
    }
}
