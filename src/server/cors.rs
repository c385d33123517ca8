//! CORS for browser clients (`--cors-origin`; off by default). With no origin configured the
//! server sends no CORS headers, so a page on another origin cannot read its answers: with the
//! server on loopback and no API key, any site a user visits could otherwise use the model.
//! Configured origins (or `*`) get `Access-Control-Allow-Origin` on every answer, and preflight
//! `OPTIONS` requests are answered before authentication (browsers send them without
//! credentials), as llama-server answers them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The origins allowed to read answers; `*` allows any.
#[derive(Debug, Clone, Default)]
pub struct CorsOrigins(pub Vec<String>);

impl CorsOrigins {
    fn allows(&self, origin: &str) -> bool {
        self.0
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// The middleware: adds the headers for an allowed `Origin`, answers preflights.
pub async fn cors(State(origins): State<Arc<CorsOrigins>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| origins.allows(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-api-key"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("origin"));
    resp
}
