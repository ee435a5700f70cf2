//! The web client, served at `/` on the API's port: every file is embedded in the binary at
//! build time (from `firmware/basis/web/dist/`, built by `packaging/web/build`), sent
//! gzipped when the browser takes it (the gzipped copies are made at build time too), with
//! an ETag so a phone revalidates instead of downloading again, and with a content security
//! policy that lets the page load nothing from anywhere but this node.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// The built web client.
#[derive(RustEmbed)]
#[folder = "web/dist/"]
struct Assets;

/// What the page may load and where it may connect: only this node (and the wasm module it
/// compiles); inline images for QR codes and photos the user picks; decrypted photos and
/// voice notes, which the page hands to `<img>` and `<audio>` as `blob:` URLs.
const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
                   img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
                   object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.trim().split(';');
            let coding = it.next().unwrap_or_default().trim();
            let q_zero = it.any(|p| p.trim().replace(' ', "") == "q=0");
            (coding == "gzip" || coding == "*") && !q_zero
        })
}

/// Serves one embedded file, or `None` when there is none of that name.
fn serve(name: &str, headers: &HeaderMap) -> Option<Response> {
    if name.ends_with(".gz") {
        return None;
    }
    let file = Assets::get(name)?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let gzip = accepts_gzip(headers)
        .then(|| Assets::get(&format!("{name}.gz")))
        .flatten();
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match &gzip {
            Some(gz) => {
                let mut r = gz.data.to_vec().into_response();
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            None => file.data.to_vec().into_response(),
        }
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Always revalidated (names carry no hash); a 304 costs a few bytes on the LAN.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(response)
}

/// `GET /`: the page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// The answer a phone or laptop expects from its connectivity check when the network has
/// Internet, for the check's file name: on the Raspberry Pi image's hotspot every name
/// resolves to the board and port 80 reaches this server, so the phone asks the node. Saying
/// "online" keeps phones joined without a sign-in sheet (docs/IMAGE.md says why).
fn connectivity_check(name: &str) -> Option<Response> {
    let body = match name {
        // Android and ChromeOS: 204 and nothing else means online.
        "generate_204" | "gen_204" => return Some(StatusCode::NO_CONTENT.into_response()),
        // iOS and macOS (captive.apple.com).
        "hotspot-detect.html" => {
            "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
        }
        // Windows.
        "connecttest.txt" => "Microsoft Connect Test",
        "ncsi.txt" => "Microsoft NCSI",
        // Firefox.
        "success.txt" => "success\n",
        _ => return None,
    };
    let mut response = body.into_response();
    let content = if name.ends_with(".html") {
        "text/html"
    } else {
        "text/plain"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content));
    Some(response)
}

/// `GET /{file}`: a file of the web client, the answer to a connectivity check, or the
/// API's JSON 404.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = connectivity_check(&name) {
        return r;
    }
    match serve(&name, &headers) {
        Some(r) => r,
        None => super::not_found().await.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sent_only_to_browsers_that_take_it() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn connectivity_checks_are_answered_as_online() {
        let status = |name| connectivity_check(name).map(|r| r.status());
        assert_eq!(status("generate_204"), Some(StatusCode::NO_CONTENT));
        assert_eq!(status("hotspot-detect.html"), Some(StatusCode::OK));
        assert_eq!(status("ncsi.txt"), Some(StatusCode::OK));
        assert_eq!(status("app.js"), None);
        assert_eq!(status("index.html"), None);
    }

    #[test]
    fn every_file_of_the_client_is_embedded_with_its_gzipped_copy() {
        for name in [
            "index.html",
            "app.js",
            "app.css",
            "basis_web_bg.wasm",
            "icon.svg",
        ] {
            assert!(Assets::get(name).is_some(), "{name} is not embedded");
            assert!(Assets::get(&format!("{name}.gz")).is_some(), "{name}.gz");
        }
    }
}
