//! The customer web page, the kitchen's (`/kitchen/`) and the operations dashboard (`/admin/`): static assets embedded in the binary, served with a strict
//! Content-Security-Policy (no inline script or style) and cache validators.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
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
const KITCHEN_JS: &str = include_str!("assets/kitchen.js");
const FAVICON: &str = include_str!("assets/favicon.svg");
/// The pages' languages: the switch and formatting, and one message file per language.
const I18N_JS: &str = include_str!("assets/i18n.js");
/// The pages' sign-in through the identity provider (authorization code with PKCE).
const SIGNIN_JS: &str = include_str!("assets/signin.js");
const MESSAGES_EN: &str = include_str!("assets/i18n/en.js");
const MESSAGES_DE: &str = include_str!("assets/i18n/de.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every asset the binary serves: path, content, content type.
const ASSETS: [(&str, &str, &str); 13] = [
    ("/", INDEX, HTML),
    ("/ui/app.js", APP_JS, JS),
    ("/ui/style.css", STYLE_CSS, CSS),
    ("/kitchen/", KITCHEN, HTML),
    ("/ui/kitchen.js", KITCHEN_JS, JS),
    ("/admin/", ADMIN, HTML),
    ("/ui/admin.js", ADMIN_JS, JS),
    ("/ui/i18n.js", I18N_JS, JS),
    ("/ui/signin.js", SIGNIN_JS, JS),
    ("/ui/i18n/en.js", MESSAGES_EN, JS),
    ("/ui/i18n/de.js", MESSAGES_DE, JS),
    // The pages name this icon; /favicon.ico is where other clients look for one.
    ("/ui/favicon.svg", FAVICON, SVG),
    ("/favicon.ico", FAVICON, SVG),
];

/// One asset as served: the text and, when it is smaller, its gzip form, each with its own
/// strong ETag.
struct Asset {
    body: Bytes,
    gzip: Option<Bytes>,
    content_type: &'static str,
    tag: HeaderValue,
    gzip_tag: HeaderValue,
}

impl Asset {
    /// Hashed and compressed once here, not per request (the customer page's script is 28 KB,
    /// 8 KB gzipped).
    fn new(body: Bytes, content_type: &'static str) -> Self {
        let hash = content_hash(&body);
        Self {
            gzip: gzip(&body).filter(|z| z.len() < body.len()).map(Bytes::from),
            body,
            content_type,
            tag: etag(&hash, ""),
            gzip_tag: etag(&hash, "-gz"),
        }
    }
}

/// The pages' block for the provider's sign-in, as the files have it (hidden) …
const PROVIDER_BLOCK_HIDDEN: &str = "<div id=\"provider-sign-in\" hidden>";
/// … and as served by a node whose pages sign in through a provider: shown from the first
/// paint, so nothing moves when the page fills it in, and a page without it asks nothing.
const PROVIDER_BLOCK_SHOWN: &str = "<div id=\"provider-sign-in\">";

pub fn router() -> Router<Arc<Node>> {
    ASSETS.iter().fold(Router::new(), |router, &(path, body, content_type)| {
        let asset = Arc::new(Asset::new(Bytes::from_static(body.as_bytes()), content_type));
        let with_provider = body.contains(PROVIDER_BLOCK_HIDDEN).then(|| {
            Arc::new(Asset::new(Bytes::from(body.replace(PROVIDER_BLOCK_HIDDEN, PROVIDER_BLOCK_SHOWN)), content_type))
        });
        router.route(
            path,
            get(move |State(node): State<Arc<Node>>, headers: HeaderMap| {
                let provider = node.keys.oidc().is_some_and(|v| v.config().pages.is_some());
                let asset = match (&with_provider, provider) {
                    (Some(shown), true) => shown.clone(),
                    _ => asset.clone(),
                };
                async move { serve(&headers, &asset, csp(&node)) }
            }),
        )
    })
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// Whether the client takes gzip: `gzip` or `*` in Accept-Encoding without `q=0`.
fn accepts_gzip(request: &HeaderMap) -> bool {
    request.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused =
                parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().map_or(true, |q| q <= 0.0)));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        },
    )
}

/// The Content-Security-Policy: [`CSP`], whose `connect-src` also names the identity provider's
/// token endpoint when the pages sign in through one (their fetch of the token goes there).
fn csp(node: &Node) -> HeaderValue {
    match node.keys.oidc().and_then(|v| v.token_origin()) {
        Some(origin) => {
            HeaderValue::from_str(&CSP.replace("connect-src 'self'", &format!("connect-src 'self' {origin}")))
                .unwrap_or(HeaderValue::from_static(CSP))
        }
        None => HeaderValue::from_static(CSP),
    }
}

fn serve(request: &HeaderMap, asset: &Asset, csp: HeaderValue) -> Response {
    let gzip = asset.gzip.as_ref().filter(|_| accepts_gzip(request));
    let compressed = gzip.is_some();
    let tag = if compressed { &asset.gzip_tag } else { &asset.tag };
    let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut response = match (fresh, gzip) {
        (true, _) => StatusCode::NOT_MODIFIED.into_response(),
        // A reference count, not a copy of the bytes.
        (false, Some(bytes)) => bytes.clone().into_response(),
        (false, None) => asset.body.clone().into_response(),
    };
    let h = response.headers_mut();
    if compressed && !fresh {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    finish(h, asset.content_type, tag.clone(), csp);
    response
}

/// The content's digest, in hex, for its ETags.
fn content_hash(body: &[u8]) -> String {
    Sha256::digest(body).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// A strong ETag from the content's hash and its encoding (`-gz` for the gzip form: a strong
/// validator differs per byte sequence).
fn etag(hash: &str, encoding: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{hash}{encoding}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn finish(h: &mut HeaderMap, content_type: &'static str, tag: HeaderValue, csp: HeaderValue) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ETAG, tag);
    // Always revalidate (cheap with the ETag), so a new binary's page is picked up at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::domain::{OrderStatus, Size, Topping};

    /// A message file: `export default {JSON object of strings};`.
    fn messages(file: &str) -> BTreeMap<String, String> {
        let json = file.trim().strip_prefix("export default ").and_then(|s| s.strip_suffix(';'));
        serde_json::from_str(json.expect("export default {...};")).expect("a JSON object of strings")
    }

    /// Every quoted argument of `call` in `text` (`t("c.title"` → `c.title`), where `call`
    /// starts a word (`t(` in `get("ETag")` is not a call of `t`).
    fn quoted_after<'a>(text: &'a str, call: &str) -> Vec<&'a str> {
        text.match_indices(call)
            .filter(|(i, _)| !text[..*i].ends_with(|c: char| c.is_alphanumeric() || "_.$-".contains(c)))
            .filter_map(|(i, _)| {
                let rest = &text[i + call.len()..];
                let quote = rest.chars().next().filter(|c| *c == '"' || *c == '`')?;
                let body = &rest[1..];
                let end = body.find(quote)?;
                Some(&body[..end])
            })
            .collect()
    }

    fn placeholders(text: &str) -> BTreeSet<&str> {
        text.split('{').skip(1).filter_map(|part| part.split_once('}').map(|(name, _)| name)).collect()
    }

    const PAGES: [(&str, &str); 3] = [("index.html", INDEX), ("kitchen.html", KITCHEN), ("admin.html", ADMIN)];
    const SCRIPTS: [(&str, &str); 5] = [
        ("app.js", APP_JS),
        ("kitchen.js", KITCHEN_JS),
        ("admin.js", ADMIN_JS),
        ("i18n.js", I18N_JS),
        ("signin.js", SIGNIN_JS),
    ];

    #[test]
    fn every_language_has_every_message_with_the_same_placeholders() {
        let (en, de) = (messages(MESSAGES_EN), messages(MESSAGES_DE));
        let missing: Vec<_> = en.keys().filter(|k| !de.contains_key(*k)).collect();
        assert!(missing.is_empty(), "missing in German: {missing:?}");
        let extra: Vec<_> = de.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(extra.is_empty(), "in German only: {extra:?}");
        for (key, text) in &en {
            assert!(!text.trim().is_empty() && !de[key].trim().is_empty(), "{key} is empty");
            assert_eq!(placeholders(text), placeholders(&de[key]), "{key}: placeholders differ");
        }
    }

    #[test]
    fn every_string_the_pages_use_is_in_the_message_files() {
        let en = messages(MESSAGES_EN);
        let mut used = BTreeSet::new();
        for (name, html) in PAGES {
            for attribute in ["data-i18n=", "data-i18n-label=", "data-i18n-content="] {
                used.extend(quoted_after(html, attribute).into_iter().map(|k| (name, k.to_owned())));
            }
        }
        for (name, js) in SCRIPTS {
            for key in quoted_after(js, "t(") {
                // A key made at run time from an id: check the whole family below.
                if !key.contains("${") {
                    used.insert((name, key.to_owned()));
                }
            }
        }
        // The families the scripts build from the API's ids.
        let families = [
            Size::ALL.iter().map(|s| format!("size.{}", s.as_str())).collect::<Vec<_>>(),
            Topping::ALL.iter().map(|t| format!("topping.{}", t.as_str())).collect(),
            ["placed", "cancelled", "preparing", "baked", "out_for_delivery", "delivered", "not_delivered"]
                .iter()
                .map(|s| {
                    assert!(OrderStatus::parse(s).is_some(), "{s}");
                    format!("status.{s}")
                })
                .collect(),
            ["placed", "preparing", "baked", "out_for_delivery", "delivered", "not_delivered"]
                .iter()
                .map(|s| format!("c.step_{s}"))
                .collect(),
            ["page_opened", "catalog_shown", "slot_picked", "order_placed"]
                .iter()
                .map(|s| format!("a.step_{s}"))
                .collect(),
        ];
        used.extend(families.into_iter().flatten().map(|k| ("built from ids", k)));
        let missing: Vec<_> = used.iter().filter(|(_, key)| !en.contains_key(key)).collect();
        assert!(missing.is_empty(), "used but in no message file: {missing:?}");
        assert!(used.len() > 150, "only {} strings found: is the scan broken?", used.len());
    }

    /// A sentence written straight into a script (a capitalised word, a space, a word) is a
    /// string the German page would show in English.
    #[test]
    fn no_script_writes_words_outside_the_message_files() {
        for (name, js) in SCRIPTS {
            for (i, line) in js.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for quote in ['"', '`'] {
                    for literal in code.split(quote).skip(1).step_by(2) {
                        let mut words = literal.split(' ');
                        let first = words.next().unwrap_or("");
                        let second = words.next().unwrap_or("");
                        let sentence = first.len() > 1
                            && first.starts_with(|c: char| c.is_ascii_uppercase())
                            && first[1..].chars().all(|c| c.is_ascii_lowercase())
                            && second.starts_with(|c: char| c.is_ascii_lowercase());
                        assert!(!sentence, "{name}:{}: words outside the message files: {literal}", i + 1);
                    }
                }
            }
        }
    }
}
