//! Testing support (feature `testing`): [`TestApp`] runs a service's own app in process
//! and [`TestClient`] gives every broker crate an in-process stand-in.
//!
//! # `TestApp`: drive the service, then read what happened
//!
//! [`TestApp::start`] installs an observer on the service's [`App`](crate::runtime::App)
//! and starts it. A publish through the test app returns once the handler chain has
//! settled: every message a handler received is settled (acked, retried, dead-lettered,
//! dropped), every retry asked for has been delivered again, and the broker has nothing
//! left for the handlers. Then the test reads what each handler
//! [`received`](TestApp::received), how each message was
//! [`settled`](TestApp::settlements), and what the app [`published`](TestApp::published).
//!
//! ```
//! use ruststream::memory::MemoryBroker;
//! use ruststream::runtime::{handler_fn, App, FailurePolicy, Settle, Router, Settlement, SubscriberDef};
//! use ruststream::testing::{TestApp, TestBroker};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Order { id: u64 }
//!
//! /// The service's app, on any broker.
//! fn orders_app<B: TestBroker>(broker: B) -> App {
//!     let orders = SubscriberDef::new("orders", handler_fn(|order: Order| async move {
//!         if order.id == 0 { Settle::Drop } else { Settle::Ack }
//!     }))
//!     .name("take_order");
//!     App::new("orders").broker(broker, Router::new().subscriber(orders))
//! }
//!
//! /// One test, for any broker that implements `TestBroker`.
//! async fn orders_are_taken_and_order_zero_is_dropped<B: TestBroker>(broker: B) {
//!     let app = TestApp::start(orders_app(broker.clone()), broker).await.unwrap();
//!     app.publish("orders", &Order { id: 7 }).await.unwrap(); // returns once settled
//!     app.publish("orders", &Order { id: 0 }).await.unwrap();
//!
//!     let received = app.received("take_order");
//!     assert_eq!(received[0].decoded::<Order>().id, 7);
//!     assert_eq!(app.settlements("take_order"), [Settlement::Acked, Settlement::Rejected]);
//!     app.shutdown().await.unwrap();
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! orders_are_taken_and_order_zero_is_dropped(MemoryBroker::new()).await;
//! # }
//! ```
//!
//! # The same test against a live broker
//!
//! Write the test generic over `B: TestBroker`, as above. How the test app tells that the
//! handler chain has settled is the only broker-specific part, and the broker chooses it
//! through [`TestBroker::quiescence`]:
//!
//! - [`MemoryBroker`](crate::memory::MemoryBroker) and [`TestClient`] count the messages
//!   they hold that no handler has taken ([`Quiescence::Backlog`]): settled when that count
//!   is 0 and every received message is settled. This follows chains of handlers through
//!   the broker (a handler's publish is in the backlog before its message is settled).
//! - A live broker crate implements `TestBroker` with the default method
//!   ([`Quiescence::MessageIds`]): each publish carries a fresh `message-id` header, and
//!   the test app waits until a handler has settled the message with that id, and every
//!   received message is settled. Downstream messages that a handler publishes to a name
//!   no handler has taken yet are not waited for; assert on them with
//!   [`TestApp::published`] instead.
//!
//! An app with two brokers waits for both with [`TestApp::watch`].
//!
//! The wait has a timeout (5 s by default, [`TestApp::with_timeout`]) and fails with
//! [`TestAppError::NotSettled`], which lists what was still pending: which handler has not
//! settled which message, which retry has not come back, which broker still holds
//! messages.
//!
//! # `TestClient`: a broker crate's in-process stand-in
//!
//! See [`TestClient`]: core routing under the broker's own name rule, settlement a no-op.
//! A test client does not redeliver, and its subscriptions' capabilities say so: a
//! handler's retry there is recorded as `Settlement::RetryUnsupported` and the delivery is
//! over (`FailurePolicy::RetryInPlace` calls the handler again in place, on any broker).

mod app;
mod client;
mod record;

pub use app::{DEFAULT_SETTLE_TIMEOUT, Quiescence, Recording, TestApp, TestAppError, TestBroker};
pub use client::{TestClient, TestMessage, TestSubscriber};
pub use record::{Ended, Published, Received};
