//! The in-process mode (feature `testing`): MQTT topic matching without a server.

use std::sync::Arc;

use ruststream::testing::{TestBroker, TestClient};

use crate::asyncapi::server_spec;
use crate::broker::{Kind, MqttBroker};
use crate::config::{Config, Protocol};
use crate::topic::MqttTopics;

impl MqttBroker {
    /// An in-process broker: subscriptions, publishes and requests are routed by MQTT's
    /// topic rules (`+`, `#`, `$share/<group>/<filter>`, the `$`-topic rule) without a
    /// server, so a service's `fn app(broker: MqttBroker) -> App` runs under `TestApp`
    /// unchanged. Headers are checked as on MQTT 5. Settlement is recorded, not
    /// performed (core routing only: no sessions, QoS or retained messages).
    pub fn in_process() -> Self {
        Self::in_process_with(Config::new(Protocol::V5, "in-process", 1883, "in-process"))
    }

    /// An in-process broker that checks publishes as `config` would (its protocol
    /// version, its default QoS) and describes itself as `config`'s server.
    pub fn in_process_with(config: Config) -> Self {
        let client = TestClient::new(MqttTopics).with_server(server_spec(&config));
        Self {
            kind: Kind::InProcess(client, Arc::new(config)),
        }
    }
}

/// In process, settled when the backlog is empty; live, by message ids.
impl TestBroker for MqttBroker {
    fn quiescence(&self) -> ruststream::testing::Quiescence {
        match &self.kind {
            Kind::InProcess(client, _) => client.quiescence(),
            Kind::Live(_) => ruststream::testing::Quiescence::MessageIds,
        }
    }
}
