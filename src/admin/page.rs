//! The approval web page. A static shell plus one script and one stylesheet, all embedded in
//! the binary (the gateway may have no internet access, and nothing is fetched from a CDN).
//! The page holds no data of its own: it reads the API with the approver's token, or, for a
//! signed link, with the link's signature.

use std::time::SystemTime;

use axum::extract::State;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::AdminState;
use crate::approval::{verify_link, LinkError};

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");

/// Scripts and styles only from this origin, API calls only to this origin, no framing, no
/// form posts anywhere: a statement crafted to inject markup has nowhere to go.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/approvals", get(list_page))
        .route("/approvals/{id}", get(request_page))
        .route("/approvals/assets/app.js", get(app_js))
        .route("/approvals/assets/app.css", get(app_css))
}

fn with_headers(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn html(status: StatusCode, body: &'static str) -> Response {
    with_headers(status, "text/html; charset=utf-8", body)
}

async fn list_page() -> Response {
    html(StatusCode::OK, INDEX_HTML)
}

/// Query of a signed link. Unknown parameters are ignored (chat clients add their own).
#[derive(Deserialize)]
struct LinkQuery {
    exp: Option<String>,
    sig: Option<String>,
}

const LINK_INVALID_HTML: &str = "<!doctype html><meta charset=utf-8><title>airlock: link refused</title>\
<h1>This approval link is not valid</h1><p>It was altered or was not issued by this gateway. \
Open the request from the approvals list instead.</p><p><a href=\"/approvals\">Approval requests</a></p>";

const LINK_EXPIRED_HTML: &str =
    "<!doctype html><meta charset=utf-8><title>airlock: link expired</title>\
<h1>This approval link has expired</h1><p>Open the request from the approvals list to see \
whether it can still be decided.</p><p><a href=\"/approvals\">Approval requests</a></p>";

/// Plain `/approvals/{id}` serves the page (which asks for a token). With `exp`/`sig`, the
/// link must verify: a tampered one is refused (403), an expired one is gone (410).
async fn request_page(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Response {
    if q.exp.is_none() && q.sig.is_none() {
        return html(StatusCode::OK, INDEX_HTML);
    }
    let verdict = match (q.exp.and_then(|e| e.parse::<u64>().ok()), q.sig) {
        (Some(exp), Some(sig)) => verify_link(
            state.link_secret().as_bytes(),
            &id,
            exp,
            &sig,
            SystemTime::now(),
        ),
        _ => Err(LinkError::Invalid),
    };
    match verdict {
        Ok(()) => html(StatusCode::OK, INDEX_HTML),
        Err(LinkError::Invalid) => {
            tracing::warn!(request_id = ?id, "refused a tampered approval link");
            html(StatusCode::FORBIDDEN, LINK_INVALID_HTML)
        }
        Err(LinkError::Expired) => html(StatusCode::GONE, LINK_EXPIRED_HTML),
    }
}

async fn app_js() -> Response {
    with_headers(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    with_headers(StatusCode::OK, "text/css; charset=utf-8", APP_CSS)
}
