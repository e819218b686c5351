//! The AsyncAPI 3.0 document of an app (feature `asyncapi`).
//!
//! [`document`] turns what an app registers ([`App::describe`](crate::runtime::App::describe))
//! into a [`Document`]:
//!
//! - `info`: the app's title, version and description;
//! - `servers`: one per broker, from its [`DescribeServer`](crate::DescribeServer)
//!   (protocol, host, path, bindings; never credentials);
//! - `channels`: one per destination of a broker (its `address`), with the messages that
//!   travel on it and the server it lives on;
//! - `operations`: a `receive` per subscriber, with a `reply` when the handler answers
//!   requests; a `send` per `publish_to` destination and per dead-letter destination;
//! - messages with their content type, the JSON Schema of their payload and of their
//!   declared headers (schemars), and `components.schemas` with the named types.
//!
//! Serialize it with [`Document::to_json`] or [`Document::to_yaml`] (or any serde
//! format), or render it as a page with [`render_html`].
//!
//! ```
//! # #[cfg(feature = "memory")] {
//! use ruststream::asyncapi;
//! use ruststream::memory::MemoryBroker;
//! use ruststream::runtime::{handler_fn, App, Router, SubscriberDef, TypeSchema};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Order { id: u64 }
//!
//! let app = App::new("orders").version("1.0.0").broker(
//!     MemoryBroker::new(),
//!     Router::new().subscriber(
//!         SubscriberDef::new("orders.created", handler_fn(|_: Order| async {}))
//!             .payload_schema(TypeSchema::of::<Order>()),
//!     ),
//! );
//! let document = asyncapi::document(&app.describe());
//! assert_eq!(document.channels.get("orders_created").unwrap().address.as_deref(), Some("orders.created"));
//! assert!(document.components.schemas.get("Order").is_some());
//! println!("{}", document.to_yaml().unwrap());
//! # }
//! ```
//!
//! `#[subscriber]` records the schemas itself: a payload argument or a returned type that
//! derives `schemars::JsonSchema` is documented; any other type still works, undocumented.

mod html;

use std::collections::HashMap;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use crate::runtime::{AppDescription, SubscriberInfo, TypeSchema};
use crate::{BoxError, ServerSpec};

pub use html::render_html;

/// The AsyncAPI version of the documents written here.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// Why a document could not be written out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AsyncApiError {
    /// The serializer failed.
    #[error("cannot write the AsyncAPI document as {format}: {source}")]
    Encode {
        /// `JSON` or `YAML`.
        format: &'static str,
        /// The serializer's error.
        source: BoxError,
    },
}

/// An AsyncAPI 3.0 document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Document {
    /// The specification version, [`ASYNCAPI_VERSION`].
    pub asyncapi: &'static str,
    /// The app's title, version and description.
    pub info: Info,
    /// The content type of messages that name none.
    #[serde(rename = "defaultContentType", skip_serializing_if = "Option::is_none")]
    pub default_content_type: Option<String>,
    /// The servers by id: one per broker.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub servers: Map<Server>,
    /// The channels by id.
    pub channels: Map<Channel>,
    /// The operations by id.
    pub operations: Map<Operation>,
    /// Reusable objects: the schemas of the named payload types.
    #[serde(skip_serializing_if = "Components::is_empty")]
    pub components: Components,
}

impl Document {
    /// The document as pretty-printed JSON.
    pub fn to_json(&self) -> Result<String, AsyncApiError> {
        serde_json::to_string_pretty(self).map_err(|error| AsyncApiError::Encode {
            format: "JSON",
            source: error.into(),
        })
    }

    /// The document as YAML.
    pub fn to_yaml(&self) -> Result<String, AsyncApiError> {
        serde_saphyr::to_string(self).map_err(|error| AsyncApiError::Encode {
            format: "YAML",
            source: error.into(),
        })
    }
}

/// The `info` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Info {
    /// The app's title.
    pub title: String,
    /// Its version.
    pub version: String,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A server: where one broker of the app connects. Never holds credentials.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Server {
    /// `host[:port]`.
    pub host: String,
    /// The protocol (`nats`, `kafka`, `amqp`, `mqtt`, `redis`, `memory`...).
    pub protocol: String,
    /// The protocol's version.
    #[serde(rename = "protocolVersion", skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// A path on the server (a virtual host, a database...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pathname: Option<String>,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Protocol-specific bindings, by protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Value>,
}

impl Server {
    /// The server of a broker's [`ServerSpec`].
    pub fn from_spec(spec: &ServerSpec) -> Self {
        Self {
            host: spec.host.clone(),
            protocol: spec.protocol.clone(),
            protocol_version: spec.protocol_version.clone(),
            pathname: spec.pathname.clone(),
            description: spec.description.clone(),
            bindings: spec.bindings.clone(),
        }
    }
}

/// A channel: one destination of one broker.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Channel {
    /// The destination (name, subject, topic, queue, pattern); `None` (serialized as
    /// `null`) for an address known only at run time, such as a request's reply-to.
    pub address: Option<String>,
    /// The messages that travel on it, by id.
    pub messages: Map<Message>,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The servers it is on (its broker's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Reference>,
}

/// A message definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Message {
    /// A machine-friendly name: the payload type's, else the handler's.
    pub name: String,
    /// A human-friendly title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the message is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The payload's content type.
    #[serde(rename = "contentType")]
    pub content_type: String,
    /// The JSON Schema of its headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Value>,
    /// The JSON Schema of its payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// Whether the app sends or receives on an operation's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Action {
    /// The app publishes.
    Send,
    /// The app subscribes.
    Receive,
}

/// An operation: a handler receiving, or publishing its replies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Operation {
    /// Send or receive.
    pub action: Action,
    /// The channel, as a reference (`#/channels/<id>`).
    pub channel: Reference,
    /// The messages, as references into the channel's messages.
    pub messages: Vec<Reference>,
    /// A short summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// A longer description (a subscriber's doc comment or `description`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The answer of a request-reply handler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<OperationReply>,
    /// Protocol bindings the broker's subscription source supplies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindings: Option<Value>,
}

/// What a request-reply operation answers with, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OperationReply {
    /// The reply channel (its address is each request's reply-to).
    pub channel: Reference,
    /// The reply messages, as references into the reply channel's messages.
    pub messages: Vec<Reference>,
}

/// The `components` object: what the document's other objects refer to.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct Components {
    /// JSON Schemas by type name (`#/components/schemas/<name>`).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub schemas: Map<Value>,
}

impl Components {
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty()
    }
}

/// A reference to another object of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// The JSON pointer, such as `#/channels/orders_created`.
    #[serde(rename = "$ref")]
    pub target: String,
}

impl Reference {
    fn to(target: String) -> Self {
        Self { target }
    }

    /// The id of the object it points to (the last segment of the pointer).
    pub fn id(&self) -> &str {
        self.target.rsplit('/').next().unwrap_or(&self.target)
    }
}

/// Objects by id, in the order they were added (serialized as a map).
#[derive(Debug, Clone, PartialEq)]
pub struct Map<T> {
    entries: Vec<(String, T)>,
}

impl<T> Default for Map<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T> Map<T> {
    /// The object with id `id`.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.entries
            .iter()
            .find(|(key, _)| key == id)
            .map(|(_, value)| value)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.entries
            .iter_mut()
            .find(|(key, _)| key == id)
            .map(|(_, value)| value)
    }

    /// The ids and objects, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value))
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds `value` under `base`, or `base_2`, `base_3`... when taken; returns the id used.
    fn insert_unique(&mut self, base: String, value: T) -> String {
        let mut id = base.clone();
        let mut n = 1;
        while self.get(&id).is_some() {
            n += 1;
            id = format!("{base}_{n}");
        }
        self.entries.push((id.clone(), value));
        id
    }
}

impl<T: Serialize> Serialize for Map<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, value) in &self.entries {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// An id the specification accepts (`^[A-Za-z0-9_\-]+$`) made of a name: wildcards and
/// separators become words and underscores (`orders.*` → `orders_star`).
fn identifier(name: &str) -> String {
    let mut id = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' => id.push(c),
            '*' => id.push_str("star"),
            '>' | '#' => id.push_str("all"),
            '+' => id.push_str("plus"),
            _ => id.push('_'),
        }
    }
    if id.is_empty() {
        id.push('_');
    }
    id
}

/// The document of an app.
pub fn document(app: &AppDescription) -> Document {
    let mut builder = Builder {
        document: Document {
            asyncapi: ASYNCAPI_VERSION,
            info: Info {
                title: app.info.title.clone(),
                version: app.info.version.clone(),
                description: app.info.description.clone(),
            },
            default_content_type: None,
            servers: Map::default(),
            channels: Map::default(),
            operations: Map::default(),
            components: Components::default(),
        },
        channel_ids: HashMap::new(),
        server_ids: Vec::new(),
    };
    for info in &app.brokers {
        // A broker without `DescribeServer` has no server entry; its channels name none.
        let id = info.server.as_ref().map(|server| {
            builder
                .document
                .servers
                .insert_unique(identifier(&server.protocol), Server::from_spec(server))
        });
        builder.server_ids.push(id);
    }
    for (broker, info) in app.brokers.iter().enumerate() {
        for subscriber in &info.subscribers {
            builder.subscriber(broker, subscriber);
        }
    }
    builder.document
}

/// The document being built, with each broker's channels by address.
struct Builder {
    document: Document,
    channel_ids: HashMap<(usize, String), String>,
    /// The server id of each broker, by index (`None`: it describes no server).
    server_ids: Vec<Option<String>>,
}

impl Builder {
    /// The servers of broker number `broker`, as references.
    fn servers(&self, broker: usize) -> Vec<Reference> {
        self.server_ids
            .get(broker)
            .and_then(Option::as_ref)
            .map(|id| Reference::to(format!("#/servers/{id}")))
            .into_iter()
            .collect()
    }

    /// The id of the channel of `address` on broker number `broker`, added if new.
    fn channel(&mut self, broker: usize, address: &str) -> String {
        if let Some(id) = self.channel_ids.get(&(broker, address.to_owned())) {
            return id.clone();
        }
        let servers = self.servers(broker);
        let id = self.document.channels.insert_unique(
            identifier(address),
            Channel {
                address: Some(address.to_owned()),
                messages: Map::default(),
                description: None,
                servers,
            },
        );
        self.channel_ids
            .insert((broker, address.to_owned()), id.clone());
        id
    }

    /// Adds `message` to the channel `channel`; returns the reference to it.
    fn message(&mut self, channel: &str, base: String, message: Message) -> Reference {
        let messages = &mut self
            .document
            .channels
            .get_mut(channel)
            .expect("the channel was added before its messages")
            .messages;
        let id = messages.insert_unique(base, message);
        Reference::to(format!("#/channels/{channel}/messages/{id}"))
    }

    /// The schema of a payload or headers type, its named types added to
    /// `components.schemas` (the first schema of a name is kept).
    fn schema(&mut self, schema: &TypeSchema) -> Value {
        for (name, definition) in schema.definitions() {
            if self.document.components.schemas.get(name).is_none() {
                self.document
                    .components
                    .schemas
                    .insert_unique(name.to_owned(), definition.clone());
            }
        }
        schema.schema().clone()
    }

    /// A message whose payload is of `payload`'s type, if known.
    fn payload_message(
        &mut self,
        fallback_name: String,
        summary: String,
        content_type: &str,
        payload: Option<&TypeSchema>,
        headers: Option<&TypeSchema>,
    ) -> Message {
        Message {
            name: payload.map_or(fallback_name, |schema| schema.name().to_owned()),
            title: None,
            summary: Some(summary),
            content_type: content_type.to_owned(),
            headers: headers.map(|schema| self.schema(schema)),
            payload: payload.map(|schema| self.schema(schema)),
        }
    }

    /// A subscriber: its channel, its `receive` operation (with a `reply` if it answers
    /// requests), and a `send` operation per `publish_to` destination and dead letter.
    fn subscriber(&mut self, broker: usize, subscriber: &SubscriberInfo) {
        let handler = identifier(&subscriber.handler);
        let content_type = subscriber.format.content_type().to_owned();
        let name = &subscriber.handler;

        let channel = self.channel(broker, &subscriber.destination);
        let received = self.payload_message(
            name.clone(),
            format!("What `{name}` receives"),
            &content_type,
            subscriber.payload_schema.as_ref(),
            subscriber.headers_schema.as_ref(),
        );
        let message = self.message(&channel, handler.clone(), received);

        let reply = subscriber.reply_schema.as_ref().map(|schema| {
            let servers = self.servers(broker);
            let reply_channel = self.document.channels.insert_unique(
                format!("{handler}_reply"),
                Channel {
                    address: None,
                    messages: Map::default(),
                    description: Some(format!(
                        "Where `{name}` answers: the reply-to of each request"
                    )),
                    servers,
                },
            );
            let reply_message = self.payload_message(
                format!("{name}_reply"),
                format!("What `{name}` answers"),
                &content_type,
                Some(schema),
                None,
            );
            let reply_message = self.message(&reply_channel, handler.clone(), reply_message);
            OperationReply {
                channel: Reference::to(format!("#/channels/{reply_channel}")),
                messages: vec![reply_message],
            }
        });

        self.document.operations.insert_unique(
            handler.clone(),
            Operation {
                action: Action::Receive,
                channel: Reference::to(format!("#/channels/{channel}")),
                messages: vec![message],
                summary: Some(format!(
                    "`{name}` handles messages from `{}`",
                    subscriber.destination
                )),
                description: subscriber.description.clone(),
                reply,
                bindings: subscriber.operation_bindings.clone(),
            },
        );

        for destination in &subscriber.publish_to {
            let channel = self.channel(broker, destination);
            let published = self.payload_message(
                format!("{name}_reply"),
                format!("What `{name}` returns"),
                &content_type,
                subscriber.reply_schema.as_ref(),
                None,
            );
            let message = self.message(&channel, format!("{handler}_reply"), published);
            self.document.operations.insert_unique(
                format!("{handler}_to_{channel}"),
                Operation {
                    action: Action::Send,
                    channel: Reference::to(format!("#/channels/{channel}")),
                    messages: vec![message],
                    summary: Some(format!("`{name}` publishes its result to `{destination}`")),
                    description: None,
                    reply: None,
                    bindings: None,
                },
            );
        }

        if let Some(destination) = &subscriber.dead_letter {
            let channel = self.channel(broker, destination);
            let dead = self.payload_message(
                format!("{name}_dead_letter"),
                format!(
                    "A message `{name}` gave up on, as received, with the reason in its headers"
                ),
                &content_type,
                subscriber.payload_schema.as_ref(),
                subscriber.headers_schema.as_ref(),
            );
            let message = self.message(&channel, format!("{handler}_dead_letter"), dead);
            self.document.operations.insert_unique(
                format!("{handler}_dead_letter"),
                Operation {
                    action: Action::Send,
                    channel: Reference::to(format!("#/channels/{channel}")),
                    messages: vec![message],
                    summary: Some(format!("`{name}` moves poison messages to `{destination}`")),
                    description: None,
                    reply: None,
                    bindings: None,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_what_the_specification_allows() {
        assert_eq!(identifier("orders.created"), "orders_created");
        assert_eq!(identifier("orders.*"), "orders_star");
        assert_eq!(identifier("orders.>"), "orders_all");
        assert_eq!(identifier("a/+/b"), "a_plus_b");
        assert_eq!(identifier("Handle-Order_2"), "Handle-Order_2");
        assert_eq!(identifier(""), "_");
    }

    #[test]
    fn taken_ids_get_a_number() {
        let mut map = Map::default();
        assert_eq!(map.insert_unique("a".into(), 1), "a");
        assert_eq!(map.insert_unique("a".into(), 2), "a_2");
        assert_eq!(map.insert_unique("a".into(), 3), "a_3");
        assert_eq!(map.get("a_2"), Some(&2));
    }

    #[test]
    fn a_reference_names_its_target() {
        let reference = Reference::to("#/channels/orders/messages/book".into());
        assert_eq!(reference.id(), "book");
    }
}
