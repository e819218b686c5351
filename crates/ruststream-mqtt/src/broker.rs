//! The broker handle: connection lifecycle, subscriptions by name, request-reply.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ruststream::kit::Shutdown;
use ruststream::{
    Broker, DescribeServer, OutgoingMessage, Reply, RequestReply, ServerSpec, Subscribe,
    SubscriptionSource,
};
use tokio::sync::{OnceCell, mpsc};

use crate::config::Config;
use crate::connection::{Connection, FilterOptions};
use crate::error::MqttError;
use crate::publisher::options;
use crate::source::MqttSource;
use crate::subscriber::MqttSubscriber;

/// A connection to one MQTT server (MQTT 5 or 3.1.1, as its [`Config`] says).
///
/// Cloning shares the connection. `connect` opens it (waiting for the server's CONNACK)
/// and starts the task that drives the client: it reconnects with the config's backoff,
/// restores the subscriptions and hands each incoming publish to every subscription of
/// this connection whose filter matches it.
#[derive(Clone)]
pub struct MqttBroker {
    pub(crate) kind: Kind,
}

#[derive(Clone)]
pub(crate) enum Kind {
    Live(Arc<Live>),
    #[cfg(feature = "testing")]
    InProcess(ruststream::testing::TestClient, Arc<Config>),
}

pub(crate) struct Live {
    pub(crate) config: Config,
    shutdown: Shutdown,
    connection: OnceCell<Connection>,
}

impl std::fmt::Debug for MqttBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("MqttBroker");
        match &self.kind {
            Kind::Live(live) => out.field("config", &live.config),
            #[cfg(feature = "testing")]
            Kind::InProcess(..) => out.field("mode", &"in-process"),
        };
        out.finish_non_exhaustive()
    }
}

impl MqttBroker {
    /// A broker for `config`; nothing is opened until `connect`.
    pub fn new(config: Config) -> Self {
        Self {
            kind: Kind::Live(Arc::new(Live {
                config,
                shutdown: Shutdown::new(),
                connection: OnceCell::new(),
            })),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        match &self.kind {
            Kind::Live(live) => &live.config,
            #[cfg(feature = "testing")]
            Kind::InProcess(_, config) => config,
        }
    }

    fn connection(live: &Live) -> Result<&Connection, MqttError> {
        if live.shutdown.is_triggered() {
            return Err(MqttError::Closed);
        }
        live.connection.get().ok_or(MqttError::NotConnected)
    }

    pub(crate) async fn open(&self, source: MqttSource) -> Result<MqttSubscriber, MqttError> {
        source.validate()?;
        match &self.kind {
            Kind::Live(live) => {
                let connection = Self::connection(live)?;
                let (sender, receiver) = mpsc::unbounded_channel();
                let options = FilterOptions {
                    filter: source.subscribed_filter().to_owned(),
                    qos: source.max_qos(),
                    no_local: source.is_no_local(),
                    retain_handling: source.retain(),
                };
                let route = connection.shared.subscribe(options, sender).await?;
                Ok(MqttSubscriber::live(
                    receiver,
                    Arc::clone(&connection.shared),
                    route,
                ))
            }
            #[cfg(feature = "testing")]
            Kind::InProcess(client, _) => {
                // The in-process client routes `$share/<group>/<filter>` by its filter
                // and shares the group's messages among its members.
                let subscriber = client
                    .subscribe_to(source.topic_filter(), source.group())
                    .await?;
                Ok(MqttSubscriber {
                    inner: crate::subscriber::Inner::InProcess(subscriber),
                })
            }
        }
    }

    pub(crate) async fn publish_message(&self, msg: OutgoingMessage<'_>) -> Result<(), MqttError> {
        match &self.kind {
            Kind::Live(live) => {
                let connection = Self::connection(live)?;
                let options = options(&msg, live.config.protocol, live.config.publish_qos)?;
                connection
                    .shared
                    .publish(msg.name(), Bytes::copy_from_slice(msg.payload()), options)
                    .await
            }
            #[cfg(feature = "testing")]
            Kind::InProcess(client, config) => {
                options(&msg, config.protocol, config.publish_qos)?;
                Ok(ruststream::Publisher::publish(client, msg).await?)
            }
        }
    }
}

impl Broker for MqttBroker {
    type Error = MqttError;

    fn server(&self) -> Option<ServerSpec> {
        Some(self.describe_server())
    }

    /// Opens the connection and returns once the server accepted it. Connecting a
    /// connected broker does nothing.
    async fn connect(&self) -> Result<(), MqttError> {
        match &self.kind {
            Kind::Live(live) => {
                if live.shutdown.is_triggered() {
                    return Err(MqttError::Closed);
                }
                live.connection
                    .get_or_try_init(|| Connection::open(&live.config, live.shutdown.clone()))
                    .await
                    .map(|_| ())
            }
            #[cfg(feature = "testing")]
            Kind::InProcess(client, _) => Ok(client.connect().await?),
        }
    }

    /// Waits (at most half the shutdown timeout) for publishes awaiting their
    /// acknowledgement, disconnects, and ends every subscription stream; bounded by the
    /// config's `shutdown_timeout`. A second call returns at once.
    async fn shutdown(&self) -> Result<(), MqttError> {
        match &self.kind {
            Kind::Live(live) => match live.connection.get() {
                Some(connection) if !live.shutdown.is_triggered() => {
                    connection.close(live.config.shutdown_timeout).await
                }
                _ => {
                    live.shutdown.trigger();
                    Ok(())
                }
            },
            #[cfg(feature = "testing")]
            Kind::InProcess(client, _) => Ok(client.shutdown().await?),
        }
    }
}

impl Subscribe for MqttBroker {
    type Subscriber = MqttSubscriber;

    /// Subscribes to a topic filter at QoS 1 (`$share/<group>/<filter>` for a shared
    /// subscription).
    async fn subscribe(&self, name: &str) -> Result<MqttSubscriber, MqttError> {
        MqttSource::new(name).subscribe(self).await
    }
}

impl RequestReply for MqttBroker {
    /// MQTT 5 only: publishes with a response topic of this connection's own
    /// (`ruststream/replies/<client id>/<n>`) and correlation data (the `correlation-id`
    /// header, or a generated one), and waits for the first message on that topic.
    async fn request(
        &self,
        msg: OutgoingMessage<'_>,
        timeout: Duration,
    ) -> Result<Reply, MqttError> {
        match &self.kind {
            Kind::Live(live) => {
                let connection = Self::connection(live)?;
                let options = options(&msg, live.config.protocol, live.config.publish_qos)?;
                connection
                    .shared
                    .request(
                        msg.name(),
                        Bytes::copy_from_slice(msg.payload()),
                        options,
                        timeout,
                    )
                    .await
            }
            #[cfg(feature = "testing")]
            Kind::InProcess(client, config) => {
                options(&msg, config.protocol, config.publish_qos)?;
                Ok(client.request(msg, timeout).await?)
            }
        }
    }
}
