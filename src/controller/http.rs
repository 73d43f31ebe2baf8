//! The controller's HTTP endpoints: webhooks, health, readiness, metrics and status.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;

use super::shared::Shared;
use super::webhook::{self, Event, WebhookError};

/// Largest request body accepted; larger ones get 413 before any work is done. Push payloads
/// with hundreds of commits stay well below it.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/webhook/github", post(github))
        .route("/webhook/gitlab", post(gitlab))
        // 413 at once from Content-Length, before a body it would refuse is read; chunked bodies
        // are cut at the limit. axum's own default limit (2 MB) is turned off: this is the one.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(shared)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    match shared.ready() {
        true => (StatusCode::OK, "ready\n"),
        false => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no revision of the source fetched and rendered yet\n",
        ),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.view()).into_response()
}

fn text_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn github(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let event = webhook::verify_github(
        shared.webhook_secret(),
        &body,
        text_header(&headers, webhook::GITHUB_SIGNATURE),
    )
    .and_then(|()| webhook::github_event(text_header(&headers, webhook::GITHUB_EVENT), &body));
    answer(&shared, "github", event)
}

async fn gitlab(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let event = webhook::verify_gitlab(
        shared.webhook_secret(),
        text_header(&headers, webhook::GITLAB_TOKEN),
    )
    .and_then(|()| webhook::gitlab_event(text_header(&headers, webhook::GITLAB_EVENT), &body));
    answer(&shared, "gitlab", event)
}

/// Acts on a webhook and answers it; a push to the watched branch triggers a fetch now.
fn answer(shared: &Shared, provider: &str, event: Result<Event, WebhookError>) -> Response {
    let branch = shared.branch();
    let (status, result, message) = match event {
        Err(e @ WebhookError::Payload { .. }) => {
            (StatusCode::BAD_REQUEST, "bad_request", e.to_string())
        }
        Err(e) => {
            tracing::warn!(provider, "webhook refused: {e}");
            (StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
        }
        Ok(Event::Ping) => (StatusCode::OK, "ping", "pong".to_string()),
        Ok(Event::Push { branch: pushed, .. }) if pushed == branch => {
            tracing::info!(provider, %branch, "push webhook: fetching now");
            shared.pushed();
            (
                StatusCode::ACCEPTED,
                "accepted",
                format!("fetching {branch}"),
            )
        }
        Ok(Event::Push { branch: pushed, .. }) => (
            StatusCode::OK,
            "ignored",
            format!("ignored: push to {pushed}; watching {branch}"),
        ),
        Ok(Event::Ignored(what)) => (StatusCode::OK, "ignored", format!("ignored: {what}")),
    };
    shared.metrics.webhook(provider, result);
    (status, format!("{message}\n")).into_response()
}
