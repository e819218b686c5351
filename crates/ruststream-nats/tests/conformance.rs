//! The conformance harness against real NATS servers: core subjects (queue groups for
//! groups) and JetStream (durable pull consumers for groups) on the shared server at
//! 127.0.0.1:4222, and the server-restart and credential checks on a private server the
//! test starts, kills and restarts.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ruststream::Broker;
use ruststream::conformance::{Capabilities, ConformanceTarget, Mode, Report, Suite};
use ruststream::kit::live::{CleanUp, fresh_name};
use ruststream_nats::{Config, JetStreamPublisher, NatsBroker, NatsSource};
use support::PrivateServer;

/// How long JetStream waits for an ack in these tests (the receive timeout exceeds it).
const ACK_WAIT: Duration = Duration::from_secs(2);

fn config(url: &str, auth: Option<&(String, String)>) -> Config {
    let config = Config::new(url)
        .name("ruststream-nats-conformance")
        .connection_timeout(Duration::from_secs(3))
        .shutdown_timeout(Duration::from_secs(3))
        .ack_timeout(Duration::from_secs(3));
    match auth {
        Some((user, password)) => config.user_and_password(user, password),
        None => config,
    }
}

/// Core NATS: subjects, queue groups for `Mode::Group`.
struct CoreTarget {
    url: String,
    auth: Option<(String, String)>,
}

impl ConformanceTarget for CoreTarget {
    type Broker = NatsBroker;
    type Source = NatsSource;
    type Publisher = NatsBroker;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ordering: true,
            fan_out: true,
            // Queue groups.
            competing_consumers: true,
            durable: false,
            server_restart: false,
            // The client keeps headers in a hash map: values of one name keep their
            // order, names do not.
            header_order: false,
            duplicate_headers: true,
            max_payload: 1_000_000,
            receive_timeout: Duration::from_secs(5),
            quiet_period: Duration::from_millis(300),
            shutdown_timeout: Duration::from_secs(5),
            check_timeout: Duration::from_secs(60),
            ..Capabilities::baseline()
        }
    }

    async fn broker(&self) -> NatsBroker {
        NatsBroker::new(config(&self.url, self.auth.as_ref()))
    }

    fn source(&self, name: &str, mode: Mode) -> NatsSource {
        match mode {
            Mode::FanOut => NatsSource::new(name),
            Mode::Group(group) => NatsSource::new(name).queue_group(group),
        }
    }

    fn publisher(&self, broker: &NatsBroker) -> NatsBroker {
        broker.clone()
    }

    fn credentials(&self) -> Vec<String> {
        self.auth
            .iter()
            .map(|(_, password)| password.clone())
            .collect()
    }
}

/// JetStream: one stream per run capturing `rsconf.<run>.>`; durable pull consumers for
/// `Mode::Group`, ephemeral ones for `Mode::FanOut`; acknowledged publishes.
struct JetStreamTarget {
    url: String,
    auth: Option<(String, String)>,
    run: String,
    stream: String,
    server: Option<Arc<PrivateServer>>,
}

impl JetStreamTarget {
    fn new(url: String, server: Option<Arc<PrivateServer>>) -> Self {
        let run = fresh_name("run");
        Self {
            url,
            auth: server.as_ref().and_then(|s| s.auth.clone()),
            stream: format!("RSCONF_{run}"),
            run,
            server,
        }
    }

    fn new_broker(&self) -> NatsBroker {
        NatsBroker::new(config(&self.url, self.auth.as_ref()))
    }

    /// Creates the run's stream.
    async fn create_stream(&self) {
        let broker = self.new_broker();
        broker
            .connect()
            .await
            .expect("connect to create the stream");
        broker
            .jetstream()
            .unwrap()
            .create_stream(async_nats::jetstream::stream::Config {
                name: self.stream.clone(),
                subjects: vec![format!("rsconf.{}.>", self.run)],
                ..Default::default()
            })
            .await
            .expect("create the run's stream");
        broker.shutdown().await.ok();
    }
}

/// Deletes the run's stream and with it every consumer the checks created.
async fn delete_stream(url: &str, stream: &str) {
    let broker = NatsBroker::new(config(url, None));
    if broker.connect().await.is_ok() {
        if let Ok(context) = broker.jetstream()
            && let Err(error) = context.delete_stream(stream).await
        {
            eprintln!("clean-up: deleting stream {stream} failed: {error}");
        }
        broker.shutdown().await.ok();
    }
}

impl ConformanceTarget for JetStreamTarget {
    type Broker = NatsBroker;
    type Source = NatsSource;
    type Publisher = JetStreamPublisher;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ordering: true,
            // Each fan-out subscriber has a consumer of its own.
            fan_out: true,
            // Members of a durable consumer share it.
            competing_consumers: true,
            durable: true,
            server_restart: self.server.is_some(),
            header_order: false,
            duplicate_headers: true,
            max_payload: 1_000_000,
            // Longer than the ack wait: an unsettled message comes back after it.
            receive_timeout: Duration::from_secs(6),
            quiet_period: Duration::from_millis(500),
            nack_delay: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
            check_timeout: Duration::from_secs(90),
        }
    }

    async fn broker(&self) -> NatsBroker {
        self.new_broker()
    }

    fn source(&self, name: &str, mode: Mode) -> NatsSource {
        let source = NatsSource::new(name)
            .stream(&self.stream)
            .ack_wait(ACK_WAIT)
            .batch(32);
        match mode {
            Mode::FanOut => source,
            Mode::Group(group) => source.durable(group),
        }
    }

    fn publisher(&self, broker: &NatsBroker) -> JetStreamPublisher {
        broker.jetstream_publisher()
    }

    fn fresh_name(&self, check: &str) -> String {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("rsconf.{}.{check}.{n}", self.run)
    }

    async fn restart_server(&self) -> Result<bool, String> {
        match &self.server {
            Some(server) => {
                // Graceful: the server writes its consumers' ack state on the way down.
                // (After a SIGKILL, JetStream may redeliver a message acked just before;
                // tests/server_restart.rs shows nothing is lost then.)
                server.restart_gracefully().await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn credentials(&self) -> Vec<String> {
        self.auth
            .iter()
            .map(|(_, password)| password.clone())
            .collect()
    }
}

fn assert_passed(report: &Report) {
    eprintln!("{report}");
    let (passed, failed, skipped) = report.counts();
    assert_eq!(
        failed, 0,
        "{failed} check(s) failed ({passed} passed, {skipped} skipped):\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_nats_passes_every_declared_suite() {
    let Some(url) = support::shared_server("core_nats_passes_every_declared_suite").await else {
        return;
    };
    let report = Suite::new(CoreTarget { url, auth: None })
        .with_batches()
        .with_request_reply()
        .with_describe_server()
        .run_report()
        .await;
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_passes_every_declared_suite() {
    let Some(url) = support::shared_server("jetstream_passes_every_declared_suite").await else {
        return;
    };
    let target = JetStreamTarget::new(url.clone(), None);
    let stream = target.stream.clone();
    // Deletes the stream even when the suite panics.
    let clean_up = CleanUp::new(move || async move { delete_stream(&url, &stream).await });
    target.create_stream().await;
    let report = Suite::new(target)
        .with_batches()
        .with_describe_server()
        .run_report()
        .await;
    clean_up.run().await;
    assert_passed(&report);
}

/// On a private server with a user and password: the server restart, and no credential
/// in a description or an error, for core and JetStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_and_credentials_pass_on_a_private_server() {
    let test = "a_restarted_server_and_credentials_pass_on_a_private_server";
    let Some(server) = PrivateServer::start(test, Some(("conformance", "pr1vate-pa55"))).await
    else {
        return;
    };
    let server = Arc::new(server);
    let url = server.url();

    let core = Suite::new(CoreTarget {
        url: url.clone(),
        auth: server.auth.clone(),
    })
    .with_describe_server()
    .only("no_credentials,publish_after_shutdown,round_trip_keeps_payload")
    .run_report()
    .await;
    assert_passed(&core);

    let target = JetStreamTarget::new(url, Some(Arc::clone(&server)));
    target.create_stream().await;
    let jetstream = Suite::new(target)
        .with_describe_server()
        .only("server_restart,no_credentials,publish_after_shutdown,ack_consumes")
        .run_report()
        .await;
    assert_passed(&jetstream);
    assert!(
        jetstream
            .to_string()
            .contains("PASS server_restart_loses_nothing"),
        "{jetstream}"
    );
}
