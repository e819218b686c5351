//! The conformance harness against the shared Mosquitto (127.0.0.1:1883), once on MQTT 5
//! and once on MQTT 3.1.1, each with the capabilities that version really has.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ruststream::conformance::{Capabilities, ConformanceTarget, Mode, Suite};
use ruststream::kit::live::{ServerProcess, run_id};
use ruststream_mqtt::{MqttBroker, MqttSource, Protocol, Qos};

struct Target {
    server: (String, u16),
    protocol: Protocol,
    qos: Qos,
    /// A private server with a user and password, for the credential checks.
    private: Option<ServerProcess>,
}

const USER: &str = "conformance";
const PASSWORD: &str = "c0nf-secret-pw";

impl ConformanceTarget for Target {
    type Broker = MqttBroker;
    type Source = MqttSource;
    type Publisher = MqttBroker;

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = Capabilities::baseline();
        // One connection's QoS 1 publishes to one topic reach a subscriber in order.
        capabilities.ordering = true;
        capabilities.fan_out = true;
        // `$share/<group>/<filter>`.
        capabilities.competing_consumers = true;
        // Not declared: a group is a shared subscription of clean sessions, gone when its
        // last member disconnects (persistent sessions are tested on their own, by client
        // id, in `persistent_session.rs`).
        capabilities.durable = false;
        // MQTT 5 user properties are an ordered list that may repeat a name.
        capabilities.header_order = self.protocol == Protocol::V5;
        capabilities.duplicate_headers = self.protocol == Protocol::V5;
        capabilities.max_payload = 1024 * 1024;
        capabilities.quiet_period = Duration::from_millis(300);
        // Not declared: the harness resumes a group from new connections (new client
        // ids), and an MQTT session is found again only by its client id; a restart with
        // the same client id is `server_restart.rs`.
        capabilities.server_restart = false;
        capabilities
    }

    async fn broker(&self) -> MqttBroker {
        static N: AtomicU64 = AtomicU64::new(0);
        let client = format!("rsconf-{}-{}", run_id(), N.fetch_add(1, Ordering::Relaxed));
        let config = support::config(&self.server, self.protocol, &client);
        MqttBroker::new(match self.private {
            Some(_) => config.credentials(USER, PASSWORD),
            None => config,
        })
    }

    fn source(&self, name: &str, mode: Mode) -> MqttSource {
        match mode {
            Mode::FanOut => MqttSource::new(name).qos(self.qos),
            Mode::Group(group) => MqttSource::new(name).shared(group).qos(self.qos),
        }
    }

    fn publisher(&self, broker: &MqttBroker) -> MqttBroker {
        broker.clone()
    }

    fn credentials(&self) -> Vec<String> {
        match self.private {
            Some(_) => vec![PASSWORD.to_owned()],
            None => Vec::new(),
        }
    }

    /// `/`-separated topics: `conformance/<check>/<run>/<n>`.
    fn fresh_name(&self, check: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        format!(
            "conformance/{check}/{}/{}",
            run_id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_passes_the_conformance_suite() {
    let Some(server) = support::shared_server("mqtt5_passes_the_conformance_suite").await else {
        return;
    };
    Suite::new(Target {
        server,
        protocol: Protocol::V5,
        qos: Qos::AtLeastOnce,
        private: None,
    })
    .with_request_reply()
    .with_describe_server()
    .run()
    .await;
}

/// The checks that hold more than 20 messages unsettled at once.
const MANY_UNSETTLED: [&str; 2] = [
    "ordering_is_kept_per_name",
    "concurrent_publishers_lose_nothing",
];

/// On MQTT 3.1.1 Mosquitto lets a client hold at most `max_inflight_messages` (20 by
/// default) unacknowledged QoS 1 and 2 messages; the next wait until one is settled. So
/// every check runs at QoS 1 except the two that hold 100 messages unsettled, which run at
/// QoS 0 (below). On MQTT 5 the client's receive maximum (100 here) is the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt311_passes_the_conformance_suite() {
    let Some(server) = support::shared_server("mqtt311_passes_the_conformance_suite").await else {
        return;
    };
    let suite = Suite::new(Target {
        server,
        protocol: Protocol::V311,
        qos: Qos::AtLeastOnce,
        private: None,
    })
    .with_describe_server();
    let checks: Vec<&str> = suite
        .checks()
        .into_iter()
        .filter(|check| !MANY_UNSETTLED.contains(check))
        .collect();
    suite.only(checks.join(",")).run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt311_at_qos0_keeps_order_and_loses_nothing_with_many_unsettled() {
    let test = "mqtt311_at_qos0_keeps_order_and_loses_nothing_with_many_unsettled";
    let Some(server) = support::shared_server(test).await else {
        return;
    };
    Suite::new(Target {
        server,
        protocol: Protocol::V311,
        qos: Qos::AtMostOnce,
        private: None,
    })
    .only(MANY_UNSETTLED.join(","))
    .run()
    .await;
}

/// MQTT 5 on a private Mosquitto that requires a password: every check, with the
/// password declared as a credential no server description or error may show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_with_a_password_passes_and_never_shows_it() {
    let test = "mqtt5_with_a_password_passes_and_never_shows_it";
    let Some(server) = support::private_server_with(test, Some((USER, PASSWORD))).await else {
        return;
    };
    Suite::new(Target {
        server: ("127.0.0.1".to_owned(), server.port()),
        protocol: Protocol::V5,
        qos: Qos::AtLeastOnce,
        private: Some(server),
    })
    .with_request_reply()
    .with_describe_server()
    .run()
    .await;
}
