//! `GET /api/docs`: interactive documentation of the HTTP API, a small page of our own (the
//! reference serves Swagger UI, which this build cannot fetch): it reads `/api/openapi.json`,
//! lists every operation with its parameters, and sends a request filled in by the user.
//! Its HTML, script and style are compiled in and served under a Content-Security-Policy that
//! allows this origin only: no inline script or style, nothing from elsewhere.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("docs.js");
const STYLE: &str = include_str!("docs.css");

/// Everything the page loads comes from this origin; nothing may frame it.
const POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn served(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub async fn page() -> Response {
    served("text/html; charset=utf-8", PAGE)
}

/// The page's script and style, by name.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    match name.as_str() {
        "docs.js" => Ok(served("text/javascript; charset=utf-8", SCRIPT)),
        "docs.css" => Ok(served("text/css; charset=utf-8", STYLE)),
        _ => Err(ApiError::not_found("no such asset")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_under_a_strict_policy() {
        let response = served("text/html; charset=utf-8", PAGE);
        let policy = response.headers().get(header::CONTENT_SECURITY_POLICY);
        assert_eq!(
            policy.and_then(|p| p.to_str().ok()),
            Some("default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        );
        assert!(
            response
                .headers()
                .get(header::X_CONTENT_TYPE_OPTIONS)
                .is_some()
        );
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = PAGE.to_ascii_lowercase();
        assert!(page.contains(r#"<script src="/api/docs/docs.js" defer></script>"#));
        assert!(page.contains(r#"<link rel="stylesheet" href="/api/docs/docs.css">"#));
        assert_eq!(page.matches("<script").count(), 1);
        for inline in ["<style", " style=", " onclick", " onload", "javascript:"] {
            assert!(!page.contains(inline), "{inline}");
        }
        // The script writes text, never markup.
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("outerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML") && !SCRIPT.contains("document.write"));
        assert!(!SCRIPT.contains("eval("));
    }
}
