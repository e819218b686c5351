//! The HTTP endpoint (feature `http`), through a real HTTP client against a real listener
//! on loopback: metrics, liveness, readiness that follows brokers and subscriptions, the
//! AsyncAPI document; and a password in a broker URL that never shows in metrics, logs or
//! anything the endpoint serves.
#![cfg(all(
    feature = "memory",
    feature = "http",
    feature = "metrics",
    feature = "asyncapi"
))]

#[path = "support/captured_logs.rs"]
mod captured_logs;
use captured_logs::Captured;

use std::net::SocketAddr;
use std::time::Duration;

use ruststream::memory::{MemoryBroker, MemoryError, MemorySubscriber};
use ruststream::prelude::*;
use ruststream::runtime::{
    App, AppError, FailurePolicy, Producer, Router, SubscriberDef, handler_fn,
};
use ruststream::{DescribeServer, ServerSpec};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
}

const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn router() -> Router<MemoryBroker> {
    Router::new().subscriber(
        SubscriberDef::new("orders.created", handler_fn(|_: Order| async {})).name("on_order"),
    )
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    get_with(addr, path, None).await
}

/// Status, content type and body of `GET path`.
async fn get_with(addr: SocketAddr, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let client = reqwest::Client::new();
    let mut request = client.get(format!("http://{addr}{path}"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("the endpoint answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

async fn eventually_status(addr: SocketAddr, path: &str, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (got, _, body) = get(addr, path).await;
        if got == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {status}; last {got}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_endpoint_serves_metrics_health_and_the_asyncapi_document() {
    let broker = MemoryBroker::new();
    let running = App::new("shop")
        .metrics()
        .http(loopback())
        .broker(broker.clone(), router())
        .start()
        .await
        .unwrap();
    let addr = running.http_addr().expect("the endpoint listens");
    assert_ne!(addr.port(), 0);

    let (status, _, body) = get(addr, "/health/live").await;
    assert_eq!((status, body.as_str()), (200, "live\n"));
    let (status, content_type, body) = get(addr, "/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ready"], true);
    assert_eq!(report["brokers"][0]["name"], "memory");
    assert_eq!(
        report["subscriptions"][0]["name"],
        "on_order (orders.created)"
    );

    Producer::new(broker.clone())
        .publish("orders.created", &Order { id: 1 })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let (status, content_type, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        if body.contains(r#"status="acked"} 1"#) {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(body.contains("# TYPE ruststream_received_messages_total counter"));
    assert!(body.contains(r#"app="shop""#));
    let (status, content_type, body) = get_with(
        addr,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/openmetrics-text"));
    assert!(body.ends_with("# EOF\n"));

    let (status, content_type, body) = get(addr, "/asyncapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(document["info"]["title"], "shop");
    assert!(body.contains("orders.created"));
    let (status, content_type, body) = get(addr, "/asyncapi.yaml").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/yaml");
    assert!(
        body.contains("asyncapi:") && body.contains("orders.created"),
        "{body}"
    );
    let (status, content_type, body) = get(addr, "/asyncapi").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(body.contains("orders.created"));
    let (status, _, _) = get(addr, "/nothing").await;
    assert_eq!(status, 404);

    running.shutdown().await.unwrap();
    let stopped = reqwest::Client::new()
        .get(format!("http://{addr}/health/live"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(stopped.is_err(), "the endpoint stops with the app");
}

#[tokio::test]
async fn readiness_follows_the_brokers_and_the_subscriptions() {
    let broker = MemoryBroker::new();
    let running = App::new("shop")
        .http(loopback())
        .broker(broker.clone(), router())
        .start()
        .await
        .unwrap();
    let addr = running.http_addr().unwrap();
    assert!(running.health().is_ready());
    eventually_status(addr, "/health/ready", 200).await;

    // The connection drops: the subscription ends and cannot subscribe again.
    broker.shutdown().await.unwrap();
    let body = eventually_status(addr, "/health/ready", 503).await;
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ready"], false);
    assert_eq!(report["subscriptions"][0]["up"], false);
    let (status, _, _) = get(addr, "/health/live").await;
    assert_eq!(status, 200, "not ready, still live");
    // No metrics were asked for.
    let (status, _, _) = get(addr, "/metrics").await;
    assert_eq!(status, 404);

    // It comes back: the runtime subscribes again and the app is ready again.
    broker.connect().await.unwrap();
    eventually_status(addr, "/health/ready", 200).await;
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_address_in_use_fails_the_start() {
    let taken = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = taken.local_addr().unwrap();
    let error = App::new("shop")
        .http(addr)
        .broker(MemoryBroker::new(), router())
        .start()
        .await
        .unwrap_err();
    assert!(matches!(error, AppError::Http { .. }), "{error}");
}

/// The password of the broker URL in the test below.
const PASSWORD: &str = "s3cr3t-Pa55";

/// A broker configured from a URL with a password in it: the memory broker underneath,
/// the URL kept (and shown by `Debug`, as a real config would be unless it redacts).
#[derive(Debug, Clone)]
struct SecretBroker {
    url: String,
    inner: MemoryBroker,
}

impl Broker for SecretBroker {
    type Error = MemoryError;

    async fn connect(&self) -> Result<(), MemoryError> {
        self.inner.connect().await
    }

    async fn shutdown(&self) -> Result<(), MemoryError> {
        self.inner.shutdown().await
    }
}

impl Publisher for SecretBroker {
    type Error = MemoryError;

    async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), MemoryError> {
        self.inner.publish(msg).await
    }
}

impl Subscribe for SecretBroker {
    type Subscriber = MemorySubscriber;

    async fn subscribe(&self, name: &str) -> Result<MemorySubscriber, MemoryError> {
        self.inner.subscribe(name).await
    }
}

impl DescribeServer for SecretBroker {
    fn describe_server(&self) -> ServerSpec {
        ServerSpec::from_url(None, &self.url)
    }
}

#[tokio::test]
async fn a_password_in_the_broker_url_never_reaches_metrics_logs_or_the_endpoint() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    // The test's runtime has one thread: the app's tasks log here too.
    let _default = tracing::subscriber::set_default(subscriber);

    let url = format!("nats://orders-svc:{PASSWORD}@broker.internal:4222/prod");
    assert_eq!(
        ServerSpec::from_url(None, &url).host,
        "broker.internal:4222"
    );
    let broker = SecretBroker {
        url,
        inner: MemoryBroker::new(),
    };
    let router = Router::new()
        .subscriber(
            SubscriberDef::new("orders.created", handler_fn(|_: Order| async {}))
                .publish_to("orders.audited"),
        )
        .subscriber(
            SubscriberDef::new(
                "orders.failing",
                handler_fn(|_: Order| async { Err::<(), _>(std::io::Error::other("no")) }),
            )
            .on_error(FailurePolicy::Drop),
        );
    let running = App::new("shop")
        .metrics()
        .http(loopback())
        .broker(broker.clone(), router)
        .start()
        .await
        .unwrap();
    let addr = running.http_addr().unwrap();
    let producer = Producer::new(broker.clone());
    producer
        .publish("orders.created", &Order { id: 1 })
        .await
        .unwrap();
    producer
        .publish("orders.failing", &Order { id: 2 })
        .await
        .unwrap();
    broker
        .publish(OutgoingMessage::new("orders.created", b"not json"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let metrics = loop {
        let (_, _, body) = get(addr, "/metrics").await;
        if body.contains(
            r#"handler="orders.failing",destination="orders.failing",status="rejected"} 1"#,
        ) && body.contains(
            r#"handler="orders.created",destination="orders.created",status="rejected"} 1"#,
        ) {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut served = vec![metrics];
    for path in [
        "/health/ready",
        "/asyncapi",
        "/asyncapi.json",
        "/asyncapi.yaml",
    ] {
        served.push(get(addr, path).await.2);
    }
    running.shutdown().await.unwrap();

    assert!(served[0].contains(r#"broker="secret""#), "{}", served[0]);
    for body in &served {
        assert!(!body.contains(PASSWORD), "a password was served:\n{body}");
        assert!(
            !body.contains("orders-svc:"),
            "a user name was served:\n{body}"
        );
    }
    let logs = logs.text();
    assert!(
        logs.contains("the handler failed"),
        "the logs were captured:\n{logs}"
    );
    assert!(!logs.contains(PASSWORD), "a password was logged:\n{logs}");
}
