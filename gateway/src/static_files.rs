//! `--static-dir`: the files under one directory, and nothing else.
//!
//! tower-http's `ServeDir` refuses `..` but follows symlinks wherever they
//! point and serves dotfiles (`.env`, `.git/config`). A guard in front of it
//! answers `404 not_found` for any path with a segment starting with `.`,
//! and for any path whose real location (symlinks resolved) is outside the
//! directory.

use crate::error::ApiError;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use eventwire_protocol::ErrorCode;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower_http::services::ServeDir;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// A router serving `dir` as its fallback.
pub fn router(dir: &Path) -> Router {
    // The root as the kernel sees it, so a symlinked --static-dir still works
    // and what resolves under it can be compared by prefix.
    let root = Arc::new(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()));
    let files = ServeDir::new(root.as_path())
        .fallback(axum::routing::get(|| async { not_found() }).with_state(()));
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn_with_state(root, guard))
}

async fn guard(State(root): State<Arc<PathBuf>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let ok = tokio::task::spawn_blocking(move || allowed(&root, &path))
        .await
        .unwrap_or(false);
    if ok {
        next.run(req).await
    } else {
        not_found().into_response()
    }
}

/// Whether the URL path may be served from `root` (already canonical).
/// A path that does not exist is allowed: `ServeDir` answers it with 404.
fn allowed(root: &Path, url_path: &str) -> bool {
    let Ok(decoded) = percent_encoding::percent_decode_str(url_path).decode_utf8() else {
        return false;
    };
    let mut full = root.to_path_buf();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        // `.` and `..` start with a dot too.
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return false;
        }
        full.push(segment);
    }
    let inside = |p: &Path| match p.canonicalize() {
        Ok(real) => real.starts_with(root),
        Err(_) => true,
    };
    // A directory is answered with its index.html, which may be a link too.
    inside(&full) && (!full.is_dir() || inside(&full.join("index.html")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused_however_spelled() {
        let root = std::env::temp_dir();
        for p in [
            "/.env",
            "/a/.git/config",
            "/%2eenv",
            "/a/%2E%2E/x",
            "/a%5c..%5cx",
        ] {
            assert!(!allowed(&root, p), "{p}");
        }
        assert!(allowed(&root, "/no-such-file.html"));
    }
}
