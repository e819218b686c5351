//! Test support (feature `testing`): the in-process mode, [`RabbitBroker::in_process`],
//! and `TestBroker` for [`RabbitBroker`].
//!
//! In process, exchanges, queues and bindings are kept in memory and routed the way the
//! server routes them (the default exchange by queue name, direct, topic with `*` and
//! `#`, fanout, headers with `x-match` `all` or `any`); each queue is a group of the
//! `ruststream::testing::TestClient`, so its consumers share its messages. It does core
//! routing only: settling is recorded, never performed, and nothing is redelivered,
//! delayed or dead-lettered; those are verified against a real server.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use ruststream::matching::NameMatcher;
use ruststream::testing::{Quiescence, TestBroker, TestClient};
use ruststream::{Broker, Headers, OutgoingMessage, Publisher, Reply, SubscriberExt};

use crate::broker::RabbitBroker;
use crate::config::Config;
use crate::error::{RabbitError, shown};
use crate::message::Origin;
use crate::publisher::{DIRECT_REPLY_TO, properties_of};
use crate::source::{ExchangeType, Match, RabbitExchange, RabbitQueue, short};
use crate::subscriber::{RabbitSubscriber, Source};

/// The exchange a message went through, carried in process beside its headers.
pub(crate) const EXCHANGE_HEADER: &str = "x-ruststream-in-process-exchange";
/// The routing key of a message, carried in process beside its headers.
pub(crate) const ROUTING_KEY_HEADER: &str = "x-ruststream-in-process-routing-key";

/// Queue names, matched exactly: the test client's groups are the queues.
#[derive(Debug, Clone, Copy)]
struct QueueNames;

impl NameMatcher for QueueNames {
    fn validate_pattern(&self, pattern: &str) -> Result<(), String> {
        short(pattern)
            .map(|_| ())
            .map_err(|error| error.to_string())
    }

    fn validate_name(&self, name: &str) -> Result<(), String> {
        self.validate_pattern(name)
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        pattern == name
    }

    fn is_literal(&self, _: &str) -> bool {
        true
    }
}

#[derive(Default)]
struct Model {
    exchanges: HashMap<String, (ExchangeType, Vec<(String, Match)>)>,
    queues: HashSet<String>,
}

/// The in-process server: the topology, and the test client holding the queues.
pub(crate) struct LocalServer {
    client: TestClient,
    model: Mutex<Model>,
    counter: AtomicU64,
}

/// Whether a topic `pattern` (`*` one word, `#` zero or more) matches `key`.
fn topic_matches(pattern: &str, key: &str) -> bool {
    fn words<'a>(pattern: &[&'a str], key: &[&'a str]) -> bool {
        match (pattern.split_first(), key.split_first()) {
            (None, None) => true,
            (Some((&"#", rest)), _) => {
                words(rest, key)
                    || key
                        .split_first()
                        .is_some_and(|(_, tail)| words(pattern, tail))
            }
            (Some((&"*", rest)), Some((_, tail))) => words(rest, tail),
            (Some((word, rest)), Some((first, tail))) => word == first && words(rest, tail),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    words(&pattern, &key)
}

/// Whether `headers` satisfy a headers binding.
fn headers_match(all: bool, wanted: &[(String, crate::Value)], headers: &Headers) -> bool {
    let mut wanted = wanted.iter().filter(|(name, _)| !name.starts_with("x-"));
    let holds = |(name, value): &(String, crate::Value)| {
        headers.get(name) == Some(value.to_text().as_bytes())
    };
    if all {
        wanted.all(holds)
    } else {
        wanted.any(holds)
    }
}

fn local_error(error: impl std::fmt::Display) -> RabbitError {
    RabbitError::Publish(format!("in process: {error}"))
}

impl LocalServer {
    fn new() -> Self {
        Self {
            client: TestClient::new(QueueNames),
            model: Mutex::new(Model::default()),
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn backlog(&self) -> usize {
        self.client.backlog()
    }

    pub(crate) async fn connect(&self) -> Result<(), RabbitError> {
        self.client.connect().await.map_err(local_error)
    }

    pub(crate) async fn shutdown(&self) -> Result<(), RabbitError> {
        self.client
            .shutdown()
            .await
            .map_err(|error| RabbitError::Shutdown(error.to_string()))
    }

    pub(crate) fn declare_exchange(&self, exchange: &RabbitExchange) -> Result<(), RabbitError> {
        if exchange.name().is_empty() {
            return Ok(());
        }
        short(exchange.name())?;
        let mut model = self.model.lock();
        match model.exchanges.get(exchange.name()) {
            Some((kind, _)) if kind != exchange.kind() => Err(RabbitError::Topology {
                what: format!("exchange `{}`", shown(exchange.name())),
                reason: format!(
                    "PRECONDITION_FAILED - it exists as a {kind:?} exchange; declare it as it is"
                ),
            }),
            Some(_) => Ok(()),
            None if exchange.is_passive() => Err(RabbitError::Topology {
                what: format!("exchange `{}`", shown(exchange.name())),
                reason: "NOT_FOUND; it is declared passive (only checked): declare it first, or drop `.passive()`".to_owned(),
            }),
            None => {
                model
                    .exchanges
                    .insert(exchange.name().to_owned(), (exchange.kind().clone(), Vec::new()));
                Ok(())
            }
        }
    }

    /// Declares the queue and its bindings; returns its name.
    pub(crate) fn declare_queue(&self, queue: &RabbitQueue) -> Result<String, RabbitError> {
        let name = match queue.name_str() {
            "" => format!("amq.gen-{}", self.counter.fetch_add(1, Ordering::Relaxed)),
            name => short(name).map(|_| name.to_owned())?,
        };
        for binding in queue.bindings() {
            self.declare_exchange(binding.exchange())?;
        }
        let mut model = self.model.lock();
        if queue.is_passive() && !model.queues.contains(&name) {
            return Err(RabbitError::Topology {
                what: format!("queue `{}`", shown(&name)),
                reason: "NOT_FOUND; it is declared passive (only checked): declare it first, or drop `.passive()`".to_owned(),
            });
        }
        model.queues.insert(name.clone());
        for binding in queue.bindings() {
            if let Some((_, bindings)) = model.exchanges.get_mut(binding.exchange().name()) {
                let entry = (name.clone(), binding.matching().clone());
                if !bindings.contains(&entry) {
                    bindings.push(entry);
                }
            }
        }
        Ok(name)
    }

    pub(crate) fn delete_queue(&self, name: &str) {
        let mut model = self.model.lock();
        model.queues.remove(name);
        for (_, bindings) in model.exchanges.values_mut() {
            bindings.retain(|(queue, _)| queue != name);
        }
    }

    pub(crate) fn delete_exchange(&self, name: &str) {
        self.model.lock().exchanges.remove(name);
    }

    /// The queues a message to `exchange` with `routing_key` and `headers` reaches.
    fn route(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: &Headers,
    ) -> Result<Vec<String>, RabbitError> {
        let model = self.model.lock();
        if exchange.is_empty() {
            return Ok(model
                .queues
                .get(routing_key)
                .map(|queue| vec![queue.clone()])
                .unwrap_or_default());
        }
        let Some((kind, bindings)) = model.exchanges.get(exchange) else {
            return Err(RabbitError::Publish(format!(
                "NOT_FOUND - no exchange `{}`: declare it first",
                shown(exchange)
            )));
        };
        let mut queues: Vec<String> = Vec::new();
        for (queue, matching) in bindings {
            let hit = match (kind, matching) {
                (ExchangeType::Fanout, _) => true,
                (ExchangeType::Direct, Match::RoutingKey(key)) => key == routing_key,
                (ExchangeType::Topic, Match::RoutingKey(key)) => topic_matches(key, routing_key),
                (
                    ExchangeType::Headers,
                    Match::Headers {
                        all,
                        headers: wanted,
                    },
                ) => headers_match(*all, wanted, headers),
                _ => false,
            };
            if hit && !queues.contains(queue) {
                queues.push(queue.clone());
            }
        }
        Ok(queues)
    }

    pub(crate) async fn publish(
        &self,
        exchange: &str,
        msg: OutgoingMessage<'_>,
        mandatory: bool,
    ) -> Result<(), RabbitError> {
        properties_of(&msg)?;
        short(exchange)?;
        short(msg.name())?;
        if msg.name().starts_with(DIRECT_REPLY_TO) {
            return self.client.publish(msg).await.map_err(local_error);
        }
        let queues = self.route(exchange, msg.name(), msg.headers())?;
        if queues.is_empty() && mandatory {
            return Err(RabbitError::Unroutable {
                exchange: shown(exchange),
                routing_key: shown(msg.name()),
                reply: "NO_ROUTE".to_owned(),
            });
        }
        let mut headers = msg.headers().clone();
        headers.insert(EXCHANGE_HEADER, exchange.to_owned());
        headers.insert(ROUTING_KEY_HEADER, msg.name().to_owned());
        for queue in &queues {
            let mut copy = OutgoingMessage::new(queue, msg.payload()).with_headers(&headers);
            if let Some(reply_to) = msg.reply_to() {
                copy = copy.with_reply_to(reply_to);
            }
            self.client.publish(copy).await.map_err(local_error)?;
        }
        Ok(())
    }

    pub(crate) async fn request(
        &self,
        exchange: &str,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, RabbitError> {
        let inbox = format!(
            "{DIRECT_REPLY_TO}.{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let mut replies = self
            .client
            .subscribe_to(&inbox, None)
            .await
            .map_err(local_error)?;
        self.publish(exchange, msg.with_reply_to(&inbox), true)
            .await?;
        match tokio::time::timeout(timeout, replies.next_message()).await {
            Ok(Some(Ok(reply))) => Ok(Reply {
                payload: bytes::Bytes::copy_from_slice(ruststream::IncomingMessage::payload(
                    &reply,
                )),
                headers: ruststream::IncomingMessage::headers(&reply).clone(),
            }),
            Ok(Some(Err(never))) => match never {},
            Ok(None) => Err(RabbitError::Closed),
            Err(_) => Err(RabbitError::RequestTimeout {
                name: shown(msg.name()),
                timeout,
            }),
        }
    }

    pub(crate) async fn open(
        &self,
        queue: &RabbitQueue,
        broker: &RabbitBroker,
    ) -> Result<RabbitSubscriber, RabbitError> {
        let name = self.declare_queue(queue)?;
        let subscriber = self
            .client
            .subscribe_to(&name, Some(&name))
            .await
            .map_err(|error| RabbitError::Subscribe {
                queue: shown(&name),
                reason: error.to_string(),
            })?;
        let origin = Arc::new(Origin {
            broker: broker.clone(),
            queue: name,
            quorum: queue.queue_type() == crate::QueueType::Quorum,
        });
        Ok(RabbitSubscriber::new(
            Source::Local(subscriber),
            origin,
            broker.inner.shutdown.watch(),
        ))
    }
}

impl RabbitBroker {
    /// A broker with no server behind it: exchanges, queues and bindings live in
    /// process and route as RabbitMQ routes them, so a service's own
    /// `fn app(broker: RabbitBroker) -> App` runs in a test unchanged. Settling is
    /// recorded, not performed: nothing is redelivered, delayed or dead-lettered.
    pub fn in_process() -> Self {
        Self::in_process_with(Config::new("amqp://localhost:5672/%2f"))
    }

    /// [`in_process`](Self::in_process), describing itself (AsyncAPI) with `config`'s
    /// server.
    pub fn in_process_with(config: Config) -> Self {
        Self::build(config, Some(Arc::new(LocalServer::new())))
    }

    /// Whether this broker is the in-process one.
    pub fn is_in_process(&self) -> bool {
        self.inner.local.is_some()
    }
}

/// In process, the test app counts the messages not yet taken; live, it follows the
/// `message-id` of each publish (which travels as the AMQP `message_id` property).
impl TestBroker for RabbitBroker {
    fn quiescence(&self) -> Quiescence {
        match &self.inner.local {
            Some(local) => Quiescence::Backlog(local.backlog()),
            None => Quiescence::MessageIds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_like_the_server() {
        assert!(topic_matches("orders.*", "orders.created"));
        assert!(!topic_matches("orders.*", "orders.eu.created"));
        assert!(!topic_matches("orders.*", "orders"));
        assert!(topic_matches("orders.#", "orders"));
        assert!(topic_matches("orders.#", "orders.eu.created"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("*.created", "orders.created"));
        assert!(topic_matches("orders.#.created", "orders.created"));
        assert!(topic_matches("orders.#.created", "orders.eu.x.created"));
        assert!(!topic_matches("orders.#.created", "orders.eu.paid"));
        assert!(!topic_matches("invoices.*", "orders.created"));
    }
}
