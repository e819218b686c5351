//! MQTT broker for RustStream, on [rumqttc](https://docs.rs/rumqttc): MQTT 5 and 3.1.1
//! behind one API, QoS 0, 1 and 2, shared subscriptions, persistent sessions, manual
//! acknowledgements, and request-reply on MQTT 5.
//!
//! ```no_run
//! use ruststream::{Broker, IncomingMessage, OutgoingMessage, Publisher, SubscriberExt, SubscriptionSource};
//! use ruststream_mqtt::{Config, MqttBroker, MqttSource, Protocol, Qos};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = MqttBroker::new(Config::new(Protocol::V5, "127.0.0.1", 1883, "thermostat-1"));
//! broker.connect().await?;
//! let mut subscriber = MqttSource::new("sensors/+/temp").qos(Qos::AtLeastOnce).subscribe(&broker).await?;
//! broker.publish(OutgoingMessage::new("sensors/kitchen/temp", b"21.5")).await?;
//! if let Some(message) = subscriber.next_message().await {
//!     let message = message?;
//!     assert_eq!(message.payload(), b"21.5");
//!     message.ack().await?; // the PUBACK is sent now
//! }
//! broker.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Settlement: MQTT has no negative acknowledgement.
//!
//! | settlement | QoS 1 / QoS 2 | QoS 0 |
//! |---|---|---|
//! | `ack` | PUBACK / PUBREC sent (once every local subscription it was routed to settled it) | nothing to send |
//! | `nack(false)` | acknowledged as `ack`: the message is dropped | nothing |
//! | `nack(true)`, `nack_after(d)` | not acknowledged, `AckError::Unsupported`: a persistent session redelivers it at the next reconnect; nothing is redelivered on this connection | `AckError::Unsupported` |
//! | dropped unsettled | not acknowledged (as `nack(true)`) | lost |
//! | still queued when its subscriber is dropped | persistent session: left for the session; clean session: acknowledged (dropped) | lost |
//!
//! So `Subscriber::capabilities()` declares no requeue, no delayed requeue and no
//! redelivery count at every QoS; headers are `Text` on MQTT 5 (user properties) and
//! `None` on 3.1.1. See `docs/brokers/mqtt.md`.

#![forbid(unsafe_code)]

mod asyncapi;
mod broker;
mod config;
mod connection;
mod error;
mod message;
mod publisher;
mod source;
mod subscriber;
#[cfg(feature = "testing")]
mod testing;
mod topic;

pub use broker::MqttBroker;
pub use config::{Config, Protocol};
pub use error::MqttError;
pub use message::MqttMessage;
pub use publisher::{EXPIRY_HEADER, QOS_HEADER, RETAIN_HEADER};
pub use ruststream::kit::{Backoff, Secret, Tls};
pub use source::{MqttSource, Qos, RetainHandling};
pub use subscriber::MqttSubscriber;
pub use topic::MqttTopics;

/// The crate's page of docs, compiled so its examples stay true.
#[cfg(all(doctest, feature = "testing"))]
#[doc = include_str!("../../../docs/brokers/mqtt.md")]
struct MqttGuide;
