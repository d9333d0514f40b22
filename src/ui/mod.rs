//! The customer web page, the kitchen's (`/kitchen/`) and the operations dashboard (`/admin/`): static assets embedded in the binary, served with a strict
//! Content-Security-Policy (no inline script or style) and cache validators.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::node::Node;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const KITCHEN: &str = include_str!("assets/kitchen.html");
const ADMIN: &str = include_str!("assets/admin.html");
const ADMIN_JS: &str = include_str!("assets/admin.js");
/// uPlot 1.6.32 (MIT, `assets/vendor/uPlot.LICENSE`), vendored unmodified: the dashboard's charts.
const UPLOT_JS: &str = include_str!("assets/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/vendor/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("assets/vendor/uPlot.LICENSE");
const KITCHEN_JS: &str = include_str!("assets/kitchen.js");
const FAVICON: &str = include_str!("assets/favicon.svg");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every asset the binary serves: path, content, content type.
const ASSETS: [(&str, &str, &str); 12] = [
    ("/", INDEX, HTML),
    ("/ui/app.js", APP_JS, JS),
    ("/ui/style.css", STYLE_CSS, CSS),
    ("/kitchen/", KITCHEN, HTML),
    ("/ui/kitchen.js", KITCHEN_JS, JS),
    ("/admin/", ADMIN, HTML),
    ("/ui/admin.js", ADMIN_JS, JS),
    ("/ui/vendor/uPlot.iife.min.js", UPLOT_JS, JS),
    ("/ui/vendor/uPlot.min.css", UPLOT_CSS, CSS),
    ("/ui/vendor/uPlot.LICENSE", UPLOT_LICENSE, "text/plain; charset=utf-8"),
    // The pages name this icon; /favicon.ico is where other clients look for one.
    ("/ui/favicon.svg", FAVICON, SVG),
    ("/favicon.ico", FAVICON, SVG),
];

pub fn router() -> Router<Arc<Node>> {
    ASSETS.iter().fold(Router::new(), |router, &(path, body, content_type)| {
        // Hashed once here, not per request (uPlot alone is 51 KB).
        let tag = etag_of(body);
        router.route(
            path,
            get(move |headers: HeaderMap| {
                let tag = tag.clone();
                async move { asset(&headers, body, content_type, tag) }
            }),
        )
    })
}

/// A strong ETag from the content (a few KiB: hashing per request costs microseconds).
fn etag_of(body: &str) -> HeaderValue {
    let hex: String = Sha256::digest(body.as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn asset(request: &HeaderMap, body: &'static str, content_type: &'static str, tag: HeaderValue) -> Response {
    let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { body.into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ETAG, tag);
    // Always revalidate (cheap with the ETag), so a new binary's page is picked up at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
