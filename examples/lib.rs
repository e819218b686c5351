//! Runnable examples of RustStream; each is built in CI.
//!
//! - `middleware`: tower layers around handlers and publishes.
//! - `batches`: a batch handler with per-element settlement.
//! - `quickstart`: the shortest complete service, one handler on the memory broker
//!   (`cargo run -p ruststream-examples --example quickstart -- run`).
//! - `tutorial`: the order service `docs/tutorial.md` builds step by step (on NATS when
//!   `NATS_URL` is set).
//! - `demo`: an order service on the embedded memory broker
//!   (`cargo run -p ruststream-examples --example demo`).
//! - `macros`: the same kind of service written with `#[subscriber]` and
//!   `#[ruststream::app]` (`cargo run -p ruststream-examples --example macros -- run`, or
//!   `-- asyncapi gen` for its AsyncAPI document).
//! - `retries`: failure policies, backoff, `max_attempts` and the dead letter.
//! - `workers`: `workers(n)` and `workers_by_key(n)`.
//! - `request_reply`: a handler's value answers a request and goes to `publish_to`
//!   destinations.
//! - `routers`: prefixes, nested routers, a consumer group, two brokers in one app.
//! - `nats_service`: a shop service on NATS written as `app(broker: NatsBroker) -> App`,
//!   tested in process and against a live server by `tests/nats_service.rs`.
//! - `graceful`: serves until SIGINT/SIGTERM, then lets in-flight handlers finish
//!   (`tests/graceful_sigterm.rs` runs it as a process and sends SIGTERM).
//!
//! Each runs with `cargo run -p ruststream-examples --example <name>`.
