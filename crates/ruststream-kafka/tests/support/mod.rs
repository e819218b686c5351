//! What the live tests share, on `ruststream::kit::live`: the shared Kafka-compatible
//! server (tansu, started by `scripts/services kafka`), the test config, and clean-up
//! of what a test created.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ruststream::Broker;
use ruststream::kit::live::{CleanUp, LiveServer};
use ruststream_kafka::{Config, KafkaBroker};

/// The shared test server (`RUSTSTREAM_KAFKA_URL` overrides the address).
pub const KAFKA: LiveServer = LiveServer {
    name: "Kafka (tansu)",
    url_var: "RUSTSTREAM_KAFKA_URL",
    default_url: "127.0.0.1:9092",
    start_command: "scripts/services kafka",
};

/// The address of the shared server, or `None` (skipped or failed, as
/// `LiveServer::find` says).
pub async fn shared_server(test: &str) -> Option<String> {
    KAFKA.find(test).await
}

/// A test config: short session timeout (groups join faster) and commit interval.
pub fn config(servers: &str) -> Config {
    Config::new(servers)
        .client_id("ruststream-kafka-tests")
        .session_timeout(Duration::from_secs(6))
        .commit_interval(Duration::from_millis(200))
        .operation_timeout(Duration::from_secs(10))
        .shutdown_timeout(Duration::from_secs(5))
        .delivery_timeout(Duration::from_secs(10))
}

/// Topics and groups a test created, deleted at the end.
#[derive(Clone, Default)]
pub struct Created {
    pub topics: Arc<Mutex<Vec<String>>>,
    pub groups: Arc<Mutex<Vec<String>>>,
}

impl Created {
    pub fn topic(&self, topic: impl Into<String>) -> String {
        let topic = topic.into();
        self.topics.lock().push(topic.clone());
        topic
    }

    pub fn group(&self, group: impl Into<String>) -> String {
        let group = group.into();
        self.groups.lock().push(group.clone());
        group
    }

    /// A guard that deletes them when dropped, so a test that panics cleans up too
    /// (after a successful [`delete`](Self::delete) it has nothing left to do).
    pub fn on_drop(&self, servers: &str) -> CleanUp {
        let created = self.clone();
        let servers = servers.to_owned();
        CleanUp::new(move || async move { created.delete(&servers).await })
    }

    /// Deletes them on a new connection to `servers`.
    pub async fn delete(&self, servers: &str) {
        let topics = std::mem::take(&mut *self.topics.lock());
        let groups = std::mem::take(&mut *self.groups.lock());
        let broker = KafkaBroker::new(config(servers));
        if broker.connect().await.is_err() {
            return;
        }
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        if !topics.is_empty()
            && let Err(error) = broker.delete_topics(&topics).await
        {
            eprintln!("clean-up: deleting {} topics failed: {error}", topics.len());
        }
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        if !groups.is_empty()
            && let Err(error) = broker.delete_groups(&groups).await
        {
            eprintln!("clean-up: deleting {} groups failed: {error}", groups.len());
        }
        let _ = broker.shutdown().await;
    }
}
