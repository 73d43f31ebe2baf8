//! The controller's HTTP endpoints, on two listeners:
//!
//! - the public one (`--listen`): `POST /webhook/github`, `POST /webhook/gitlab`, `/healthz` and
//!   `/readyz`. This is what a git host reaches, through an Ingress or a Gateway, and the kubelet
//!   probes;
//! - the status one (`--status-listen`, or off): `/metrics`, `/status`, `/healthz` and `/readyz`,
//!   for Prometheus and operators. `/status` names every cluster, its last error and the source,
//!   so it is never served where webhooks are.
//!
//! Both are served by hyper directly (axum's `serve` has no header-read timeout and no
//! connection limit), and every connection is bounded: the header must arrive within
//! [`HEADER_READ_TIMEOUT`], the body and its handling within [`REQUEST_TIMEOUT`], at most
//! [`MAX_CONNECTIONS`] connections are open per listener (beyond, a new one is closed as soon as
//! it is accepted), a header section holds at most [`MAX_HEADER_BYTES`], a body at most
//! [`MAX_BODY_BYTES`], and at most [`MAX_WEBHOOK_BODIES`] webhook bodies are read at once. So
//! what a client can make the controller hold is bounded (see [`Limits`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::shared::Shared;
use super::webhook::{self, Event, WebhookError};

/// Largest request body accepted; larger ones get 413 before any work is done. Push payloads
/// with hundreds of commits stay well below it.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a client has to send a request's whole header: on a new connection from the
/// moment it is accepted, on a kept-alive one from the end of the previous response. A client
/// that is slower (a slowloris sending a header byte by byte, or a connection left idle) gets
/// 408 and its connection is closed. Git hosts, Prometheus and probes send theirs at once.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request may take from the end of its header to its response: reading the body
/// and acting on it. A body that trickles in gets 408 and the connection is closed. A webhook
/// needs milliseconds (it only triggers a fetch); GitHub itself gives up after 10 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections open at once on one listener. Beyond it, a new connection is closed as soon as
/// it is accepted, before a byte is read, and the open ones carry on: a flood costs a file
/// descriptor for a moment, never memory. A git host, Prometheus and two probes need a handful.
pub const MAX_CONNECTIONS: usize = 256;

/// The largest header section (hyper's read buffer): 64 KiB, so open connections hold at most
/// `MAX_CONNECTIONS` × 64 KiB = 16 MiB of headers. A larger header gets 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Webhook bodies read at once; a delivery beyond it gets 503 (with `Retry-After`) before its
/// body is read, so bodies take at most `MAX_WEBHOOK_BODIES` × [`MAX_BODY_BYTES`] = 16 MiB of
/// the controller's 256 MiB. A missed push is not lost: the next poll fetches it.
pub const MAX_WEBHOOK_BODIES: usize = 16;

/// Refused connections are logged at most this often (with how many), so a flood cannot flood
/// the log too.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

/// After an error accepting a connection that is not the connection's own (out of file
/// descriptors), the listener waits this long before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// At shutdown, connections get this long to finish the request in flight.
const SHUTDOWN_GRACE: Duration = REQUEST_TIMEOUT;

/// The bounds of one listener. [`Limits::default`] holds the constants above; tests shorten
/// them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_webhook_bodies: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_webhook_bodies: MAX_WEBHOOK_BODIES,
        }
    }
}

/// What `--listen` serves: webhooks, health and readiness.
pub fn public_router(shared: Arc<Shared>, limits: Limits) -> Router {
    let bodies = Arc::new(Semaphore::new(limits.max_webhook_bodies));
    let webhooks = Router::new()
        .route("/webhook/github", post(github))
        .route("/webhook/gitlab", post(gitlab))
        // Before the body is read (the handlers' `Bytes` reads it), so a delivery beyond the
        // limit costs nothing.
        .route_layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let bodies = bodies.clone();
                async move {
                    let Ok(_permit) = bodies.try_acquire_owned() else {
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [(header::RETRY_AFTER, "10")],
                            "too many webhook deliveries at once; retry later\n",
                        )
                            .into_response();
                    };
                    next.run(request).await
                }
            },
        ));
    bounded(health().merge(webhooks), limits, shared)
}

/// What `--status-listen` serves: metrics, status, health and readiness.
pub fn status_router(shared: Arc<Shared>, limits: Limits) -> Router {
    let routes = health()
        .route("/metrics", get(metrics))
        .route("/status", get(status));
    bounded(routes, limits, shared)
}

fn health() -> Router<Arc<Shared>> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
}

/// The body limit and the request timeout, around every route (and the 404 of unknown paths).
fn bounded(routes: Router<Arc<Shared>>, limits: Limits, shared: Arc<Shared>) -> Router {
    routes
        // 413 at once from Content-Length, before a body it would refuse is read; chunked bodies
        // are cut at the limit. axum's own default limit (2 MB) is turned off: this is the one.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .with_state(shared)
}

/// Serves `router` on `listener` until `shutdown` resolves, within `limits`; then stops
/// accepting, lets the requests in flight finish (for [`SHUTDOWN_GRACE`] at most) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused = Refused::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            // The connection's own trouble (reset before it was accepted): the next one.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::warn!("cannot accept a connection, pausing: {e}");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Closed before a byte is read: the open connections keep their share.
            drop(stream);
            refused.one(limits.max_connections);
            continue;
        };
        let connection = http1.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that went away, or hit a timeout: nothing to act on.
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection closed: {e}");
            }
            drop(permit);
        });
    }
    // New connections are refused from here on; idle ones close at once, busy ones after
    // their response.
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP connections still open {}s after shutdown; leaving them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}

/// Errors of one connection, which say nothing about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Counts connections closed at the limit, and says so in the log now and then.
#[derive(Default)]
struct Refused {
    since_logged: u64,
    logged: Option<Instant>,
}

impl Refused {
    fn one(&mut self, limit: usize) {
        self.since_logged += 1;
        if self
            .logged
            .is_none_or(|at| at.elapsed() >= REFUSED_LOG_EVERY)
        {
            tracing::warn!(
                refused = self.since_logged,
                "closed new HTTP connection(s): {limit} are open already"
            );
            self.since_logged = 0;
            self.logged = Some(Instant::now());
        }
    }
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;

    /// Longest any step of these tests waits before failing (not a bound being tested: the
    /// assertions are about what happens, never how fast).
    const PATIENCE: Duration = Duration::from_secs(20);

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(
            "https://git.example.com/fleet.git".into(),
            "main".into(),
            None,
        ))
    }

    /// A server on 127.0.0.1 for `router`; dropping the sender stops it.
    struct Server {
        address: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        async fn start(router: Router, limits: Limits) -> Server {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve(listener, router, limits, async move {
                let _ = stopped.await;
            }));
            Server {
                address,
                stop: Some(stop),
                task,
            }
        }

        async fn connect(&self) -> TcpStream {
            TcpStream::connect(self.address).await.unwrap()
        }

        /// One request on a new connection; the status code and the body.
        async fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
            let mut stream = self.connect().await;
            let raw = format!(
                "{method} {path} HTTP/1.1\r\nhost: cairn\r\nconnection: close\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(raw.as_bytes()).await.unwrap();
            let answer = read_until_closed(&mut stream)
                .await
                .expect("the server closes a `connection: close` connection");
            parse(&answer)
        }

        async fn stop(mut self) {
            drop(self.stop.take());
            tokio::time::timeout(PATIENCE, self.task)
                .await
                .expect("the server stops")
                .unwrap();
        }
    }

    /// Everything the server sends until it closes the connection (a reset counts as closed);
    /// None if it is still open after [`PATIENCE`].
    async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
        let mut received = Vec::new();
        let read = tokio::time::timeout(PATIENCE, async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        read.ok()
            .map(|()| String::from_utf8_lossy(&received).into_owned())
    }

    fn parse(answer: &str) -> (u16, String) {
        let code = answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        (code, body)
    }

    fn quick(header: Duration, request: Duration) -> Limits {
        Limits {
            header_read_timeout: header,
            request_timeout: request,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn a_slowloris_client_is_closed_after_the_header_timeout() {
        let limits = quick(Duration::from_millis(300), REQUEST_TIMEOUT);
        let server = Server::start(public_router(shared(), limits), limits).await;
        // Half a header, then nothing.
        let mut slow = server.connect().await;
        slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: cairn\r\nx-wait: ")
            .await
            .unwrap();
        let answer = read_until_closed(&mut slow)
            .await
            .expect("a half-sent header closes the connection");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer:?}"
        );
        // A connection that sends nothing at all is closed too.
        let mut idle = server.connect().await;
        assert!(
            read_until_closed(&mut idle).await.is_some(),
            "idle stays open"
        );
        // And a client that sends its header at once is served.
        assert_eq!(
            server.request("GET", "/healthz", "").await,
            (200, "ok\n".into())
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn a_kept_alive_connection_left_idle_is_closed_after_the_header_timeout() {
        let limits = quick(Duration::from_millis(300), REQUEST_TIMEOUT);
        let server = Server::start(public_router(shared(), limits), limits).await;
        let mut stream = server.connect().await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: cairn\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut stream)
            .await
            .expect("an idle kept-alive connection is closed");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_body_that_trickles_in_gets_408_and_the_connection_is_closed() {
        let limits = quick(HEADER_READ_TIMEOUT, Duration::from_millis(300));
        let server = Server::start(public_router(shared(), limits), limits).await;
        let mut stream = server.connect().await;
        stream
            .write_all(
                b"POST /webhook/github HTTP/1.1\r\nhost: cairn\r\ncontent-length: 100\r\n\r\n{\"ref\":",
            )
            .await
            .unwrap();
        let answer = read_until_closed(&mut stream)
            .await
            .expect("a slow body closes the connection");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_at_once() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let server = Server::start(public_router(shared(), limits), limits).await;
        // Two connections hold the two places (a header on its way, for HEADER_READ_TIMEOUT).
        let mut first = server.connect().await;
        first.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        let mut second = server.connect().await;
        second
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        // A third is closed without an answer, and the first two are still open.
        let mut third = server.connect().await;
        let _ = third
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: cairn\r\n\r\n")
            .await;
        let answer = read_until_closed(&mut third)
            .await
            .expect("a connection beyond the limit is closed");
        assert_eq!(answer, "", "closed before a byte is read");
        second
            .write_all(b"host: cairn\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut second).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        // A place freed is taken again.
        drop(first);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut next = server.connect().await;
            let _ = next
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: cairn\r\nconnection: close\r\n\r\n")
                .await;
            let answer = read_until_closed(&mut next).await.unwrap_or_default();
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the freed places are never reused"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn webhook_bodies_beyond_the_limit_get_503_before_they_are_read() {
        let limits = Limits {
            max_webhook_bodies: 1,
            ..Limits::default()
        };
        let server = Server::start(public_router(shared(), limits), limits).await;
        // One delivery whose body is on its way holds the only place.
        let mut slow = server.connect().await;
        slow.write_all(
            b"POST /webhook/github HTTP/1.1\r\nhost: cairn\r\ncontent-length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
        let deadline = Instant::now() + PATIENCE;
        let (code, body) = loop {
            let answer = server.request("POST", "/webhook/gitlab", "{}").await;
            if answer.0 == 503 || Instant::now() > deadline {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("too many webhook deliveries"), "{body}");
        // Health does not wait on webhooks.
        assert_eq!(server.request("GET", "/healthz", "").await.0, 200);
        drop(slow);
        server.stop().await;
    }

    #[tokio::test]
    async fn status_and_metrics_are_served_on_the_status_address_only() {
        let shared = shared();
        let limits = Limits::default();
        let public = Server::start(public_router(shared.clone(), limits), limits).await;
        let status = Server::start(status_router(shared, limits), limits).await;
        for path in ["/status", "/metrics"] {
            assert_eq!(public.request("GET", path, "").await.0, 404, "{path}");
            assert_eq!(status.request("GET", path, "").await.0, 200, "{path}");
        }
        let (code, body) = status.request("GET", "/status", "").await;
        assert_eq!(code, 200);
        let view: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(view["branch"], "main");
        for path in ["/webhook/github", "/webhook/gitlab"] {
            // No secret: refused, but served on the public address.
            assert_eq!(public.request("POST", path, "{}").await.0, 401, "{path}");
            assert_eq!(status.request("POST", path, "{}").await.0, 404, "{path}");
        }
        for server in [&public, &status] {
            assert_eq!(server.request("GET", "/healthz", "").await.0, 200);
            assert_eq!(server.request("GET", "/readyz", "").await.0, 503);
        }
        public.stop().await;
        status.stop().await;
    }

    #[tokio::test]
    async fn a_body_over_the_limit_gets_413() {
        let limits = Limits::default();
        let server = Server::start(public_router(shared(), limits), limits).await;
        let mut stream = server.connect().await;
        let header = format!(
            "POST /webhook/github HTTP/1.1\r\nhost: cairn\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        stream.write_all(header.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut stream).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_stops_accepting() {
        let limits = Limits::default();
        let server = Server::start(public_router(shared(), limits), limits).await;
        let address = server.address;
        let mut idle = server.connect().await;
        idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: cairn\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(idle.read(&mut buf).await.unwrap() > 0, "answered");
        server.stop().await;
        assert!(read_until_closed(&mut idle).await.is_some(), "still open");
        assert!(
            TcpStream::connect(address).await.is_err(),
            "still accepting"
        );
    }
}
