//! The live connection: one rumqttc client (MQTT 5 or 3.1.1) and the task that drives its
//! event loop, reconnects with the kit's `Backoff`, restores subscriptions, routes incoming
//! publishes to the matching subscriptions and answers publish and subscribe waiters when
//! the server acknowledges them.
//!
//! rumqttc says which packet id it gave a request only through the `Outgoing` event it
//! emits when it sends it, in the order requests were queued. So every request that needs
//! an answer is queued under `order` together with its waiter, and the event loop pairs
//! each `Outgoing::Publish(id)`/`Outgoing::Subscribe(id)` with the oldest waiter. A
//! publish re-sent after a reconnect keeps its id and already has its waiter.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{Outgoing, v5};
use ruststream::Headers;
use ruststream::kit::{Redactor, Shutdown};
use ruststream::matching::NameMatcher;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, Protocol};
use crate::error::MqttError;
use crate::message::MqttMessage;
use crate::source::{Qos, RetainHandling};
use crate::topic::MqttTopics;

/// The header carrying MQTT 5 correlation data (and which the runtime copies to replies).
pub(crate) const CORRELATION_ID: &str = "correlation-id";
/// The header carrying the MQTT 5 content type.
pub(crate) const CONTENT_TYPE: &str = "content-type";

type Answer = oneshot::Sender<Result<(), String>>;

/// The rumqttc client of either protocol version.
#[derive(Clone)]
pub(crate) enum Client {
    V5(v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

fn qos4(qos: Qos) -> rumqttc::QoS {
    match qos {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(qos: Qos) -> v5::mqttbytes::QoS {
    match qos {
        Qos::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        Qos::ExactlyOnce => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// What a publish carries besides topic and payload.
#[derive(Default)]
pub(crate) struct PublishOptions {
    pub(crate) qos: Qos,
    pub(crate) retain: bool,
    pub(crate) properties: Option<p5::PublishProperties>,
}

/// One subscription's server-side options.
#[derive(Clone, Debug)]
pub(crate) struct FilterOptions {
    pub(crate) filter: String,
    pub(crate) qos: Qos,
    pub(crate) no_local: bool,
    pub(crate) retain_handling: RetainHandling,
}

impl Client {
    async fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        options: PublishOptions,
    ) -> Result<(), String> {
        match self {
            Self::V5(client) => match options.properties {
                Some(properties) => client
                    .publish_with_properties(
                        topic,
                        qos5(options.qos),
                        options.retain,
                        payload,
                        properties,
                    )
                    .await
                    .map_err(|error| error.to_string()),
                None => client
                    .publish(topic, qos5(options.qos), options.retain, payload)
                    .await
                    .map_err(|error| error.to_string()),
            },
            Self::V311(client) => client
                .publish_bytes(topic, qos4(options.qos), options.retain, payload)
                .await
                .map_err(|error| error.to_string()),
        }
    }

    async fn subscribe(&self, options: &FilterOptions) -> Result<(), String> {
        match self {
            Self::V5(client) => {
                let mut filter = p5::Filter::new(options.filter.clone(), qos5(options.qos));
                filter.nolocal = options.no_local;
                filter.retain_forward_rule = match options.retain_handling {
                    RetainHandling::SendAtSubscribe => p5::RetainForwardRule::OnEverySubscribe,
                    RetainHandling::SendAtNewSubscribe => p5::RetainForwardRule::OnNewSubscribe,
                    RetainHandling::DoNotSend => p5::RetainForwardRule::Never,
                };
                client
                    .subscribe_many(std::iter::once(filter))
                    .await
                    .map_err(|error| error.to_string())
            }
            Self::V311(client) => client
                .subscribe(options.filter.clone(), qos4(options.qos))
                .await
                .map_err(|error| error.to_string()),
        }
    }

    async fn unsubscribe(&self, filter: &str) -> Result<(), String> {
        match self {
            Self::V5(client) => client
                .unsubscribe(filter)
                .await
                .map_err(|error| error.to_string()),
            Self::V311(client) => client
                .unsubscribe(filter)
                .await
                .map_err(|error| error.to_string()),
        }
    }

    /// Sends the PUBACK (QoS 1) or PUBREC (QoS 2) of an incoming publish.
    pub(crate) async fn ack(&self, qos: Qos, pkid: u16) -> Result<(), String> {
        match self {
            Self::V5(client) => {
                let mut publish = p5::Publish::new("", qos5(qos), Bytes::new(), None);
                publish.pkid = pkid;
                client
                    .ack(&publish)
                    .await
                    .map_err(|error| error.to_string())
            }
            Self::V311(client) => {
                let mut publish = rumqttc::Publish::new("", qos4(qos), Vec::new());
                publish.pkid = pkid;
                client
                    .ack(&publish)
                    .await
                    .map_err(|error| error.to_string())
            }
        }
    }

    /// The same without waiting: fails when the client's request queue is full.
    pub(crate) fn try_ack(&self, qos: Qos, pkid: u16) -> Result<(), String> {
        match self {
            Self::V5(client) => {
                let mut publish = p5::Publish::new("", qos5(qos), Bytes::new(), None);
                publish.pkid = pkid;
                client.try_ack(&publish).map_err(|error| error.to_string())
            }
            Self::V311(client) => {
                let mut publish = rumqttc::Publish::new("", qos4(qos), Vec::new());
                publish.pkid = pkid;
                client.try_ack(&publish).map_err(|error| error.to_string())
            }
        }
    }

    async fn disconnect(&self) -> Result<(), String> {
        match self {
            Self::V5(client) => client.disconnect().await.map_err(|error| error.to_string()),
            Self::V311(client) => client.disconnect().await.map_err(|error| error.to_string()),
        }
    }
}

/// Where a route delivers.
enum Target {
    /// A subscriber's queue.
    Subscriber(mpsc::UnboundedSender<MqttMessage>),
    /// The replies to this connection's requests, by response topic.
    Replies,
}

struct Route {
    id: u64,
    options: FilterOptions,
    target: Target,
}

#[derive(Default)]
struct Waiters {
    /// Publishes queued (QoS 1 and 2), oldest first, not yet given a packet id.
    publish_queue: VecDeque<Answer>,
    publish_by_id: HashMap<u16, Answer>,
    /// Subscribes queued, oldest first; `None` for a restore after a reconnect.
    subscribe_queue: VecDeque<Option<Answer>>,
    subscribe_by_id: HashMap<u16, Option<Answer>>,
}

/// The acknowledgement an incoming QoS 1 or 2 publish owes the server, sent once every
/// local subscription it was routed to settled it.
pub(crate) struct AckHandle {
    shared: Arc<Shared>,
    qos: Qos,
    pkid: u16,
    holders: AtomicUsize,
}

impl AckHandle {
    /// A holder gave the message up without settling it (its subscription is gone). The
    /// last holder of a clean session's message acknowledges it, or it would hold one of
    /// the server's in-flight slots for the rest of the connection; a persistent
    /// session's message is left unacknowledged, for the session to redeliver.
    pub(crate) fn abandon(self: Arc<Self>) {
        if self.holders.fetch_sub(1, Ordering::AcqRel) != 1
            || self.shared.persistent
            || self.shared.shutdown.is_triggered()
        {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = self.shared.client.ack(self.qos, self.pkid).await;
            });
        }
    }

    /// One holder settled, without waiting: `true` when done (not the last holder, or
    /// the acknowledgement was queued), `false` when it must be sent with
    /// [`release`](Self::release) (the client's queue is full, the holder count is kept).
    pub(crate) fn try_release(&self) -> bool {
        if self.holders.load(Ordering::Acquire) != 1 {
            if self.holders.fetch_sub(1, Ordering::AcqRel) != 1 || self.try_send_ack() {
                return true;
            }
            // Last after all, and the queue is full: `release` sends it.
            self.holders.fetch_add(1, Ordering::AcqRel);
            return false;
        }
        if self.try_send_ack() {
            self.holders.store(0, Ordering::Release);
            return true;
        }
        false
    }

    fn try_send_ack(&self) -> bool {
        !self.shared.shutdown.is_triggered()
            && self.shared.client.try_ack(self.qos, self.pkid).is_ok()
    }

    /// One holder settled; the last one sends the acknowledgement.
    pub(crate) async fn release(&self) -> Result<(), String> {
        if self.holders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return Ok(());
        }
        if self.shared.shutdown.is_triggered() {
            return Err("the connection was shut down before the acknowledgement".to_owned());
        }
        self.shared.client.ack(self.qos, self.pkid).await
    }
}

/// State shared by the broker handle, the event loop task, subscribers and messages.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) protocol: Protocol,
    pub(crate) shutdown: Shutdown,
    pub(crate) redactor: Redactor,
    pub(crate) ack_timeout: Duration,
    client_id: String,
    /// Held while a request is queued together with its waiter, so waiters are in the
    /// order of the client's request channel.
    order: tokio::sync::Mutex<()>,
    waiters: Mutex<Waiters>,
    routes: Mutex<Vec<Route>>,
    next_id: AtomicU64,
    replies: Mutex<HashMap<String, oneshot::Sender<ruststream::Reply>>>,
    reply_route: tokio::sync::OnceCell<()>,
    /// Whether the session outlives the connection: then a QoS 1 or 2 message that
    /// arrives before its subscription is opened again (the session's backlog, sent right
    /// after CONNACK) waits here, unacknowledged, for it.
    persistent: bool,
    parked: Mutex<Vec<Incoming>>,
}

/// A live connection: the shared state and its event loop task.
pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

enum EventLoop {
    V5(Box<v5::EventLoop>),
    V311(Box<rumqttc::EventLoop>),
}

/// One event of either protocol, reduced to what the connection acts on.
enum Event {
    ConnAck { session_present: bool },
    Publish(Incoming),
    Acked { pkid: u16, error: Option<String> },
    SubAck { pkid: u16, error: Option<String> },
    Sent(Outgoing),
    Other,
}

/// An incoming publish, either protocol.
pub(crate) struct Incoming {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) headers: Headers,
    pub(crate) reply_to: Option<String>,
    pub(crate) qos: Qos,
    pub(crate) pkid: u16,
}

fn from_qos4(qos: rumqttc::QoS) -> Qos {
    match qos {
        rumqttc::QoS::AtMostOnce => Qos::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => Qos::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

fn from_qos5(qos: v5::mqttbytes::QoS) -> Qos {
    match qos {
        v5::mqttbytes::QoS::AtMostOnce => Qos::AtMostOnce,
        v5::mqttbytes::QoS::AtLeastOnce => Qos::AtLeastOnce,
        v5::mqttbytes::QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

impl EventLoop {
    async fn poll(&mut self) -> Result<Event, String> {
        match self {
            Self::V5(event_loop) => {
                let event = event_loop.poll().await.map_err(|error| error.to_string())?;
                Ok(match event {
                    v5::Event::Incoming(packet) => match packet {
                        p5::Packet::ConnAck(ack) => Event::ConnAck {
                            session_present: ack.session_present,
                        },
                        p5::Packet::Publish(publish) => Event::Publish(incoming5(publish)),
                        p5::Packet::PubAck(ack) => Event::Acked {
                            pkid: ack.pkid,
                            error: match ack.reason {
                                p5::PubAckReason::Success
                                | p5::PubAckReason::NoMatchingSubscribers => None,
                                reason => Some(format!("the server answered {reason:?}")),
                            },
                        },
                        p5::Packet::PubRec(rec) => match rec.reason {
                            p5::PubRecReason::Success | p5::PubRecReason::NoMatchingSubscribers => {
                                Event::Other
                            }
                            reason => Event::Acked {
                                pkid: rec.pkid,
                                error: Some(format!("the server answered {reason:?}")),
                            },
                        },
                        p5::Packet::PubComp(comp) => Event::Acked {
                            pkid: comp.pkid,
                            error: match comp.reason {
                                p5::PubCompReason::Success => None,
                                reason => Some(format!("the server answered {reason:?}")),
                            },
                        },
                        p5::Packet::SubAck(ack) => Event::SubAck {
                            pkid: ack.pkid,
                            error: ack
                                .return_codes
                                .iter()
                                .find(|code| !matches!(code, p5::SubscribeReasonCode::Success(_)))
                                .map(|code| format!("the server answered {code:?}")),
                        },
                        _ => Event::Other,
                    },
                    v5::Event::Outgoing(outgoing) => Event::Sent(outgoing),
                })
            }
            Self::V311(event_loop) => {
                let event = event_loop.poll().await.map_err(|error| error.to_string())?;
                Ok(match event {
                    rumqttc::Event::Incoming(packet) => match packet {
                        rumqttc::Packet::ConnAck(ack) => Event::ConnAck {
                            session_present: ack.session_present,
                        },
                        rumqttc::Packet::Publish(publish) => Event::Publish(Incoming {
                            topic: publish.topic,
                            payload: publish.payload,
                            headers: Headers::new(),
                            reply_to: None,
                            qos: from_qos4(publish.qos),
                            pkid: publish.pkid,
                        }),
                        rumqttc::Packet::PubAck(ack) => Event::Acked {
                            pkid: ack.pkid,
                            error: None,
                        },
                        rumqttc::Packet::PubComp(comp) => Event::Acked {
                            pkid: comp.pkid,
                            error: None,
                        },
                        rumqttc::Packet::SubAck(ack) => Event::SubAck {
                            pkid: ack.pkid,
                            error: ack
                                .return_codes
                                .iter()
                                .any(|code| matches!(code, rumqttc::SubscribeReasonCode::Failure))
                                .then(|| "the server refused the subscription".to_owned()),
                        },
                        _ => Event::Other,
                    },
                    rumqttc::Event::Outgoing(outgoing) => Event::Sent(outgoing),
                })
            }
        }
    }
}

fn incoming5(publish: p5::Publish) -> Incoming {
    let topic = String::from_utf8_lossy(&publish.topic).into_owned();
    let mut headers = Headers::new();
    let mut reply_to = None;
    if let Some(properties) = publish.properties {
        // A content type or correlation id that is text is also sent as a user property,
        // where it keeps its place among the headers; the property alone (another
        // client's publish) puts it first.
        let has = |name: &str| properties.user_properties.iter().any(|(n, _)| n == name);
        let (has_content_type, has_correlation) = (has(CONTENT_TYPE), has(CORRELATION_ID));
        if let Some(content_type) = properties.content_type
            && !has_content_type
        {
            headers.append(CONTENT_TYPE, content_type);
        }
        if let Some(correlation) = properties.correlation_data
            && !has_correlation
        {
            headers.append(CORRELATION_ID, correlation);
        }
        for (name, value) in properties.user_properties {
            headers.append(name, value);
        }
        reply_to = properties.response_topic;
    }
    Incoming {
        topic,
        payload: publish.payload,
        headers,
        reply_to,
        qos: from_qos5(publish.qos),
        pkid: publish.pkid,
    }
}

impl Connection {
    /// Connects, and returns once the server accepted the connection (CONNACK).
    pub(crate) async fn open(config: &Config, shutdown: Shutdown) -> Result<Self, MqttError> {
        let redactor = config.redactor();
        let capacity = 1024;
        let (client, mut event_loop) = match config.protocol {
            Protocol::V5 => {
                let mut options =
                    v5::MqttOptions::new(&config.client_id, &config.host, config.port);
                options
                    .set_keep_alive(config.keep_alive)
                    .set_clean_start(config.clean_start)
                    .set_manual_acks(true)
                    .set_receive_maximum(Some(config.receive_maximum))
                    .set_outgoing_inflight_upper_limit(config.inflight)
                    .set_max_packet_size(Some(config.max_packet_size))
                    .set_connection_timeout(config.connect_timeout.as_secs().max(1));
                let expiry = u32::try_from(config.session_expiry.as_secs()).unwrap_or(u32::MAX);
                if expiry > 0 {
                    options.set_session_expiry_interval(Some(expiry));
                }
                if let (Some(user), Some(password)) = (&config.username, &config.password) {
                    options.set_credentials(user, password.expose());
                }
                if let Some(transport) = transport(config)? {
                    options.set_transport(transport);
                }
                let (client, event_loop) = v5::AsyncClient::new(options, capacity);
                (Client::V5(client), EventLoop::V5(Box::new(event_loop)))
            }
            Protocol::V311 => {
                let mut options =
                    rumqttc::MqttOptions::new(&config.client_id, &config.host, config.port);
                options
                    .set_keep_alive(config.keep_alive)
                    .set_clean_session(config.clean_start)
                    .set_manual_acks(true)
                    .set_inflight(config.inflight)
                    .set_max_packet_size(
                        config.max_packet_size as usize,
                        config.max_packet_size as usize,
                    );
                if let (Some(user), Some(password)) = (&config.username, &config.password) {
                    options.set_credentials(user, password.expose());
                }
                if let Some(transport) = transport(config)? {
                    options.set_transport(transport);
                }
                let (client, event_loop) = rumqttc::AsyncClient::new(options, capacity);
                (Client::V311(client), EventLoop::V311(Box::new(event_loop)))
            }
        };
        let shared = Arc::new(Shared {
            client,
            protocol: config.protocol,
            shutdown,
            redactor: redactor.clone(),
            ack_timeout: config.ack_timeout,
            client_id: config.client_id.clone(),
            order: tokio::sync::Mutex::new(()),
            waiters: Mutex::new(Waiters::default()),
            routes: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            replies: Mutex::new(HashMap::new()),
            reply_route: tokio::sync::OnceCell::new(),
            persistent: !config.clean_start,
            parked: Mutex::new(Vec::new()),
        });
        // The first CONNACK, or the first error: `connect` reports it.
        let first = tokio::time::timeout(config.connect_timeout, async {
            loop {
                match event_loop.poll().await {
                    Ok(Event::ConnAck { .. }) => return Ok(()),
                    Ok(_) => {}
                    Err(error) => return Err(error),
                }
            }
        })
        .await;
        match first {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(MqttError::Connect(redactor.redact(error))),
            Err(_) => {
                return Err(MqttError::Connect(format!(
                    "no CONNACK from {}:{} within {:?}",
                    config.host, config.port, config.connect_timeout
                )));
            }
        }
        let task = tokio::spawn(drive(event_loop, Arc::clone(&shared), config.reconnect));
        Ok(Self {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// Waits (bounded) for acknowledged publishes to complete, disconnects and waits for
    /// the event loop to end.
    pub(crate) async fn close(&self, timeout: Duration) -> Result<(), MqttError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let half = tokio::time::Instant::now() + timeout / 2;
        while tokio::time::Instant::now() < half {
            let idle = {
                let waiters = self.shared.waiters.lock();
                waiters.publish_queue.is_empty() && waiters.publish_by_id.is_empty()
            };
            if idle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.shared.shutdown.trigger();
        let disconnect = tokio::time::timeout_at(deadline, self.shared.client.disconnect()).await;
        let task = self.task.lock().take();
        let mut result = Ok(());
        if let Some(mut task) = task
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            task.abort();
            result = Err(MqttError::Shutdown(format!(
                "the connection did not close within {timeout:?}; it was dropped"
            )));
        }
        // Subscriber queues end with the routes.
        self.shared.routes.lock().clear();
        fail_all(&self.shared, "the connection was shut down");
        if let Ok(Err(error)) = disconnect {
            tracing::debug!(error = %self.shared.redactor.redact(error), "MQTT disconnect");
        }
        result
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

fn transport(config: &Config) -> Result<Option<rumqttc::Transport>, MqttError> {
    if !config.tls.is_configured() {
        return Ok(None);
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| {
            MqttError::Config(format!(
                "cannot read TLS file `{}`: {error}",
                path.display()
            ))
        })
    };
    if config.tls.roots().is_empty() && config.tls.client().is_none() {
        return Ok(Some(rumqttc::Transport::tls_with_default_config()));
    }
    let mut ca = Vec::new();
    for root in config.tls.roots() {
        ca.extend(read(root)?);
    }
    let client_auth = match config.tls.client() {
        Some((cert, key)) => Some((read(cert)?, read(key)?)),
        None => None,
    };
    if ca.is_empty() {
        return Err(MqttError::Config(
            "a TLS client certificate needs root certificates too: add `Tls::root_certificates(..)`".to_owned(),
        ));
    }
    Ok(Some(rumqttc::Transport::tls(ca, client_auth, None)))
}

fn fail_all(shared: &Shared, why: &str) {
    let mut guard = shared.waiters.lock();
    let waiters = &mut *guard;
    for answer in waiters
        .publish_queue
        .drain(..)
        .chain(waiters.publish_by_id.drain().map(|(_, a)| a))
    {
        let _ = answer.send(Err(why.to_owned()));
    }
    for answer in waiters
        .subscribe_queue
        .drain(..)
        .chain(waiters.subscribe_by_id.drain().map(|(_, a)| a))
        .flatten()
    {
        let _ = answer.send(Err(why.to_owned()));
    }
}

async fn drive(mut event_loop: EventLoop, shared: Arc<Shared>, backoff: ruststream::kit::Backoff) {
    let mut attempt = 0_u32;
    loop {
        match event_loop.poll().await {
            Ok(Event::Sent(Outgoing::Disconnect)) => break,
            Ok(Event::Sent(Outgoing::Publish(pkid))) if pkid != 0 => {
                let mut waiters = shared.waiters.lock();
                if !waiters.publish_by_id.contains_key(&pkid)
                    && let Some(answer) = waiters.publish_queue.pop_front()
                {
                    waiters.publish_by_id.insert(pkid, answer);
                }
            }
            Ok(Event::Sent(Outgoing::Subscribe(pkid))) => {
                let mut waiters = shared.waiters.lock();
                if let Some(answer) = waiters.subscribe_queue.pop_front() {
                    waiters.subscribe_by_id.insert(pkid, answer);
                }
            }
            Ok(Event::Sent(_) | Event::Other) => {}
            Ok(Event::Acked { pkid, error }) => {
                if let Some(answer) = shared.waiters.lock().publish_by_id.remove(&pkid) {
                    let _ = answer.send(error.map_or(Ok(()), Err));
                }
            }
            Ok(Event::SubAck { pkid, error }) => {
                if let Some(Some(answer)) = shared.waiters.lock().subscribe_by_id.remove(&pkid) {
                    let _ = answer.send(error.map_or(Ok(()), Err));
                }
            }
            Ok(Event::ConnAck { session_present }) => {
                tracing::info!(session_present, "MQTT reconnected");
                attempt = 0;
                // Restore every subscription (a clean session has none; a kept one gets
                // the same options again, which changes nothing).
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let filters: Vec<FilterOptions> = {
                        let routes = shared.routes.lock();
                        let mut seen = Vec::<FilterOptions>::new();
                        for route in routes.iter() {
                            if !seen.iter().any(|f| f.filter == route.options.filter) {
                                seen.push(route.options.clone());
                            }
                        }
                        seen
                    };
                    for filter in filters {
                        let _order = shared.order.lock().await;
                        shared.waiters.lock().subscribe_queue.push_back(None);
                        if let Err(error) = shared.client.subscribe(&filter).await {
                            tracing::warn!(filter = %filter.filter, error = %error, "MQTT: restoring a subscription failed");
                        }
                    }
                });
            }
            Ok(Event::Publish(incoming)) => route(&shared, incoming).await,
            Err(error) => {
                if shared.shutdown.is_triggered() {
                    break;
                }
                // Subscribes sent and not answered are not re-sent by the client.
                {
                    let mut waiters = shared.waiters.lock();
                    for answer in waiters.subscribe_by_id.drain().filter_map(|(_, a)| a) {
                        let _ = answer.send(Err(
                            "the connection was lost before the SUBACK; subscribe again".to_owned(),
                        ));
                    }
                }
                let delay = backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                tracing::warn!(error = %shared.redactor.redact(&error), ?delay, "MQTT connection lost; reconnecting");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.shutdown.triggered() => break,
                }
            }
        }
    }
}

/// Hands an incoming publish to every matching route; acknowledges at once one that no
/// route takes.
async fn route(shared: &Arc<Shared>, incoming: Incoming) {
    let mut senders = Vec::new();
    let mut replies = false;
    {
        let routes = shared.routes.lock();
        for route in routes.iter() {
            if MqttTopics.matches(&route.options.filter, &incoming.topic) {
                match &route.target {
                    Target::Subscriber(sender) => senders.push(sender.clone()),
                    Target::Replies => replies = true,
                }
            }
        }
        if senders.is_empty() && !replies && shared.persistent && incoming.qos != Qos::AtMostOnce {
            shared.parked.lock().push(incoming);
            return;
        }
    }
    let Incoming {
        topic,
        payload,
        headers,
        reply_to,
        qos,
        pkid,
    } = incoming;
    if replies && let Some(answer) = shared.replies.lock().remove(&topic) {
        let _ = answer.send(ruststream::Reply {
            payload: payload.clone(),
            headers: headers.clone(),
        });
    }
    if senders.is_empty() || qos == Qos::AtMostOnce {
        if qos != Qos::AtMostOnce {
            let _ = shared.client.ack(qos, pkid).await;
        }
        let topic: Arc<str> = Arc::from(topic);
        for sender in senders {
            let _ = sender.send(MqttMessage::live(
                Arc::clone(&topic),
                payload.clone(),
                headers.clone(),
                reply_to.clone(),
                None,
            ));
        }
        return;
    }
    let handle = Arc::new(AckHandle {
        shared: Arc::clone(shared),
        qos,
        pkid,
        holders: AtomicUsize::new(senders.len()),
    });
    let topic: Arc<str> = Arc::from(topic);
    for sender in senders {
        let message = MqttMessage::live(
            Arc::clone(&topic),
            payload.clone(),
            headers.clone(),
            reply_to.clone(),
            Some(Arc::clone(&handle)),
        );
        if let Err(mpsc::error::SendError(message)) = sender.send(message) {
            // The subscriber went away meanwhile.
            message.abandon();
        }
    }
}

impl Shared {
    /// Subscribes `options.filter` and registers the route; returns once the server
    /// answered the SUBACK.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        options: FilterOptions,
        sender: mpsc::UnboundedSender<MqttMessage>,
    ) -> Result<u64, MqttError> {
        self.add_route(options, Target::Subscriber(sender)).await
    }

    async fn add_route(
        self: &Arc<Self>,
        options: FilterOptions,
        target: Target,
    ) -> Result<u64, MqttError> {
        if self.shutdown.is_triggered() {
            return Err(MqttError::Closed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Route first, so nothing the server sends after the SUBACK is missed.
        self.routes.lock().push(Route {
            id,
            options: options.clone(),
            target,
        });
        // The session's backlog that waited for this filter, in arrival order.
        let waiting: Vec<Incoming> = {
            let mut parked = self.parked.lock();
            let (matching, rest) = std::mem::take(&mut *parked)
                .into_iter()
                .partition(|incoming| MqttTopics.matches(&options.filter, &incoming.topic));
            *parked = rest;
            matching
        };
        for incoming in waiting {
            route(self, incoming).await;
        }
        let (answer, answered) = oneshot::channel();
        {
            let _order = self.order.lock().await;
            self.waiters.lock().subscribe_queue.push_back(Some(answer));
            if let Err(error) = self.client.subscribe(&options).await {
                self.waiters.lock().subscribe_queue.pop_back();
                self.remove_route(id);
                return Err(self.subscribe_error(&options.filter, error));
            }
        }
        let outcome = match tokio::time::timeout(self.ack_timeout, answered).await {
            Ok(Ok(Ok(()))) => Ok(id),
            Ok(Ok(Err(error))) => Err(self.subscribe_error(&options.filter, error)),
            Ok(Err(_)) => Err(MqttError::Closed),
            Err(_) => Err(self.subscribe_error(
                &options.filter,
                format!("no SUBACK within {:?}", self.ack_timeout),
            )),
        };
        if outcome.is_err() {
            self.remove_route(id);
        }
        outcome
    }

    fn subscribe_error(&self, filter: &str, reason: impl std::fmt::Display) -> MqttError {
        MqttError::Subscribe {
            filter: filter.to_owned(),
            reason: self.redactor.redact(reason),
        }
    }

    fn remove_route(&self, id: u64) -> Option<String> {
        let mut routes = self.routes.lock();
        let index = routes.iter().position(|route| route.id == id)?;
        let route = routes.remove(index);
        let still_used = routes
            .iter()
            .any(|other| other.options.filter == route.options.filter);
        (!still_used).then_some(route.options.filter)
    }

    /// Drops a subscriber's route, and unsubscribes its filter when no other route uses it.
    pub(crate) fn unsubscribe(self: &Arc<Self>, id: u64) {
        if let Some(filter) = self.remove_route(id)
            && !self.shutdown.is_triggered()
        {
            let shared = Arc::clone(self);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _order = shared.order.lock().await;
                    // A subscription opened since on the same filter keeps it.
                    let used = shared
                        .routes
                        .lock()
                        .iter()
                        .any(|route| route.options.filter == filter);
                    if !used {
                        let _ = shared.client.unsubscribe(&filter).await;
                    }
                });
            }
        }
    }

    /// Publishes, and for QoS 1 and 2 waits for PUBACK or PUBCOMP.
    pub(crate) async fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        options: PublishOptions,
    ) -> Result<(), MqttError> {
        if self.shutdown.is_triggered() {
            return Err(MqttError::Closed);
        }
        let error = |reason: String| MqttError::Publish {
            topic: topic.to_owned(),
            reason: self.redactor.redact(reason),
        };
        if options.qos == Qos::AtMostOnce {
            return self
                .client
                .publish(topic, payload, options)
                .await
                .map_err(error);
        }
        let (answer, answered) = oneshot::channel();
        {
            let _order = self.order.lock().await;
            self.waiters.lock().publish_queue.push_back(answer);
            if let Err(reason) = self.client.publish(topic, payload, options).await {
                self.waiters.lock().publish_queue.pop_back();
                return Err(error(reason));
            }
        }
        match tokio::time::timeout(self.ack_timeout, answered).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(error(reason)),
            Ok(Err(_)) => Err(error(
                "the connection closed before the server acknowledged it".to_owned(),
            )),
            Err(_) => Err(error(format!(
                "no acknowledgement within {:?}",
                self.ack_timeout
            ))),
        }
    }

    /// Publishes a request with a response topic of its own and waits for the reply.
    pub(crate) async fn request(
        self: &Arc<Self>,
        topic: &str,
        payload: Bytes,
        mut options: PublishOptions,
        timeout: Duration,
    ) -> Result<ruststream::Reply, MqttError> {
        let error = |reason: String| MqttError::Request {
            topic: topic.to_owned(),
            reason,
        };
        if self.protocol != Protocol::V5 {
            return Err(error(
                "request-reply needs MQTT 5 (response topic and correlation data); use `Protocol::V5`".to_owned(),
            ));
        }
        // The client id as one topic level (a `/`, `+` or `#` in it would change the filter).
        let level: String = self
            .client_id
            .chars()
            .map(|c| if matches!(c, '/' | '+' | '#') { '_' } else { c })
            .collect();
        let base = format!("ruststream/replies/{level}");
        self.reply_route
            .get_or_try_init(|| async {
                let filter = FilterOptions {
                    filter: format!("{base}/+"),
                    qos: Qos::AtLeastOnce,
                    no_local: false,
                    retain_handling: RetainHandling::DoNotSend,
                };
                self.add_route(filter, Target::Replies).await.map(|_| ())
            })
            .await?;
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let response_topic = format!("{base}/{n}");
        let (answer, answered) = oneshot::channel();
        self.replies.lock().insert(response_topic.clone(), answer);
        let properties = options.properties.get_or_insert_with(Default::default);
        properties.response_topic = Some(response_topic.clone());
        if properties.correlation_data.is_none() {
            properties.correlation_data = Some(Bytes::from(n.to_string()));
        }
        let published = self.publish(topic, payload, options).await;
        if let Err(published) = published {
            self.replies.lock().remove(&response_topic);
            return Err(published);
        }
        let reply = tokio::time::timeout(timeout, answered).await;
        self.replies.lock().remove(&response_topic);
        match reply {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(MqttError::Closed),
            Err(_) => Err(error(format!("no reply within {timeout:?}"))),
        }
    }
}
