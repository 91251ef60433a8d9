//! Which web pages may act on the gateway with a browser's credentials.
//!
//! CORS stops a foreign page from *reading* responses, but not from sending
//! a `POST` (a `text/plain` one needs no preflight) or opening a WebSocket.
//! Where a cookie authenticates the request, the browser attaches it on the
//! foreign page's behalf, so those requests are judged by their `Origin`.

use crate::auth::{TokenFrom, token_from};
use crate::error::ApiError;
use crate::state::Shared;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use eventwire_protocol::ErrorCode;
use std::sync::Arc;

/// Middleware on every HTTP route: a request that may change something
/// (any method but `GET`, `HEAD` and `OPTIONS`: publishing, and every
/// consumer-group action) and is authenticated by the auth cookie must pass
/// [`check`]. WebSocket upgrades are `GET`s; their handler checks itself.
pub async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && shared.auth.enforced() {
        let cookie = shared.config.auth.auth_cookie.as_deref();
        let from = token_from(req.headers(), req.uri().query(), cookie).map(|(_, from)| from);
        if from == Some(TokenFrom::Cookie)
            && let Err(e) = check(&shared.config.cors_origins, req.headers(), true)
        {
            return e.into_response();
        }
    }
    next.run(req).await
}

/// Checks the `Origin` of a request that may change something, or of a
/// WebSocket upgrade.
///
/// * Authenticated by cookie: `Origin` must be present and be either the
///   gateway's own (its host and port equal the `Host` header) or listed in
///   `--cors-origin` by name; `*` does not count. Browsers send `Origin` on
///   every `POST` and upgrade, so a missing one is refused too; tools and
///   services should send `Authorization: Bearer` instead of a cookie.
/// * Otherwise (WebSocket only): when the allow-list names origins, an
///   `Origin` not on it is refused. Clients that send no `Origin` (servers,
///   tools) are not browsers and pass.
pub fn check(allowed: &[String], headers: &HeaderMap, by_cookie: bool) -> Result<(), ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or_default());
    let listed = |o: &str| allowed.iter().any(|a| a != "*" && a == o);
    let ok = if by_cookie {
        origin.is_some_and(|o| listed(o) || same_origin(o, headers))
    } else {
        match origin {
            None => true,
            Some(_) if allowed.is_empty() || allowed.iter().any(|a| a == "*") => true,
            Some(o) => listed(o),
        }
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::Forbidden,
        if by_cookie {
            "a request authenticated by cookie must come from this gateway's own origin \
             or one listed with --cors-origin (its Origin is missing or foreign)"
        } else {
            "this origin may not open a WebSocket here"
        },
    ))
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was
/// sent to. The scheme is not compared: behind a TLS-terminating proxy the
/// page is `https` while the gateway hears plain HTTP.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    !authority.is_empty() && authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "gw.example:8080".parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn cookie_requests_need_their_own_or_a_listed_origin() {
        let list = ["https://app.example".to_owned(), "*".to_owned()];
        let ok = |o: Option<&str>| check(&list, &headers(o), true).is_ok();
        assert!(ok(Some("https://app.example")));
        assert!(ok(Some("http://gw.example:8080")), "same origin");
        assert!(!ok(Some("https://evil.example")), "`*` does not count");
        assert!(!ok(None), "browsers always send Origin on POST");
        assert!(!ok(Some("null")));
    }

    #[test]
    fn token_requests_follow_the_allow_list_when_it_names_origins() {
        let h = headers(Some("https://evil.example"));
        assert!(check(&[], &h, false).is_ok());
        assert!(check(&["*".into()], &h, false).is_ok());
        assert!(check(&["https://app.example".into()], &h, false).is_err());
        assert!(check(&["https://app.example".into()], &headers(None), false).is_ok());
    }
}
