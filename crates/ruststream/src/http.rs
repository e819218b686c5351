//! The service's HTTP endpoint (feature `http`): metrics, health probes and the AsyncAPI
//! document, served with axum.
//!
//! | path | what | status |
//! |---|---|---|
//! | `/metrics` | the Prometheus text exposition (feature `metrics`, with [`App::metrics`](crate::runtime::App::metrics)); OpenMetrics when the `Accept` header asks for it | 200; 404 without metrics |
//! | `/health/live` | the process answers | 200 |
//! | `/health/ready` | every broker connected and every subscription consuming ([`Health`]); a JSON [`HealthReport`](crate::runtime::HealthReport) | 200 ready, 503 not |
//! | `/asyncapi` | the AsyncAPI document as a page, readable offline (feature `asyncapi`) | 200; 404 without it |
//! | `/asyncapi.json` | the same as JSON | 200; 404 without it |
//! | `/asyncapi.yaml` | the same as YAML | 200; 404 without it |
//!
//! Turn it on with [`App::http`](crate::runtime::App::http); or build an [`Endpoint`]
//! and mount [`Endpoint::router`] in an axum app of your own.
//!
//! Nothing it serves carries a credential: broker labels and health components name the
//! messaging system, never a URL, and the AsyncAPI servers are stripped of user names and
//! passwords.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runtime::Health;

/// What the endpoint serves: health, and optionally metrics and an AsyncAPI document.
#[derive(Clone)]
pub struct Endpoint {
    health: Health,
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::Metrics>,
    #[cfg(feature = "asyncapi")]
    asyncapi: Option<Arc<crate::asyncapi::Document>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint serving `health` (a running app's [`RunningApp::health`](crate::runtime::RunningApp::health)).
    pub fn new(health: Health) -> Self {
        Self {
            health,
            #[cfg(feature = "metrics")]
            metrics: None,
            #[cfg(feature = "asyncapi")]
            asyncapi: None,
        }
    }

    /// Serves `metrics` at `/metrics`.
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Serves `document` at `/asyncapi`, `/asyncapi.json` and `/asyncapi.yaml`.
    #[cfg(feature = "asyncapi")]
    #[must_use]
    pub fn asyncapi(mut self, document: crate::asyncapi::Document) -> Self {
        self.asyncapi = Some(Arc::new(document));
        self
    }

    /// The routes, as an axum router to serve or to nest in another.
    pub fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/health/live", get(live))
            .route("/health/ready", get(ready))
            .route("/asyncapi", get(asyncapi_page))
            .route("/asyncapi.json", get(asyncapi_json))
            .route("/asyncapi.yaml", get(asyncapi_yaml))
            .with_state(Arc::new(self))
    }
}

type Shared = State<Arc<Endpoint>>;

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what}\n")).into_response()
}

fn text(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[cfg_attr(not(feature = "metrics"), allow(clippy::unused_async))]
async fn metrics(State(endpoint): Shared, headers: HeaderMap) -> Response {
    #[cfg(feature = "metrics")]
    if let Some(metrics) = &endpoint.metrics {
        // OpenMetrics for the scrapers that ask for it, the Prometheus text format else.
        let openmetrics = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains("application/openmetrics-text"));
        let encoded = if openmetrics {
            metrics
                .encode_openmetrics()
                .map(|body| (crate::metrics::OPENMETRICS_CONTENT_TYPE, body))
        } else {
            metrics
                .encode()
                .map(|body| (crate::metrics::CONTENT_TYPE, body))
        };
        return match encoded {
            Ok((content_type, body)) => text(content_type, body),
            Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
        };
    }
    let _ = (endpoint, headers);
    not_found("no metrics: the app records none (App::metrics, feature `metrics`)")
}

async fn live() -> Response {
    text("text/plain; charset=utf-8", "live\n".to_owned())
}

async fn ready(State(endpoint): Shared) -> Response {
    let report = endpoint.health.report();
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string_pretty(&report).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The AsyncAPI document, serialized by `render`.
#[cfg(feature = "asyncapi")]
fn asyncapi_with(
    endpoint: &Endpoint,
    content_type: &'static str,
    render: impl FnOnce(&crate::asyncapi::Document) -> Result<String, crate::asyncapi::AsyncApiError>,
) -> Response {
    let Some(document) = &endpoint.asyncapi else {
        return not_found("no AsyncAPI document");
    };
    match render(document) {
        Ok(body) => text(content_type, body),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
    }
}

#[cfg_attr(not(feature = "asyncapi"), allow(clippy::unused_async))]
async fn asyncapi_page(State(endpoint): Shared) -> Response {
    #[cfg(feature = "asyncapi")]
    return asyncapi_with(&endpoint, "text/html; charset=utf-8", |document| {
        Ok(crate::asyncapi::render_html(document))
    });
    #[cfg(not(feature = "asyncapi"))]
    {
        let _ = endpoint;
        not_found("no AsyncAPI document: feature `asyncapi` is off")
    }
}

#[cfg_attr(not(feature = "asyncapi"), allow(clippy::unused_async))]
async fn asyncapi_json(State(endpoint): Shared) -> Response {
    #[cfg(feature = "asyncapi")]
    return asyncapi_with(&endpoint, "application/json", |document| document.to_json());
    #[cfg(not(feature = "asyncapi"))]
    {
        let _ = endpoint;
        not_found("no AsyncAPI document: feature `asyncapi` is off")
    }
}

#[cfg_attr(not(feature = "asyncapi"), allow(clippy::unused_async))]
async fn asyncapi_yaml(State(endpoint): Shared) -> Response {
    #[cfg(feature = "asyncapi")]
    return asyncapi_with(&endpoint, "application/yaml", |document| document.to_yaml());
    #[cfg(not(feature = "asyncapi"))]
    {
        let _ = endpoint;
        not_found("no AsyncAPI document: feature `asyncapi` is off")
    }
}

/// A running endpoint; stops serving when dropped (or [`stop`](Self::stop)ped).
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on `addr` and serves `endpoint` on the current tokio runtime.
    pub async fn bind(addr: SocketAddr, endpoint: Endpoint) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let serve = axum::serve(listener, endpoint.router())
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future();
        let task = tokio::spawn(async move {
            if let Err(error) = serve.await {
                tracing::error!(%error, "the HTTP endpoint failed");
            }
        });
        Ok(Self {
            local_addr,
            stop,
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening and waits for open requests to finish.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
