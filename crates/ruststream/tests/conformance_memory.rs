//! The memory broker against the whole conformance harness, every capability suite
//! included.
#![cfg(all(feature = "conformance", feature = "memory"))]

use std::time::Duration;

use ruststream::conformance::{Capabilities, ConformanceTarget, Mode, Suite};
use ruststream::memory::{MemoryBroker, MemorySource};

/// One in-process memory server; every `broker()` is a new connection to it.
struct MemoryTarget {
    server: MemoryBroker,
}

impl ConformanceTarget for MemoryTarget {
    type Broker = MemoryBroker;
    type Source = MemorySource;
    type Publisher = MemoryBroker;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ordering: true,
            fan_out: true,
            competing_consumers: true,
            durable: true,
            // In-process: there is no server to restart.
            server_restart: false,
            header_order: true,
            duplicate_headers: true,
            max_payload: 16 * 1024 * 1024,
            receive_timeout: Duration::from_secs(2),
            quiet_period: Duration::from_millis(100),
            nack_delay: Duration::from_millis(200),
            shutdown_timeout: Duration::from_secs(5),
            check_timeout: Duration::from_secs(20),
        }
    }

    async fn broker(&self) -> MemoryBroker {
        self.server.new_connection()
    }

    fn source(&self, name: &str, mode: Mode) -> MemorySource {
        match mode {
            Mode::FanOut => MemorySource::new(name),
            Mode::Group(group) => MemorySource::new(name).group(group),
        }
    }

    fn publisher(&self, broker: &MemoryBroker) -> MemoryBroker {
        broker.clone()
    }
}

fn memory_suite() -> Suite<MemoryTarget> {
    Suite::new(MemoryTarget {
        server: MemoryBroker::new(),
    })
    .with_batches()
    .with_transactions()
    .with_request_reply()
    .with_partitioning()
    .with_describe_server()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_broker_passes_every_suite() {
    memory_suite().run().await;
}

/// The harness itself: a broker that breaks the contract must fail the checks that hold
/// it to that part of the contract, naming the step, and nothing may hang or panic.
mod harness_catches_broken_brokers {
    use std::time::Duration;

    use ruststream::conformance::{Capabilities, ConformanceTarget, Mode, Report, Suite, Verdict};
    use ruststream::memory::{MemoryBroker, MemoryError, MemorySource};
    use ruststream::{OutgoingMessage, Publisher};

    /// A publisher that loses every message ending in `-0003`, panics on an empty payload
    /// and hangs instead of failing after shutdown.
    struct Faulty(MemoryBroker);

    impl Publisher for Faulty {
        type Error = MemoryError;

        async fn publish(&self, msg: OutgoingMessage<'_>) -> Result<(), MemoryError> {
            assert!(!msg.payload().is_empty(), "faulty publisher: empty payload");
            if msg.payload().ends_with(b"-0003") {
                return Ok(());
            }
            match self.0.publish(msg).await {
                Err(MemoryError::Closed) => futures::future::pending().await,
                other => other,
            }
        }
    }

    struct FaultyTarget {
        server: MemoryBroker,
    }

    impl ConformanceTarget for FaultyTarget {
        type Broker = MemoryBroker;
        type Source = MemorySource;
        type Publisher = Faulty;

        fn capabilities(&self) -> Capabilities {
            Capabilities {
                ordering: true,
                fan_out: true,
                competing_consumers: true,
                receive_timeout: Duration::from_millis(300),
                quiet_period: Duration::from_millis(50),
                check_timeout: Duration::from_secs(10),
                ..Capabilities::baseline()
            }
        }

        async fn broker(&self) -> MemoryBroker {
            self.server.new_connection()
        }

        fn source(&self, name: &str, mode: Mode) -> MemorySource {
            match mode {
                Mode::FanOut => MemorySource::new(name),
                Mode::Group(group) => MemorySource::new(name).group(group),
            }
        }

        fn publisher(&self, broker: &MemoryBroker) -> Faulty {
            Faulty(broker.clone())
        }

        fn credentials(&self) -> Vec<String> {
            // The memory broker's host: a stand-in for a secret that leaks into a description.
            vec!["in-process".to_owned()]
        }
    }

    fn failed<'r>(report: &'r Report, name: &str) -> &'r ruststream::conformance::Failure {
        match report.verdict(name) {
            Some(Verdict::Failed { failure, .. }) => failure,
            other => panic!("{name} should fail, got {other:?}\n{report}"),
        }
    }

    fn passed(report: &Report, name: &str) {
        assert!(
            matches!(report.verdict(name), Some(Verdict::Passed { .. })),
            "{name} should pass, got {:?}\n{report}",
            report.verdict(name)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn faults_fail_the_checks_that_cover_them() {
        let report = Suite::new(FaultyTarget {
            server: MemoryBroker::new(),
        })
        .with_batches()
        .with_describe_server()
        .concurrency(8)
        .run_report()
        .await;
        eprintln!("{report}");

        passed(&report, "round_trip_keeps_payload");
        passed(&report, "nack_requeue_redelivers");

        let panic = failed(&report, "round_trip_keeps_empty_payload");
        assert_eq!(panic.step, "publish the message");
        assert!(
            panic.actual.contains("faulty publisher: empty payload"),
            "{panic}"
        );

        let lost = failed(&report, "ordering_is_kept_per_name");
        assert_eq!(lost.step, "receive the 100 messages");
        assert!(lost.expected.contains("99 of 100"), "{lost}");

        failed(&report, "competing_consumers_share");
        failed(&report, "concurrent_publishers_lose_nothing");

        let hang = failed(&report, "publish_after_shutdown_errors");
        assert_eq!(hang.actual, "it did not return");

        let leak = failed(&report, "server_description_has_no_credentials");
        assert!(leak.expected.contains("no credential"), "{leak}");
        assert!(!leak.to_string().contains("in-process"), "{leak}");

        assert!(matches!(
            report.verdict("resumed_subscriber_loses_nothing"),
            Some(Verdict::Skipped { reason }) if reason == "not declared (Capabilities::durable = false)"
        ));
        assert!(matches!(
            report.verdict("transaction_commit_makes_all_visible"),
            Some(Verdict::Skipped { reason }) if reason.contains("Suite::with_transactions()")
        ));
        let printed = report.to_string();
        assert!(
            printed.contains("FAIL publish_after_shutdown_errors"),
            "{printed}"
        );
        assert!(printed.contains("SKIP server_restart_loses_nothing: not declared (Capabilities::server_restart = false)"), "{printed}");
    }

    #[tokio::test]
    async fn a_filter_skips_the_other_checks() {
        let suite = Suite::new(FaultyTarget {
            server: MemoryBroker::new(),
        })
        .only("round_trip_keeps_payload, names_are");
        let all = suite.checks();
        let report = suite.run_report().await;
        assert_eq!(report.results.len(), all.len());
        let (passed, failed, skipped) = report.counts();
        assert_eq!((passed, failed), (2, 0), "{report}");
        assert_eq!(skipped, all.len() - 2);
    }
}

/// The example and the check list are written three times (module docs, guide, this
/// file); they must not drift apart.
mod docs_stay_in_sync {
    const MODULE: &str = include_str!("../src/conformance/mod.rs");
    const GUIDE: &str = include_str!("../../../docs/broker-authors.md");
    const THIS_FILE: &str = include_str!("conformance_memory.rs");

    /// The module docs' example as a reader sees it: hidden lines left out.
    fn module_example() -> String {
        let mut lines = MODULE
            .lines()
            .skip_while(|line| !line.contains("doc = \"```rust,ignore\""))
            .skip(1)
            .take_while(|line| line.trim() != "//! ```");
        let mut example = String::new();
        for line in lines.by_ref() {
            let text = line.strip_prefix("//!").unwrap_or(line);
            let text = text.strip_prefix(' ').unwrap_or(text);
            if text == "#" || text.starts_with("# ") {
                continue;
            }
            example.push_str(text);
            example.push('\n');
        }
        example
    }

    #[test]
    fn the_guide_and_this_test_hold_the_module_example() {
        let example = module_example();
        assert!(
            example.contains("impl ConformanceTarget for MemoryTarget"),
            "{example}"
        );
        assert!(
            GUIDE.contains(&format!("```rust\n{example}```")),
            "docs/broker-authors.md must hold the example of the conformance module docs:\n{example}"
        );
        assert!(
            THIS_FILE.contains(&example),
            "tests/conformance_memory.rs must start with the example of the conformance module docs:\n{example}"
        );
    }

    #[test]
    fn the_guide_and_the_module_docs_list_every_check() {
        let suite = ruststream::conformance::Suite::new(super::MemoryTarget {
            server: ruststream::memory::MemoryBroker::new(),
        });
        for check in suite.checks() {
            let listed = format!("`{check}`");
            assert!(GUIDE.contains(&listed), "the guide does not list {check}");
            assert!(
                MODULE.contains(&listed),
                "the module docs do not list {check}"
            );
        }
    }
}
