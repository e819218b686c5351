//! The conformance harness (feature `conformance`): the suites that hold a broker crate
//! to the contract of [`crate::contract`].
//!
//! A broker crate proves itself with one test. It describes how to reach its server in a
//! [`ConformanceTarget`] (constructors for a connection, a subscription source and a
//! publisher, plus the [`Capabilities`] it declares), hands it to a [`Suite`], adds one
//! suite per capability trait it implements, and runs it from a `#[tokio::test]`:
//!
//! ```toml
//! [dev-dependencies]
//! ruststream = { version = "0.1", default-features = false, features = ["conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! # Example: the memory broker
//!
//! This is `crates/ruststream/tests/conformance_memory.rs`, and the example of the
//! broker-authors guide (`docs/broker-authors.md`); keep the three in sync.
//!
#![cfg_attr(feature = "memory", doc = "```rust")]
#![cfg_attr(not(feature = "memory"), doc = "```rust,ignore")]
//! use std::time::Duration;
//!
//! use ruststream::conformance::{Capabilities, ConformanceTarget, Mode, Suite};
//! use ruststream::memory::{MemoryBroker, MemorySource};
//!
//! /// One in-process memory server; every `broker()` is a new connection to it.
//! struct MemoryTarget {
//!     server: MemoryBroker,
//! }
//!
//! impl ConformanceTarget for MemoryTarget {
//!     type Broker = MemoryBroker;
//!     type Source = MemorySource;
//!     type Publisher = MemoryBroker;
//!
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities {
//!             ordering: true,
//!             fan_out: true,
//!             competing_consumers: true,
//!             durable: true,
//!             // In-process: there is no server to restart.
//!             server_restart: false,
//!             header_order: true,
//!             duplicate_headers: true,
//!             max_payload: 16 * 1024 * 1024,
//!             receive_timeout: Duration::from_secs(2),
//!             quiet_period: Duration::from_millis(100),
//!             nack_delay: Duration::from_millis(200),
//!             shutdown_timeout: Duration::from_secs(5),
//!             check_timeout: Duration::from_secs(20),
//!         }
//!     }
//!
//!     async fn broker(&self) -> MemoryBroker {
//!         self.server.new_connection()
//!     }
//!
//!     fn source(&self, name: &str, mode: Mode) -> MemorySource {
//!         match mode {
//!             Mode::FanOut => MemorySource::new(name),
//!             Mode::Group(group) => MemorySource::new(name).group(group),
//!         }
//!     }
//!
//!     fn publisher(&self, broker: &MemoryBroker) -> MemoryBroker {
//!         broker.clone()
//!     }
//! }
//!
//! fn memory_suite() -> Suite<MemoryTarget> {
//!     Suite::new(MemoryTarget {
//!         server: MemoryBroker::new(),
//!     })
//!     .with_batches()
//!     .with_transactions()
//!     .with_request_reply()
//!     .with_partitioning()
//!     .with_describe_server()
//! }
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn memory_broker_passes_every_suite() {
//!     memory_suite().run().await;
//! }
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! #     memory_suite().run().await;
//! # }
//! ```
//!
//! A broker on a network server looks the same: `broker()` builds a client from the
//! test server's URL (read from an environment variable, so the test can return early
//! when none is set), `source()` maps [`Mode`] onto the broker's descriptor (a NATS
//! subject or queue group, a Kafka consumer group, a RabbitMQ queue...), and
//! [`restart_server`](ConformanceTarget::restart_server) restarts the server where the
//! test can (a container it started, for example).
//!
//! # The target
//!
//! | item | what the harness does with it |
//! |---|---|
//! | [`capabilities`](ConformanceTarget::capabilities) | read once per run; gates the checks |
//! | [`broker`](ConformanceTarget::broker) | a new connection per call; the harness connects it and shuts it down after the check |
//! | [`source`](ConformanceTarget::source) | the descriptor for a name in a [`Mode`]: [`Mode::FanOut`] or [`Mode::Group`] |
//! | [`publisher`](ConformanceTarget::publisher) | a publisher on a connection |
//! | [`fresh_name`](ConformanceTarget::fresh_name) | a name no earlier run used; override for the broker's naming rules |
//! | [`restart_server`](ConformanceTarget::restart_server) | called by `server_restart_loses_nothing` only |
//! | [`credentials`](ConformanceTarget::credentials) | secrets that must not appear in descriptions or errors |
//!
//! # Capabilities
//!
//! Each flag of [`Capabilities`] is a promise; the checks that test it run only when it
//! is declared. Start from [`Capabilities::baseline`] (nothing optional promised) and
//! set what the broker does.
//!
//! | flag | promise | gates |
//! |---|---|---|
//! | `ordering` | one publisher's messages to one name reach one subscriber in order | `ordering_is_kept_per_name`, order within fan-out, concurrent publishers, batches and commits |
//! | `fan_out` | every [`Mode::FanOut`] subscriber gets every message | `fan_out_subscribers_each_receive_every_message` |
//! | `competing_consumers` | members of a [`Mode::Group`] share messages, one each | `competing_consumers_share` |
//! | `durable` | a group survives a restart of the service | `resumed_subscriber_loses_nothing` |
//! | `server_restart` | messages survive a restart of the server, which the target can perform | `server_restart_loses_nothing` |
//! | `header_order` | headers arrive in publish order | `round_trip_keeps_header_order` |
//! | `duplicate_headers` | a name with several values keeps them all | `round_trip_keeps_duplicate_header_names` |
//! | `max_payload` | the size of the large payload (0: none) | `round_trip_keeps_large_payload` |
//!
//! What a message can do is not declared here: the harness opens one subscription first
//! and reads its [`Subscriber::capabilities`](crate::Subscriber::capabilities), the same
//! statement the runtime settles by.
//!
//! | stated | promise | gates |
//! |---|---|---|
//! | `requeue` | `nack(true)` and unsettled messages of a dropped subscriber come back | `nack_requeue_redelivers`, `out_of_order_settlement_redelivers_only_the_nacked`, `unsettled_message_of_a_dropped_subscriber_comes_back`, `batch_elements_settle_alone` |
//! | `delayed_requeue` | `nack_after(d)` redelivers no earlier than `d` | `nack_after_honours_its_delay` |
//! | `headers` | [`HeaderSupport::None`], `Text` or `Binary` values | `round_trip_keeps_headers`, `round_trip_keeps_binary_header_values` |
//!
//! The timings (`receive_timeout`, `quiet_period`, `nack_delay`, `shutdown_timeout`,
//! `check_timeout`) tune the waits to the broker: a fast in-process broker can use a
//! short quiet period, a broker whose redelivery waits for an ack deadline needs a
//! receive timeout longer than that deadline.
//!
//! # How a run goes
//!
//! - Checks run concurrently, 4 at a time ([`Suite::concurrency`]), each in its own task
//!   with its own fresh names and connections, so a rerun against a server that kept
//!   state from an earlier run sees nothing of it.
//! - Every wait is bounded. A check that runs past
//!   [`check_timeout`](Capabilities::check_timeout) is stopped and fails with the step it
//!   was at; a panic (in the check or in the broker) fails the check with its message.
//!   Nothing hangs the test.
//! - After each check, every connection it opened is shut down (bounded; a hang or a
//!   panic there fails the check).
//! - `server_restart_loses_nothing` runs last and alone, since it disturbs the server.
//! - Messages are read through [`Subscriber::stream`](crate::Subscriber::stream) (or
//!   [`BatchSubscriber::batches`](crate::BatchSubscriber::batches)), each subscriber by
//!   its own task; dropping a subscriber drops the messages it had delivered and the
//!   check had not taken, unsettled.
//! - Single-subscriber checks subscribe with a fresh [`Mode::Group`] when
//!   `competing_consumers` or `durable` is declared, [`Mode::FanOut`] otherwise.
//!
//! [`Suite::run`] prints the report to stderr (shown by `cargo test` when the test fails,
//! or with `-- --nocapture`) and panics at the end listing every failure:
//!
//! ```text
//! ruststream conformance: my_broker::tests::Target
//!   PASS round_trip_keeps_payload (3 ms)
//!   FAIL nack_requeue_redelivers (5002 ms) at step `receive the redelivery after nack(true)`: expected the message "nack me" within 5s; got nothing arrived within 5s
//!   SKIP server_restart_loses_nothing: not declared (Capabilities::server_restart = false)
//!   SKIP transaction_commit_makes_all_visible: capability suite not added (call Suite::with_transactions() if the broker implements the trait)
//! 30 passed, 1 failed, 2 skipped in 7.41 s
//! ```
//!
//! [`Suite::run_report`] returns the [`Report`] instead. To run some checks only, set
//! [`ONLY_ENV`] (`RUSTSTREAM_CONFORMANCE_ONLY=nack,shutdown cargo test ...`) or call
//! [`Suite::only`].
//!
//! # The checks
//!
//! Core checks (in [`Suite::new`]):
//!
//! | check | what it holds the broker to |
//! |---|---|
//! | `round_trip_keeps_payload` | a text payload arrives intact; `name()` (if `Some`) is the published name; `redelivery_count()` (if `Some`) is 0 |
//! | `round_trip_keeps_binary_payload` | every byte value arrives intact |
//! | `round_trip_keeps_empty_payload` | an empty payload arrives empty |
//! | `round_trip_keeps_large_payload` | a payload of `max_payload` bytes arrives intact |
//! | `round_trip_keeps_headers` | text headers arrive with their values |
//! | `round_trip_keeps_header_order` | headers arrive in publish order |
//! | `round_trip_keeps_binary_header_values` | NUL, CR, LF and non-UTF-8 bytes in values survive |
//! | `round_trip_keeps_duplicate_header_names` | every value of a repeated name survives, in order |
//! | `ordering_is_kept_per_name` | 100 messages arrive in publish order |
//! | `names_are_isolated` | a subscriber receives only its name's messages |
//! | `ack_consumes` | an acked message is not redelivered, not even to a new group member |
//! | `ack_now_consumes` | the same when settled with `ack_now` (or `ack`, where it gives the message back) |
//! | `nack_requeue_redelivers` | `nack(true)` redelivers, with its headers; `redelivery_count()` (if `Some`) grows |
//! | `nack_without_requeue_drops` | `nack(false)` does not redeliver, not even to a new group member |
//! | `nack_after_honours_its_delay` | `nack_after(d)` redelivers, not before `d` (less a fifth) |
//! | `out_of_order_settlement_redelivers_only_the_nacked` | ack the 3rd, ack the 1st, nack the 2nd: only the 2nd comes back |
//! | `unsettled_message_of_a_dropped_subscriber_comes_back` | a message in hand when its subscriber goes away comes back to the group |
//! | `competing_consumers_share` | 30 messages over 3 members: each exactly once, none lost |
//! | `fan_out_subscribers_each_receive_every_message` | 3 fan-out subscribers each get all 10 messages |
//! | `concurrent_publishers_lose_nothing` | 4 connections publishing 25 each at once: all 100 arrive once |
//! | `shutdown_is_bounded_and_ends_streams` | with a subscriber open and a message in hand, `shutdown` returns within the bound, the stream ends or errors, settling afterwards returns, a second `shutdown` returns; no panic |
//! | `publish_after_shutdown_errors` | a publish after `shutdown` is an error, which names no credential |
//! | `resumed_subscriber_loses_nothing` | a service that shuts down and resubscribes to its group gets every message it had not acked and those published meanwhile, and no acked one |
//! | `server_restart_loses_nothing` | after a restart of the server, every message not acked arrives |
//!
//! Capability suites, added with the builder method whose bound requires the trait:
//!
//! | method | checks |
//! |---|---|
//! | [`Suite::with_batches`] | `batches_are_never_empty_and_at_most_max`, `batch_elements_settle_alone` |
//! | [`Suite::with_transactions`] | `transaction_commit_makes_all_visible`, `transaction_abort_makes_none_visible`, `transaction_drop_makes_none_visible` |
//! | [`Suite::with_request_reply`] | `request_is_answered_by_a_responder`, `unanswered_request_errors_within_timeout` |
//! | [`Suite::with_partitioning`] | `partition_key_is_delivered`, `order_is_kept_per_key` |
//! | [`Suite::with_describe_server`] | `server_description_has_no_credentials` |

mod checks;
mod harness;
mod report;
mod suite;
mod target;

pub use report::{CheckResult, Failure, Report, Verdict};
pub use suite::{ONLY_ENV, Suite};
pub use target::{Capabilities, ConformanceTarget, HeaderSupport, MessageOf, Mode, SubscriberOf};

/// Compiles every Rust block of the broker-authors guide as a doctest.
#[cfg(all(doctest, feature = "memory"))]
#[doc = include_str!("../../../../docs/broker-authors.md")]
struct BrokerAuthorsGuide;
