//! The test program: each path exercises one thing a program may (or may not) do.

use std::io::{Read as _, Write as _};

use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Program);

struct Program;

const VERSION: &str = if cfg!(feature = "v2") { "2" } else { "1" };

impl wasip2::exports::http::incoming_handler::Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.replace("%2F", "/").replace("%3A", ":"))
        };
        match path {
            "/loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "/bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[4096] = 1;
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            "/panic" => panic!("the test program panics on purpose"),
            "/version" => reply(out, 200, &[], VERSION.as_bytes()),
            "/echo" => {
                let method = match request.method() {
                    Method::Get => "GET".to_owned(),
                    Method::Post => "POST".to_owned(),
                    Method::Put => "PUT".to_owned(),
                    Method::Delete => "DELETE".to_owned(),
                    Method::Patch => "PATCH".to_owned(),
                    Method::Head => "HEAD".to_owned(),
                    Method::Options => "OPTIONS".to_owned(),
                    Method::Other(m) => m,
                    _ => "?".to_owned(),
                };
                let mut headers = String::new();
                for (name, value) in request.headers().entries() {
                    headers.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(&value)));
                }
                let body = read_body(&request);
                let text = format!(
                    "method={method}\ntarget={target}\nbody-bytes={}\nbody={}\n{headers}",
                    body.len(),
                    String::from_utf8_lossy(&body[..body.len().min(64)])
                );
                reply(out, 200, &[("content-type", "text/plain")], text.as_bytes());
            }
            "/cookies" => reply(
                out,
                201,
                &[("set-cookie", "a=1"), ("set-cookie", "b=2")],
                b"two cookies",
            ),
            "/env" => {
                let name = param("name").unwrap_or_default();
                match std::env::var(&name) {
                    Ok(value) => reply(out, 200, &[], value.as_bytes()),
                    Err(_) => reply(out, 404, &[], b"unset"),
                }
            }
            "/print" => {
                println!("to stdout: {}", param("text").unwrap_or_default());
                eprintln!("to stderr");
                reply(out, 200, &[], b"printed");
            }
            "/read" => {
                let file = param("path").unwrap_or_default();
                match std::fs::read(&file) {
                    Ok(bytes) => reply(out, 200, &[], &bytes),
                    Err(e) => reply(out, 404, &[], e.to_string().as_bytes()),
                }
            }
            "/write" => {
                let file = param("path").unwrap_or_default();
                let body = read_body(&request);
                match std::fs::write(&file, &body) {
                    Ok(()) => reply(out, 200, &[], b"written"),
                    Err(e) => reply(out, 403, &[], e.to_string().as_bytes()),
                }
            }
            "/stream" => {
                let chunks: usize = param("n").and_then(|n| n.parse().ok()).unwrap_or(3);
                let response = OutgoingResponse::new(Fields::new());
                let body = response.body().expect("body");
                ResponseOutparam::set(out, Ok(response));
                let mut writer = body.write().expect("stream");
                for i in 0..chunks {
                    writer
                        .write_all(format!("chunk {i}\n").as_bytes())
                        .expect("write");
                    writer.flush().expect("flush");
                }
                drop(writer);
                OutgoingBody::finish(body, None).expect("finish");
            }
            "/fetch" => {
                let url = param("url").unwrap_or_default();
                match fetch(&url) {
                    Ok((status, body)) => {
                        let text = format!("{status} {}", String::from_utf8_lossy(&body));
                        reply(out, 200, &[], text.as_bytes());
                    }
                    Err(e) => reply(out, 502, &[], e.as_bytes()),
                }
            }
            "/.well-known/aleph/message" => {
                // Each message the program subscribed to is appended to its persistent volume.
                let body = read_body(&request);
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open("/state/messages")
                    .expect("open /state/messages");
                file.write_all(&body).expect("append");
                file.write_all(b"\n").expect("append");
                println!("message received: {} bytes", body.len());
                reply(out, 200, &[], b"ok");
            }
            _ => reply(
                out,
                200,
                &[],
                format!("hello from {target} (version {VERSION})").as_bytes(),
            ),
        }
    }
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(body) = request.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    bytes
}

fn reply(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .expect("append header");
    }
    let response = OutgoingResponse::new(fields);
    response.set_status_code(status).expect("status");
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let mut writer = outgoing.write().expect("stream");
    writer.write_all(body).expect("write");
    writer.flush().expect("flush");
    drop(writer);
    OutgoingBody::finish(outgoing, None).expect("finish");
}

/// GET `url` (http only) through the host.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let pending = wasip2::http::outgoing_handler::handle(request, None)
        .map_err(|e| format!("refused: {e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "taken")?
        .map_err(|e| format!("failed: {e:?}"))?;
    let status = response.status();
    let mut bytes = Vec::new();
    if let Ok(body) = response.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    Ok((status, bytes))
}
