//! The topology descriptors: [`RabbitQueue`] (the subscription source: a classic or
//! quorum queue, its arguments and its bindings) and [`RabbitExchange`].

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use ruststream::SubscriptionSource;

use crate::broker::RabbitBroker;
use crate::error::{RabbitError, shown};
use crate::subscriber::RabbitSubscriber;

/// A value of a queue or exchange argument, or of a header to match in a binding.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// An integer (`x-message-ttl`, `x-max-length`...).
    Int(i64),
    /// A string (`x-dead-letter-exchange`, `x-overflow`...).
    Str(String),
    /// A boolean (`x-single-active-consumer`...).
    Bool(bool),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Str(value)
    }
}

impl Value {
    /// The value as header bytes would carry it: strings as they are, the rest as text.
    #[cfg(feature = "testing")]
    pub(crate) fn to_text(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Str(s) => s.clone(),
            Self::Bool(b) => b.to_string(),
        }
    }

    fn to_amqp(&self) -> AMQPValue {
        match self {
            Self::Int(n) => AMQPValue::LongLongInt(*n),
            Self::Str(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
            Self::Bool(b) => AMQPValue::Boolean(*b),
        }
    }
}

/// An AMQP name (queue, exchange, routing key, argument key): at most 255 bytes.
pub(crate) fn short(name: &str) -> Result<ShortString, RabbitError> {
    ShortString::try_new(name).map_err(|_| RabbitError::Name {
        name: shown(name),
        reason: "AMQP names (queues, exchanges, routing keys) are at most 255 bytes",
    })
}

fn table(arguments: &[(String, Value)]) -> Result<FieldTable, RabbitError> {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        table.insert(short(key)?, value.to_amqp());
    }
    Ok(table)
}

/// Sets `key` to `value` in `arguments`, replacing an earlier value.
fn set(arguments: &mut Vec<(String, Value)>, key: &str, value: Value) {
    arguments.retain(|(k, _)| k != key);
    arguments.push((key.to_owned(), value));
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The kind of an exchange: how it routes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeType {
    /// To the queues bound with exactly the routing key.
    Direct,
    /// To the queues whose binding pattern matches the routing key (`*` one word, `#`
    /// zero or more, words separated by `.`).
    Topic,
    /// To every bound queue.
    Fanout,
    /// To the queues whose binding's header match (`x-match` `all` or `any`) holds.
    Headers,
    /// A plugin's exchange type (`x-consistent-hash`...).
    Custom(String),
}

/// An exchange: its name, kind, flags and arguments, declared before use (or only
/// checked, [`passive`](Self::passive)).
///
/// Exchanges are durable and not auto-deleted unless said otherwise, as in FastStream's
/// `RabbitExchange`.
///
/// ```
/// use ruststream_rabbitmq::RabbitExchange;
///
/// let events = RabbitExchange::topic("events").durable(true);
/// let alternate = RabbitExchange::fanout("unrouted").auto_delete(true);
/// let events = events.argument("alternate-exchange", "unrouted");
/// assert_eq!(events.name(), "events");
/// # let _ = alternate;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RabbitExchange {
    name: String,
    kind: ExchangeType,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    passive: bool,
    arguments: Vec<(String, Value)>,
}

impl RabbitExchange {
    /// An exchange of `kind`.
    pub fn new(name: impl Into<String>, kind: ExchangeType) -> Self {
        Self {
            name: name.into(),
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            passive: false,
            arguments: Vec::new(),
        }
    }

    /// A direct exchange.
    pub fn direct(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeType::Direct)
    }

    /// A topic exchange.
    pub fn topic(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeType::Topic)
    }

    /// A fanout exchange.
    pub fn fanout(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeType::Fanout)
    }

    /// A headers exchange.
    pub fn headers(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeType::Headers)
    }

    /// Survives a restart of the server (default `true`).
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Deleted once its last binding goes (default `false`).
    #[must_use]
    pub fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }

    /// Takes messages only from other exchanges, never from publishers (default `false`).
    #[must_use]
    pub fn internal(mut self, internal: bool) -> Self {
        self.internal = internal;
        self
    }

    /// Only checks that the exchange exists (declared by someone else), never creates
    /// or changes it: a missing one is an error naming it.
    #[must_use]
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }

    /// Sets an argument (`alternate-exchange`...).
    #[must_use]
    pub fn argument(mut self, key: &str, value: impl Into<Value>) -> Self {
        set(&mut self.arguments, key, value.into());
        self
    }

    /// The exchange's name (`""` is the default exchange).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exchange's kind.
    pub fn kind(&self) -> &ExchangeType {
        &self.kind
    }

    /// Whether it is durable.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether it is only checked, not declared.
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// Whether it is deleted with its last binding.
    pub fn is_auto_delete(&self) -> bool {
        self.auto_delete
    }

    /// Declares it on `channel` (the default exchange and `amq.*` ones are only checked
    /// to exist: they cannot be declared).
    pub(crate) async fn declare(&self, channel: &Channel) -> Result<(), RabbitError> {
        if self.name.is_empty() {
            return Ok(());
        }
        let kind = match &self.kind {
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Fanout => ExchangeKind::Fanout,
            ExchangeType::Headers => ExchangeKind::Headers,
            ExchangeType::Custom(kind) => ExchangeKind::Custom(kind.clone()),
        };
        let options = ExchangeDeclareOptions {
            passive: self.passive || self.name.starts_with("amq."),
            durable: self.durable,
            auto_delete: self.auto_delete,
            internal: self.internal,
            nowait: false,
        };
        channel
            .exchange_declare(short(&self.name)?, kind, options, table(&self.arguments)?)
            .await
            .map_err(|error| RabbitError::Topology {
                what: format!("exchange `{}`", shown(&self.name)),
                reason: explain(&error.to_string(), self.passive),
            })
    }
}

/// Adds the fix to a server refusal the user can act on.
pub(crate) fn explain(reason: &str, passive: bool) -> String {
    if reason.contains("NOT_FOUND") && passive {
        format!(
            "{reason}; it is declared passive (only checked): declare it first, or drop `.passive()`"
        )
    } else if reason.contains("PRECONDITION_FAILED") {
        format!(
            "{reason}; it exists with other flags or arguments: declare it as it is, delete it, or use `.passive()` to use it as it is"
        )
    } else if reason.contains("RESOURCE_LOCKED") {
        format!("{reason}; an exclusive queue belongs to another connection")
    } else {
        reason.to_owned()
    }
}

/// Which kind of queue a [`RabbitQueue`] declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueType {
    /// A classic queue (the server's default).
    Classic,
    /// A quorum queue: replicated, durable, with a delivery count
    /// (`x-delivery-count`) that becomes the message's redelivery count.
    Quorum,
}

/// How a binding selects messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Match {
    RoutingKey(String),
    Headers {
        all: bool,
        headers: Vec<(String, Value)>,
    },
}

/// A binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    exchange: RabbitExchange,
    matching: Match,
}

impl Binding {
    /// The exchange bound from.
    pub fn exchange(&self) -> &RabbitExchange {
        &self.exchange
    }

    #[cfg(feature = "testing")]
    pub(crate) fn matching(&self) -> &Match {
        &self.matching
    }

    /// The routing key (or pattern) of a routing-key binding.
    pub fn routing_key(&self) -> Option<&str> {
        match &self.matching {
            Match::RoutingKey(key) => Some(key),
            Match::Headers { .. } => None,
        }
    }
}

/// A queue to consume: its name, kind, flags, arguments and bindings, declared when the
/// subscription opens (and again after a reconnect), or only checked
/// ([`passive`](Self::passive)). The subscription source of this crate.
///
/// `RabbitQueue::new("orders")` is a durable classic queue; builder methods say
/// everything else, as FastStream's `RabbitQueue` does:
///
/// ```
/// use std::time::Duration;
/// use ruststream_rabbitmq::{RabbitExchange, RabbitQueue};
///
/// let queue = RabbitQueue::new("billing")
///     .quorum()
///     .message_ttl(Duration::from_secs(3600))
///     .max_length(100_000)
///     .dead_letter_exchange("billing.dlx")
///     .bind(RabbitExchange::topic("orders"), "orders.*.created")
///     .prefetch(64);
/// # let _ = queue;
/// ```
///
/// A message published to the default exchange with the queue's name as routing key
/// reaches it without any binding.
#[derive(Debug, Clone, PartialEq)]
pub struct RabbitQueue {
    name: String,
    kind: QueueType,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    passive: bool,
    arguments: Vec<(String, Value)>,
    bindings: Vec<Binding>,
    prefetch: Option<u16>,
    consumer_tag: String,
}

impl RabbitQueue {
    /// A durable classic queue named `name`. An empty name asks the server for a
    /// generated one (with [`exclusive`](Self::exclusive), a private queue per
    /// subscriber).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: QueueType::Classic,
            durable: true,
            exclusive: false,
            auto_delete: false,
            passive: false,
            arguments: Vec::new(),
            bindings: Vec::new(),
            prefetch: None,
            consumer_tag: String::new(),
        }
    }

    /// Declares a quorum queue (`x-queue-type: quorum`): always durable, never exclusive
    /// or auto-deleted; its messages say how often they were delivered.
    #[must_use]
    pub fn quorum(mut self) -> Self {
        self.kind = QueueType::Quorum;
        self.durable = true;
        set(&mut self.arguments, "x-queue-type", Value::from("quorum"));
        self
    }

    /// Declares a classic queue (the default).
    #[must_use]
    pub fn classic(mut self) -> Self {
        self.kind = QueueType::Classic;
        self.arguments.retain(|(key, _)| key != "x-queue-type");
        self
    }

    /// Survives a restart of the server (default `true`).
    #[must_use]
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Belongs to this subscriber's connection alone and is deleted with it: a private
    /// queue, for fan-out (every subscriber its own). Not durable.
    #[must_use]
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self.durable = false;
        self
    }

    /// Deleted once its last consumer goes (default `false`).
    #[must_use]
    pub fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }

    /// Only checks that the queue exists (declared by someone else), never creates or
    /// changes it; its bindings are still declared. A missing queue is an error naming
    /// it.
    #[must_use]
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }

    /// Sets an argument (`x-max-priority`, `x-overflow`, `x-single-active-consumer`...).
    #[must_use]
    pub fn argument(mut self, key: &str, value: impl Into<Value>) -> Self {
        set(&mut self.arguments, key, value.into());
        self
    }

    /// Messages older than `ttl` are dropped, or dead-lettered (`x-message-ttl`).
    #[must_use]
    pub fn message_ttl(self, ttl: Duration) -> Self {
        self.argument("x-message-ttl", millis(ttl))
    }

    /// The queue is deleted after `idle` without consumers or declarations (`x-expires`).
    #[must_use]
    pub fn expires(self, idle: Duration) -> Self {
        self.argument("x-expires", millis(idle).max(1))
    }

    /// At most `n` messages are kept; the oldest are dropped or dead-lettered
    /// (`x-max-length`).
    #[must_use]
    pub fn max_length(self, n: u32) -> Self {
        self.argument("x-max-length", n)
    }

    /// Rejected (`nack(false)`), expired and overflowing messages go to `exchange`
    /// (`x-dead-letter-exchange`; `""` is the default exchange, with
    /// [`dead_letter_routing_key`](Self::dead_letter_routing_key) naming a queue).
    #[must_use]
    pub fn dead_letter_exchange(self, exchange: &str) -> Self {
        self.argument("x-dead-letter-exchange", exchange)
    }

    /// The routing key of dead letters (`x-dead-letter-routing-key`; default: the
    /// message's own).
    #[must_use]
    pub fn dead_letter_routing_key(self, routing_key: &str) -> Self {
        self.argument("x-dead-letter-routing-key", routing_key)
    }

    /// Binds the queue to `exchange` with `routing_key` (a pattern on a topic exchange,
    /// ignored by a fanout one). The exchange is declared first.
    #[must_use]
    pub fn bind(mut self, exchange: RabbitExchange, routing_key: impl Into<String>) -> Self {
        self.bindings.push(Binding {
            exchange,
            matching: Match::RoutingKey(routing_key.into()),
        });
        self
    }

    /// Binds the queue to a headers `exchange`: messages whose headers hold all
    /// (`all = true`, `x-match: all`) or any (`x-match: any`) of `headers`.
    #[must_use]
    pub fn bind_headers<K, V>(
        mut self,
        exchange: RabbitExchange,
        all: bool,
        headers: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<Value>,
    {
        self.bindings.push(Binding {
            exchange,
            matching: Match::Headers {
                all,
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            },
        });
        self
    }

    /// How many unacknowledged messages the server sends this subscription ahead
    /// (`basic.qos`); default [`Config::prefetch`](crate::Config::prefetch). Keep it at
    /// least the subscriber's `workers(n)`.
    #[must_use]
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = Some(prefetch.max(1));
        self
    }

    /// The consumer tag (default: one the server generates).
    #[must_use]
    pub fn consumer_tag(mut self, tag: impl Into<String>) -> Self {
        self.consumer_tag = tag.into();
        self
    }

    /// The queue's kind.
    pub fn queue_type(&self) -> QueueType {
        self.kind
    }

    /// The queue's bindings.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Whether it is only checked, not declared.
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// Whether it is durable.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether it is exclusive.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Whether it is deleted with its last consumer.
    pub fn is_auto_delete(&self) -> bool {
        self.auto_delete
    }

    /// The value of argument `key`, if set.
    pub fn argument_value(&self, key: &str) -> Option<&Value> {
        self.arguments
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value)
    }

    pub(crate) fn prefetch_count(&self) -> Option<u16> {
        self.prefetch
    }

    pub(crate) fn tag(&self) -> &str {
        &self.consumer_tag
    }

    /// Declares (or checks) the queue, its exchanges and bindings on `channel`;
    /// returns the queue's name (the generated one for an unnamed queue).
    pub(crate) async fn declare(&self, channel: &Channel) -> Result<String, RabbitError> {
        let options = QueueDeclareOptions {
            passive: self.passive,
            durable: self.durable,
            exclusive: self.exclusive,
            auto_delete: self.auto_delete,
            nowait: false,
        };
        let queue = channel
            .queue_declare(short(&self.name)?, options, table(&self.arguments)?)
            .await
            .map_err(|error| RabbitError::Topology {
                what: format!("queue `{}`", shown(&self.name)),
                reason: explain(&error.to_string(), self.passive),
            })?;
        let name = queue.name().as_str().to_owned();
        for binding in &self.bindings {
            binding.exchange.declare(channel).await?;
            let (key, arguments) = match &binding.matching {
                Match::RoutingKey(key) => (short(key)?, FieldTable::default()),
                Match::Headers { all, headers } => {
                    let mut arguments = table(headers)?;
                    arguments.insert(
                        "x-match".into(),
                        AMQPValue::LongString(if *all { "all" } else { "any" }.into()),
                    );
                    (ShortString::default(), arguments)
                }
            };
            channel
                .queue_bind(
                    short(&name)?,
                    short(binding.exchange.name())?,
                    key,
                    QueueBindOptions::default(),
                    arguments,
                )
                .await
                .map_err(|error| RabbitError::Topology {
                    what: format!(
                        "the binding of queue `{}` to exchange `{}`",
                        shown(&name),
                        shown(binding.exchange.name())
                    ),
                    reason: error.to_string(),
                })?;
        }
        Ok(name)
    }

    pub(crate) fn name_str(&self) -> &str {
        &self.name
    }
}

impl SubscriptionSource<RabbitBroker> for RabbitQueue {
    type Subscriber = RabbitSubscriber;

    fn name(&self) -> &str {
        &self.name
    }

    async fn subscribe(self, broker: &RabbitBroker) -> Result<RabbitSubscriber, RabbitError> {
        broker.open(self).await
    }

    /// A router's prefix goes before the queue's name (bindings are left as they are).
    fn with_prefix(mut self, prefix: &str) -> Result<Self, Self> {
        if self.name.is_empty() {
            return Err(self);
        }
        self.name.insert_str(0, prefix);
        Ok(self)
    }

    fn operation_bindings(&self) -> Option<serde_json::Value> {
        Some(crate::asyncapi::queue_binding(self))
    }
}
