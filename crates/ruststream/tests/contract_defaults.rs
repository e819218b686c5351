//! Every default of the contract, observed through a minimal implementation that writes
//! only the required methods.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use futures::Stream;
use ruststream::{
    AckError, Broker, Headers, IncomingMessage, OutgoingMessage, Reply, ServerSpec, Subscribe,
    Subscriber, SubscriberExt, SubscriptionSource,
};

/// What happened to a [`Minimal`] message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Ack,
    Nack { requeue: bool },
}

type Log = Arc<Mutex<Vec<Settled>>>;

fn record(log: &Log, settled: Settled) {
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(settled);
}

fn recorded(log: &Log) -> Vec<Settled> {
    log.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// A message implementing only `payload`, `headers`, `ack` and `nack`.
struct Minimal {
    payload: Vec<u8>,
    headers: Headers,
    log: Log,
}

impl Minimal {
    fn new(log: &Log) -> Self {
        Self {
            payload: b"body".to_vec(),
            headers: [("k", "v")].into_iter().collect(),
            log: Arc::clone(log),
        }
    }
}

impl IncomingMessage for Minimal {
    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn headers(&self) -> &Headers {
        &self.headers
    }

    async fn ack(self) -> Result<(), AckError> {
        record(&self.log, Settled::Ack);
        Ok(())
    }

    async fn nack(self, requeue: bool) -> Result<(), AckError> {
        record(&self.log, Settled::Nack { requeue });
        Ok(())
    }
}

#[tokio::test]
async fn nack_after_defaults_to_an_immediate_nack_true() {
    let log = Log::default();
    let started = std::time::Instant::now();
    Minimal::new(&log)
        .nack_after(Duration::from_secs(3600))
        .await
        .expect("settled");
    assert_eq!(recorded(&log), vec![Settled::Nack { requeue: true }]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the default does not wait for the delay"
    );
}

#[tokio::test]
async fn the_required_methods_are_what_settlement_calls() {
    let log = Log::default();
    Minimal::new(&log).ack().await.expect("acked");
    Minimal::new(&log).nack(false).await.expect("nacked");
    Minimal::new(&log).nack(true).await.expect("nacked");
    assert_eq!(
        recorded(&log),
        vec![
            Settled::Ack,
            Settled::Nack { requeue: false },
            Settled::Nack { requeue: true }
        ]
    );
}

#[test]
fn optional_accessors_default_to_none() {
    let message = Minimal::new(&Log::default());
    assert_eq!(message.partition_key(), None);
    assert_eq!(message.name(), None);
    assert_eq!(message.reply_to(), None);
    assert_eq!(message.redelivery_count(), None);
    assert_eq!(message.payload(), b"body");
    assert_eq!(message.headers().get_str("k"), Some("v"));
}

#[test]
fn capabilities_default_to_what_the_defaulted_methods_give() {
    let subscriber = Named {
        name: "orders".to_owned(),
    };
    let capabilities = subscriber.capabilities();
    assert_eq!(capabilities, ruststream::Capabilities::DEFAULT);
    assert!(capabilities.requeue, "the contract's nack(true) requeues");
    assert!(
        !capabilities.delayed_requeue,
        "nack_after defaults to nack(true)"
    );
    assert!(!capabilities.redelivery_count);
    assert!(!capabilities.partition_key);
}

// --- a broker implementing only Broker and Subscribe ------------------------------------

/// A subscriber that yields nothing and remembers the name it was opened for.
struct Named {
    name: String,
}

impl Subscriber for Named {
    type Message = Minimal;
    type Error = std::io::Error;

    fn stream(&mut self) -> impl Stream<Item = Result<Minimal, std::io::Error>> + Send + '_ {
        futures::stream::empty()
    }
}

/// A broker with only the by-name subscription.
struct ByName {
    opened: Mutex<Vec<String>>,
}

impl Broker for ByName {
    type Error = std::io::Error;

    async fn connect(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), std::io::Error> {
        Ok(())
    }
}

impl Subscribe for ByName {
    type Subscriber = Named;

    async fn subscribe(&self, name: &str) -> Result<Named, std::io::Error> {
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_owned());
        Ok(Named {
            name: name.to_owned(),
        })
    }
}

/// What the runtime does with any source: read its name, then open it.
async fn open<B: Broker, S: SubscriptionSource<B>>(
    broker: &B,
    source: S,
) -> (String, S::Subscriber) {
    let name = source.name().to_owned();
    match source.subscribe(broker).await {
        Ok(subscriber) => (name, subscriber),
        Err(error) => panic!("subscribe failed: {error}"),
    }
}

#[tokio::test]
async fn str_and_string_are_sources_for_every_subscribe_broker() {
    let broker = ByName {
        opened: Mutex::new(Vec::new()),
    };
    let (name, subscriber) = open(&broker, "orders.created").await;
    assert_eq!(name, "orders.created");
    assert_eq!(subscriber.name, "orders.created");

    let owned = String::from("invoices");
    assert_eq!(SubscriptionSource::<ByName>::name(&owned), "invoices");
    let (name, subscriber) = open(&broker, owned).await;
    assert_eq!(name, "invoices");
    assert_eq!(subscriber.name, "invoices");

    assert_eq!(
        *broker.opened.lock().unwrap_or_else(PoisonError::into_inner),
        vec!["orders.created".to_owned(), "invoices".to_owned()]
    );
}

// --- SubscriberExt ---------------------------------------------------------------------------

/// A subscriber whose buffer lives in `self`, as the contract asks: a stream dropped
/// between two messages loses nothing.
struct Buffered {
    ready: VecDeque<Minimal>,
}

impl Subscriber for Buffered {
    type Message = Minimal;
    type Error = std::io::Error;

    fn stream(&mut self) -> impl Stream<Item = Result<Minimal, std::io::Error>> + Send + '_ {
        futures::stream::poll_fn(move |_| Poll::Ready(self.ready.pop_front().map(Ok)))
    }
}

#[tokio::test]
async fn next_message_takes_one_message_per_call_then_none() {
    let log = Log::default();
    let mut first = Minimal::new(&log);
    first.payload = b"first".to_vec();
    let mut second = Minimal::new(&log);
    second.payload = b"second".to_vec();
    let mut subscriber = Buffered {
        ready: [first, second].into_iter().collect(),
    };

    for expected in [&b"first"[..], b"second"] {
        match subscriber.next_message().await {
            Some(Ok(message)) => assert_eq!(message.payload(), expected),
            Some(Err(error)) => panic!("unexpected error: {error}"),
            None => panic!("ended early"),
        }
    }
    assert!(subscriber.next_message().await.is_none());
}

// --- OutgoingMessage ---------------------------------------------------------------------

#[test]
fn outgoing_message_has_no_headers_key_or_reply_by_default() {
    let payload = [1u8, 2, 3];
    let msg = OutgoingMessage::new("orders", &payload);
    assert_eq!(msg.name(), "orders");
    assert_eq!(msg.payload(), &payload);
    assert!(msg.headers().is_empty());
    assert_eq!(msg.key(), None);
    assert_eq!(msg.reply_to(), None);
}

#[test]
fn outgoing_message_builders_set_every_field_and_it_is_copy() {
    let headers: Headers = [("trace", "abc")].into_iter().collect();
    let msg = OutgoingMessage::new("orders", b"{}")
        .with_headers(&headers)
        .with_key(b"customer-7")
        .with_reply_to("inbox.1");
    let copy = msg; // Copy: a retrying publisher can resend it.
    for m in [msg, copy] {
        assert_eq!(m.name(), "orders");
        assert_eq!(m.payload(), b"{}");
        assert_eq!(m.headers(), &headers);
        assert_eq!(m.key(), Some(&b"customer-7"[..]));
        assert_eq!(m.reply_to(), Some("inbox.1"));
    }
}

#[test]
fn outgoing_message_accepts_empty_and_binary_payloads() {
    let empty = OutgoingMessage::new("x", &[]);
    assert!(empty.payload().is_empty());
    let binary = [0u8, 0xff, 0x80, b'\n'];
    assert_eq!(OutgoingMessage::new("x", &binary).payload(), &binary);
}

// --- small types with defaults ------------------------------------------------------------

#[test]
fn headers_and_reply_default_to_empty() {
    assert!(Headers::default().is_empty());
    assert_eq!(Headers::new(), Headers::default());
    let reply = Reply::default();
    assert!(reply.payload.is_empty());
    assert!(reply.headers.is_empty());
}

// --- ServerSpec ----------------------------------------------------------------------------

#[test]
fn server_spec_new_sets_only_protocol_and_host() {
    let spec = ServerSpec::new("nats", "localhost:4222");
    assert_eq!(spec.protocol, "nats");
    assert_eq!(spec.host, "localhost:4222");
    assert_eq!(spec.protocol_version, None);
    assert_eq!(spec.pathname, None);
    assert_eq!(spec.description, None);
    assert_eq!(spec.bindings, None);
}

#[test]
fn server_spec_builders_set_each_field() {
    let bindings = serde_json::json!({ "amqp": { "bindingVersion": "0.3.0" } });
    let spec = ServerSpec::new("amqp", "rabbit:5672")
        .with_protocol_version("0.9.1")
        .with_pathname("/vhost")
        .with_description("orders cluster")
        .with_bindings(bindings.clone());
    assert_eq!(spec.protocol_version.as_deref(), Some("0.9.1"));
    assert_eq!(spec.pathname.as_deref(), Some("/vhost"));
    assert_eq!(spec.description.as_deref(), Some("orders cluster"));
    assert_eq!(spec.bindings, Some(bindings));
}

#[test]
fn server_spec_from_url_drops_credentials_and_the_root_path() {
    let spec = ServerSpec::from_url(None, "mqtt://user:pass@broker:1883/");
    assert_eq!(spec.protocol, "mqtt");
    assert_eq!(spec.host, "broker:1883");
    assert_eq!(spec.pathname, None);
    assert!(!format!("{spec:?}").contains("pass"));

    let spec = ServerSpec::from_url(Some("redis"), "rediss://:token@cache:6380/2#frag");
    assert_eq!(spec.protocol, "redis");
    assert_eq!(spec.host, "cache:6380");
    assert_eq!(spec.pathname.as_deref(), Some("/2"));
    assert!(!format!("{spec:?}").contains("token"));
}
