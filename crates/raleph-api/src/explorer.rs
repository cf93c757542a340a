//! The explorer: the page a person opens on the node (`/`, `/explorer/...`). Its files are in
//! `web/explorer/` and are built into the binary; the browser builds every page from the JSON
//! API, so this module only serves files.
//!
//! Everything the explorer shows was written by strangers (message content, channels, post
//! types), so the page runs under a strict Content-Security-Policy: scripts and styles only
//! from the node's own files, no inline script or style, no plugins, no framing, and
//! connections only back to the node (the JSON API and its websockets).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The policy of every explorer response. `'self'` in `connect-src` covers the node's own
/// `ws:`/`wss:` origin too (CSP level 3, which Chromium, Firefox and Safari follow).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// A file of `web/explorer/`, built into the binary.
struct Asset {
    /// Its path under `web/explorer/`, which is also its URL under `/explorer/assets/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../web/explorer/",
                $path
            )),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page every explorer URL is answered with; its script picks what to show.
static SHELL: Asset = asset!("index.html", "text/html; charset=utf-8");

/// The files the shell loads. A test checks that this is every file of `web/explorer/`.
static ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/json.js", JS),
    asset!("js/table.js", JS),
    asset!("js/pages/address.js", JS),
    asset!("js/pages/home.js", JS),
    asset!("js/pages/list.js", JS),
    asset!("js/pages/message.js", JS),
    asset!("js/pages/node.js", JS),
    asset!("js/pages/search.js", JS),
];

/// `GET /`, `/explorer` and `/explorer/{page}`: the shell.
pub async fn page(headers: HeaderMap) -> Response {
    serve(&SHELL, etag_of(0), &headers)
}

/// `GET /explorer/assets/{path}`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.path == path) {
        Some(index) => serve(&ASSETS[index], etag_of(index + 1), &headers),
        None => ApiError::not_found("no such explorer file").into_response(),
    }
}

/// Each file's ETag (the shell's first), from its bytes: the browser revalidates (the files
/// change with the binary) and gets a 304 when nothing changed.
fn etag_of(index: usize) -> &'static HeaderValue {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        std::iter::once(&SHELL)
            .chain(ASSETS)
            .map(|asset| {
                let digest = Sha256::digest(asset.body);
                HeaderValue::from_str(&format!("\"{}\"", hex_prefix(&digest)))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
            })
            .collect()
    });
    &etags[index]
}

fn hex_prefix(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn serve(asset: &Asset, etag: &HeaderValue, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name.clone(), HeaderValue::from_static(value));
    }
    response
}

/// Sent with every explorer file.
const SECURITY_HEADERS: &[(header::HeaderName, &str)] = &[
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn web_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/explorer")
    }

    fn files_under(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read web/explorer") {
            let entry = entry.expect("entry");
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().expect("type").is_dir() {
                files_under(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_of_the_explorer_is_built_in() {
        let mut on_disk = Vec::new();
        files_under(&web_dir(), "", &mut on_disk);
        on_disk.sort();
        let mut built_in: Vec<String> = std::iter::once(&SHELL)
            .chain(ASSETS)
            .map(|a| a.path.to_owned())
            .collect();
        built_in.sort();
        assert_eq!(on_disk, built_in, "web/explorer and ASSETS differ");
    }

    /// Every `import … from '…'` of every script names a built-in file, so no page breaks
    /// on a missing module.
    #[test]
    fn every_import_resolves_to_a_built_in_file() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            let dir = asset.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line
                    .rsplit_once(" from '")
                    .and_then(|(_, rest)| rest.strip_suffix("';"))
                    .unwrap_or_else(|| panic!("{}: unreadable import {line}", asset.path));
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for part in target.split('/') {
                    match part {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        name => parts.push(name),
                    }
                }
                let resolved = parts.join("/");
                assert!(
                    ASSETS.iter().any(|a| a.path == resolved),
                    "{} imports {target}, which is not built in",
                    asset.path
                );
            }
        }
    }

    /// No inline script, inline style or event attribute in the shell: the policy forbids
    /// them, so they would only break the page.
    #[test]
    fn the_shell_has_no_inline_code() {
        let shell = std::str::from_utf8(SHELL.body)
            .expect("utf-8")
            .to_lowercase();
        assert!(!shell.contains("<style"), "inline <style>");
        assert!(!shell.contains(" style="), "style attribute");
        let handler = shell.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "event handler attribute");
        for script in shell.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap_or_default();
            assert!(tag.contains("src="), "inline <script>");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    /// Scripts never turn data into markup.
    #[test]
    fn no_script_writes_markup() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(sink), "{} uses {sink}", asset.path);
            }
        }
    }
}
