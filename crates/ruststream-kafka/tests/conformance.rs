//! The conformance harness against the shared Kafka-compatible server (tansu on
//! 127.0.0.1:9092, `scripts/services kafka`): consumer groups for `Mode::Group`, a
//! group of its own per fan-out subscriber, retries through the retry topic.

mod support;

use std::time::Duration;

use ruststream::conformance::{Capabilities, ConformanceTarget, Mode, Report, Suite};
use ruststream::kit::live::fresh_name;
use ruststream_kafka::{Config, KafkaBroker, KafkaSource, KafkaTransactionalPublisher, StartFrom};
use support::Created;

struct KafkaTarget {
    servers: String,
    created: Created,
    sasl_password: Option<String>,
}

impl KafkaTarget {
    fn config(&self) -> Config {
        let config = support::config(&self.servers);
        match &self.sasl_password {
            Some(password) => config.secret_property("sasl.password", password.as_str()),
            None => config,
        }
    }
}

impl ConformanceTarget for KafkaTarget {
    type Broker = KafkaBroker;
    type Source = KafkaSource;
    type Publisher = KafkaBroker;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // One partition per topic here: one publisher's messages keep their order.
            ordering: true,
            // A group of its own per fan-out subscriber.
            fan_out: true,
            competing_consumers: true,
            // Committed offsets outlive the group's members.
            durable: true,
            // Memory storage: the shared server keeps nothing over a restart.
            server_restart: false,
            header_order: true,
            duplicate_headers: true,
            max_payload: 900_000,
            receive_timeout: Duration::from_secs(15),
            quiet_period: Duration::from_millis(1500),
            nack_delay: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(15),
            check_timeout: Duration::from_secs(120),
        }
    }

    async fn broker(&self) -> KafkaBroker {
        KafkaBroker::new(self.config())
    }

    fn source(&self, name: &str, mode: Mode) -> KafkaSource {
        let group = match mode {
            Mode::FanOut => fresh_name("fanout"),
            Mode::Group(group) => group.to_owned(),
        };
        let source = KafkaSource::new(name)
            .group(group.clone())
            .start_from(StartFrom::Earliest);
        self.created.topic(name);
        self.created.topic(source.retry_topic_in(&group));
        self.created.group(group);
        source
    }

    fn publisher(&self, broker: &KafkaBroker) -> KafkaBroker {
        broker.clone()
    }

    fn fresh_name(&self, check: &str) -> String {
        fresh_name(&format!("rsconf.{check}")).replace("_", ".")
    }

    fn credentials(&self) -> Vec<String> {
        self.sasl_password.iter().cloned().collect()
    }
}

/// The same server and descriptors, publishing through Kafka transactions (a
/// transactional id of its own per publisher).
struct TransactionTarget(KafkaTarget);

impl ConformanceTarget for TransactionTarget {
    type Broker = KafkaBroker;
    type Source = KafkaSource;
    type Publisher = KafkaTransactionalPublisher;

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    async fn broker(&self) -> KafkaBroker {
        self.0.broker().await
    }

    fn source(&self, name: &str, mode: Mode) -> KafkaSource {
        self.0.source(name, mode)
    }

    fn publisher(&self, broker: &KafkaBroker) -> KafkaTransactionalPublisher {
        broker
            .transactional(&fresh_name("rsconf-tx"))
            .expect("a transactional producer")
    }

    fn fresh_name(&self, check: &str) -> String {
        self.0.fresh_name(check)
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
async fn kafka_passes_every_declared_suite() {
    let Some(servers) = support::shared_server("kafka_passes_every_declared_suite").await else {
        return;
    };
    let created = Created::default();
    let _clean_up = created.on_drop(&servers);
    let target = KafkaTarget {
        servers: servers.clone(),
        created: created.clone(),
        sasl_password: Some("conformance-secret-42".to_owned()),
    };
    let report = Suite::new(target)
        .with_batches()
        .with_partitioning()
        .with_describe_server()
        .run_report()
        .await;
    created.delete(&servers).await;
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_transactions_pass_the_commit_check() {
    let Some(servers) = support::shared_server("kafka_transactions_pass_the_commit_check").await
    else {
        return;
    };
    let created = Created::default();
    let _clean_up = created.on_drop(&servers);
    let target = TransactionTarget(KafkaTarget {
        servers: servers.clone(),
        created: created.clone(),
        sasl_password: None,
    });
    // Only the commit check: the test server (tansu 0.6.0) hands aborted records to
    // `read_committed` consumers (its fetch reports no aborted transactions), so the
    // abort and drop checks would test the server, not this crate.
    let report = Suite::new(target)
        .with_transactions()
        .only("transaction_commit")
        .run_report()
        .await;
    created.delete(&servers).await;
    assert_passed(&report);
}
