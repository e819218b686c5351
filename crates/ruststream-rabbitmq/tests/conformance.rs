//! The conformance harness against RabbitMQ: classic and quorum queues on the shared
//! server at 127.0.0.1:5672, and the server-restart and credential checks on a private
//! node the test starts and restarts.
//!
//! Every check publishes to a topic exchange of the run with the check's name as routing
//! key; a `Mode::FanOut` subscriber is an exclusive server-named queue bound to it, a
//! `Mode::Group` a durable queue named after the group (deleted by the server after a
//! minute unused), bound to it.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ruststream::Broker;
use ruststream::conformance::{Capabilities, ConformanceTarget, Mode, Report, Suite};
use ruststream::kit::live::{CleanUp, fresh_name};
use ruststream_rabbitmq::{Config, RabbitBroker, RabbitExchange, RabbitPublisher, RabbitQueue};
use support::{PRIVATE_PASSWORD, PRIVATE_USER, PrivateNode};

struct Target {
    url: String,
    auth: bool,
    exchange: String,
    quorum: bool,
    node: Option<Arc<PrivateNode>>,
    /// The durable queues the checks declared, deleted after the run.
    queues: Arc<Mutex<BTreeSet<String>>>,
}

impl Target {
    fn new(url: String, quorum: bool, node: Option<Arc<PrivateNode>>) -> Self {
        Self {
            url,
            auth: node.is_some(),
            exchange: fresh_name("rsconf"),
            quorum,
            node,
            queues: Arc::default(),
        }
    }

    fn config(&self) -> Config {
        let config = Config::new(&self.url)
            .connection_name("ruststream-rabbitmq-conformance")
            .connection_timeout(Duration::from_secs(3))
            .shutdown_timeout(Duration::from_secs(3))
            // The checks hold up to 100 unsettled messages per subscriber.
            .prefetch(1000);
        if self.auth {
            config.credentials(PRIVATE_USER, PRIVATE_PASSWORD)
        } else {
            config
        }
    }
}

impl ConformanceTarget for Target {
    type Broker = RabbitBroker;
    type Source = RabbitQueue;
    type Publisher = RabbitPublisher;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ordering: true,
            fan_out: true,
            competing_consumers: true,
            durable: true,
            server_restart: self.node.is_some(),
            // The AMQP headers table is a map: names come back sorted, one value each.
            header_order: false,
            duplicate_headers: false,
            max_payload: 1_000_000,
            receive_timeout: Duration::from_secs(5),
            quiet_period: Duration::from_millis(300),
            nack_delay: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
            check_timeout: Duration::from_secs(120),
        }
    }

    async fn broker(&self) -> RabbitBroker {
        RabbitBroker::new(self.config())
    }

    fn source(&self, name: &str, mode: Mode) -> RabbitQueue {
        let exchange = RabbitExchange::topic(&self.exchange);
        match mode {
            Mode::FanOut => RabbitQueue::new("").exclusive().bind(exchange, name),
            Mode::Group(group) => {
                self.queues.lock().insert(group.clone());
                let queue = RabbitQueue::new(group)
                    .expires(Duration::from_secs(60))
                    .bind(exchange, name);
                if self.quorum { queue.quorum() } else { queue }
            }
        }
    }

    /// Not mandatory: the harness publishes to names nobody subscribes to and expects
    /// the broker to take the message, where a mandatory publish is returned
    /// (tests/rabbitmq.rs checks that it is).
    fn publisher(&self, broker: &RabbitBroker) -> RabbitPublisher {
        broker
            .publisher(RabbitExchange::topic(&self.exchange))
            .mandatory(false)
    }

    async fn restart_server(&self) -> Result<bool, String> {
        match &self.node {
            Some(node) => {
                // Graceful: the node writes its queues' acks on the way down (after a
                // SIGKILL an acked message may come back; tests/server_restart.rs shows
                // that nothing is lost then).
                node.restart_gracefully().await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn credentials(&self) -> Vec<String> {
        if self.auth {
            vec![PRIVATE_PASSWORD.to_owned()]
        } else {
            Vec::new()
        }
    }
}

/// Deletes the run's exchange, its durable queues and their delay queues (the
/// exclusive ones went with their connections).
fn clean_up(config: Config, exchange: String, queues: Arc<Mutex<BTreeSet<String>>>) -> CleanUp {
    CleanUp::new(move || async move {
        let broker = RabbitBroker::new(config);
        if broker.connect().await.is_ok() {
            let queues = std::mem::take(&mut *queues.lock());
            for queue in queues {
                for name in [queue.clone(), format!("ruststream.delay.1000ms.{queue}")] {
                    if let Err(error) = broker.delete_queue(&name).await {
                        eprintln!("clean-up: deleting queue {name} failed: {error}");
                    }
                }
            }
            if let Err(error) = broker.delete_exchange(&exchange).await {
                eprintln!("clean-up: deleting exchange {exchange} failed: {error}");
            }
            broker.shutdown().await.ok();
        }
    })
}

fn assert_passed(report: &Report) {
    eprintln!("{report}");
    let (passed, failed, skipped) = report.counts();
    assert_eq!(
        failed, 0,
        "{failed} check(s) failed ({passed} passed, {skipped} skipped):\n{report}"
    );
}

async fn run(target: Target) -> Report {
    let guard = clean_up(
        target.config(),
        target.exchange.clone(),
        Arc::clone(&target.queues),
    );
    let report = Suite::new(target)
        .with_batches()
        .with_transactions()
        .with_request_reply()
        .with_describe_server()
        .run_report()
        .await;
    guard.run().await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_queues_pass_every_declared_suite() {
    let Some(url) = support::shared_server("classic_queues_pass_every_declared_suite").await else {
        return;
    };
    assert_passed(&run(Target::new(url, false, None)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_pass_every_declared_suite() {
    let Some(url) = support::shared_server("quorum_queues_pass_every_declared_suite").await else {
        return;
    };
    assert_passed(&run(Target::new(url, true, None)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_node_with_credentials_passes_with_a_server_restart() {
    let test = "a_private_node_with_credentials_passes_with_a_server_restart";
    let Some(node) = PrivateNode::start(test).await else {
        return;
    };
    let node = Arc::new(node);
    assert_passed(&run(Target::new(node.url(), false, Some(Arc::clone(&node)))).await);
}
