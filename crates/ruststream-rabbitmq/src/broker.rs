//! [`RabbitBroker`]: the connection, its reconnection, and the `Broker` and `Subscribe`
//! contract.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use parking_lot::{Mutex, RwLock};
use ruststream::kit::{Shutdown, Tls};
use ruststream::{Broker, Subscribe};

use crate::config::Config;
use crate::error::{RabbitError, shown};
use crate::message::Origin;
use crate::source::{RabbitExchange, RabbitQueue, short};
use crate::subscriber::{RabbitSubscriber, Source};

/// A connection to a RabbitMQ server: cheap to clone (clones share it).
///
/// `connect` opens the AMQP connection; subscriptions get a channel each (with their
/// prefetch), publishes go through one channel in confirm mode. When the connection or a
/// channel drops, the next publish or subscription reconnects, declaring its topology
/// again; the runtime subscribes again on its own, so a service rides out a restart of
/// the server.
#[derive(Clone)]
pub struct RabbitBroker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) shutdown: Shutdown,
    /// `connect` was called: reconnecting on demand is allowed.
    started: AtomicBool,
    /// Bumped on every new connection, so publishers declare their exchange again.
    generation: AtomicU64,
    link: RwLock<Option<Arc<Connection>>>,
    publish: RwLock<Option<Arc<Channel>>>,
    /// Held while (re)connecting or opening the publish channel: one attempt at a time.
    dialing: tokio::sync::Mutex<()>,
    /// Exchanges publishers declared, declared again on every new connection.
    exchanges: Mutex<Vec<RabbitExchange>>,
    /// Queues declared with `declare_queue`, declared again on every new connection.
    queues: Mutex<Vec<RabbitQueue>>,
    /// The in-process server, in place of a connection (feature `testing`).
    #[cfg(feature = "testing")]
    pub(crate) local: Option<Arc<crate::testing::LocalServer>>,
}

impl RabbitBroker {
    /// A broker for `config`, not yet connected.
    pub fn new(config: Config) -> Self {
        Self::build(
            config,
            #[cfg(feature = "testing")]
            None,
        )
    }

    pub(crate) fn build(
        config: Config,
        #[cfg(feature = "testing")] local: Option<Arc<crate::testing::LocalServer>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                shutdown: Shutdown::new(),
                started: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                link: RwLock::new(None),
                publish: RwLock::new(None),
                dialing: tokio::sync::Mutex::new(()),
                exchanges: Mutex::new(Vec::new()),
                queues: Mutex::new(Vec::new()),
                #[cfg(feature = "testing")]
                local,
            }),
        }
    }

    /// The config it was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether the AMQP connection is up right now.
    pub fn is_connected(&self) -> bool {
        #[cfg(feature = "testing")]
        if self.inner.local.is_some() {
            return !self.inner.shutdown.is_triggered();
        }
        self.inner
            .link
            .read()
            .as_ref()
            .is_some_and(|connection| connection.status().connected())
    }

    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    pub(crate) fn redact(&self, text: impl fmt::Display) -> String {
        self.inner.config.redact(text)
    }

    /// Declares `exchange` now, and again after every reconnection.
    pub async fn declare_exchange(&self, exchange: &RabbitExchange) -> Result<(), RabbitError> {
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            return local.declare_exchange(exchange);
        }
        {
            let mut exchanges = self.inner.exchanges.lock();
            if !exchanges.iter().any(|known| known == exchange) {
                exchanges.push(exchange.clone());
            }
        }
        let channel = self.channel().await?;
        exchange.declare(&channel).await
    }

    /// Declares `queue` with its bindings now, without consuming it (so that publishes
    /// to it are routed before any subscriber runs), and again after every
    /// reconnection: a server that lost it in a crash has it back before the next
    /// publish. Returns its name.
    pub async fn declare_queue(&self, queue: &RabbitQueue) -> Result<String, RabbitError> {
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            return local.declare_queue(queue);
        }
        let channel = self.channel().await?;
        let name = queue.declare(&channel).await?;
        if !queue.is_exclusive() && !queue.name_str().is_empty() {
            let mut queues = self.inner.queues.lock();
            if !queues.iter().any(|known| known == queue) {
                queues.push(queue.clone());
            }
        }
        Ok(name)
    }

    /// Deletes the queue `name` with its messages (for tests and tools).
    pub async fn delete_queue(&self, name: &str) -> Result<(), RabbitError> {
        self.inner
            .queues
            .lock()
            .retain(|known| known.name_str() != name);
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            local.delete_queue(name);
            return Ok(());
        }
        let channel = self.channel().await?;
        channel
            .queue_delete(short(name)?, lapin::options::QueueDeleteOptions::default())
            .await
            .map(|_| ())
            .map_err(|error| RabbitError::Topology {
                what: format!("the deletion of queue `{}`", shown(name)),
                reason: self.redact(error),
            })
    }

    /// Deletes the exchange `name` (for tests and tools).
    pub async fn delete_exchange(&self, name: &str) -> Result<(), RabbitError> {
        self.inner
            .exchanges
            .lock()
            .retain(|known| known.name() != name);
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            local.delete_exchange(name);
            return Ok(());
        }
        let channel = self.channel().await?;
        channel
            .exchange_delete(
                short(name)?,
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await
            .map_err(|error| RabbitError::Topology {
                what: format!("the deletion of exchange `{}`", shown(name)),
                reason: self.redact(error),
            })
    }

    /// A new channel on the connection (reconnecting if it is down).
    pub(crate) async fn channel(&self) -> Result<Channel, RabbitError> {
        let connection = self.connection().await?;
        connection
            .create_channel()
            .await
            .map_err(|error| self.down(error))
    }

    /// The error of a failure of the connection or channel.
    pub(crate) fn down(&self, error: impl fmt::Display) -> RabbitError {
        if self.inner.shutdown.is_triggered() {
            return RabbitError::Closed;
        }
        RabbitError::Disconnected {
            reason: self.redact(error),
        }
    }

    /// The open connection, reconnecting (one attempt) if it is down.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, RabbitError> {
        if let Some(connection) = self.live_connection() {
            return Ok(connection);
        }
        let _dialing = self.inner.dialing.lock().await;
        self.connection_locked().await
    }

    fn live_connection(&self) -> Option<Arc<Connection>> {
        if self.inner.shutdown.is_triggered() {
            return None;
        }
        self.inner
            .link
            .read()
            .as_ref()
            .filter(|connection| connection.status().connected())
            .cloned()
    }

    /// The confirm-mode publish channel, opened again if it closed.
    pub(crate) async fn publish_channel(&self) -> Result<Arc<Channel>, RabbitError> {
        if let Some(channel) = self.live_publish_channel() {
            return Ok(channel);
        }
        let _dialing = self.inner.dialing.lock().await;
        if let Some(channel) = self.live_publish_channel() {
            return Ok(channel);
        }
        let connection = self.connection_locked().await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|error| self.down(error))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|error| self.down(error))?;
        let channel = Arc::new(channel);
        *self.inner.publish.write() = Some(Arc::clone(&channel));
        Ok(channel)
    }

    fn live_publish_channel(&self) -> Option<Arc<Channel>> {
        if self.inner.shutdown.is_triggered() {
            return None;
        }
        self.inner
            .publish
            .read()
            .as_ref()
            .filter(|channel| channel.status().connected())
            .cloned()
    }

    /// Whether a failure just seen was the connection's (rather than one channel's).
    pub(crate) fn connection_lost(&self) -> bool {
        self.live_connection().is_none()
    }

    async fn connection_locked(&self) -> Result<Arc<Connection>, RabbitError> {
        if self.inner.shutdown.is_triggered() {
            return Err(RabbitError::Closed);
        }
        #[cfg(feature = "testing")]
        if self.inner.local.is_some() {
            return Err(RabbitError::Config(
                "an in-process broker has no AMQP connection".to_owned(),
            ));
        }
        if !self.inner.started.load(Ordering::Acquire) {
            return Err(RabbitError::NotConnected);
        }
        if let Some(connection) = self.live_connection() {
            return Ok(connection);
        }
        let connection = Arc::new(self.dial().await?);
        // The topology publishers rely on, declared again on the new connection.
        let exchanges = self.inner.exchanges.lock().clone();
        let queues = self.inner.queues.lock().clone();
        if !exchanges.is_empty() || !queues.is_empty() {
            let channel = connection
                .create_channel()
                .await
                .map_err(|error| self.down(error))?;
            for exchange in &exchanges {
                exchange.declare(&channel).await?;
            }
            for queue in &queues {
                queue.declare(&channel).await?;
            }
            let _ = channel.close(200, "OK".into()).await;
        }
        *self.inner.publish.write() = None;
        let previous = self.inner.link.write().replace(Arc::clone(&connection));
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        if previous.is_some() {
            tracing::info!(url = %self.inner.config.redacted_url(), "reconnected to RabbitMQ");
        }
        Ok(connection)
    }

    async fn dial(&self) -> Result<Connection, RabbitError> {
        let config = &self.inner.config;
        let uri = config.uri()?;
        let mut properties = ConnectionProperties::default();
        if let Some(name) = config.name() {
            properties = properties.with_connection_name(name.into());
        }
        let tls = tls_config(config.tls_settings())?;
        let runtime = lapin::runtime::default_runtime().map_err(|error| {
            RabbitError::Config(format!("no tokio runtime to connect on: {error}"))
        })?;
        let connect = Connection::connect_uri_with_config(uri, properties, tls, runtime);
        let failed = |reason: String| RabbitError::Connect {
            url: config.redacted_url(),
            reason,
        };
        // The URI carries the same bound; this one also covers a TLS handshake that hangs.
        let limit = config.connect_limit().saturating_mul(2);
        match tokio::time::timeout(limit, connect).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(failed(config.redact(error))),
            Err(_) => Err(failed(format!(
                "no answer within {:?}",
                config.connect_limit()
            ))),
        }
    }

    /// Opens a consumer on `queue`: a channel of its own with its prefetch, the queue,
    /// its exchanges and bindings declared (or checked), then `basic.consume` with
    /// manual acks.
    pub(crate) async fn open(&self, queue: RabbitQueue) -> Result<RabbitSubscriber, RabbitError> {
        if self.inner.shutdown.is_triggered() {
            return Err(RabbitError::Closed);
        }
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            return local.open(&queue, self).await;
        }
        let channel = self.channel().await?;
        let prefetch = queue
            .prefetch_count()
            .unwrap_or_else(|| self.inner.config.prefetch_count());
        let failed = |error: lapin::Error| RabbitError::Subscribe {
            queue: shown(queue.name_str()),
            reason: self.redact(error),
        };
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(failed)?;
        let name = queue.declare(&channel).await?;
        let consumer = channel
            .basic_consume(
                short(&name)?,
                short(queue.tag())?,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(failed)?;
        let origin = Arc::new(Origin {
            broker: self.clone(),
            queue: name,
            quorum: queue.queue_type() == crate::QueueType::Quorum,
        });
        Ok(RabbitSubscriber::new(
            Source::Live {
                consumer,
                _channel: channel,
            },
            origin,
            self.inner.shutdown.watch(),
        ))
    }
}

/// The client's TLS settings from the kit's: the PEM files read now.
fn tls_config(tls: &Tls) -> Result<OwnedTLSConfig, RabbitError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| {
            RabbitError::Config(format!(
                "cannot read the TLS file {}: {error}",
                path.display()
            ))
        })
    };
    let mut roots = String::new();
    for path in tls.roots() {
        let pem = read(path)?;
        roots.push_str(&String::from_utf8_lossy(&pem));
        roots.push('\n');
    }
    let identity = match tls.client() {
        Some((cert, key)) => Some(OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        None => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain: (!roots.is_empty()).then_some(roots),
    })
}

impl fmt::Debug for RabbitBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitBroker")
            .field("config", &self.inner.config)
            .field("connected", &self.is_connected())
            .field("shut_down", &self.inner.shutdown.is_triggered())
            .finish()
    }
}

impl Broker for RabbitBroker {
    type Error = RabbitError;

    async fn connect(&self) -> Result<(), RabbitError> {
        if self.inner.shutdown.is_triggered() {
            return Err(RabbitError::Closed);
        }
        self.inner.started.store(true, Ordering::Release);
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            return local.connect().await;
        }
        self.connection().await.map(|_| ())
    }

    async fn shutdown(&self) -> Result<(), RabbitError> {
        if !self.inner.shutdown.trigger() {
            return Ok(());
        }
        #[cfg(feature = "testing")]
        if let Some(local) = &self.inner.local {
            return local.shutdown().await;
        }
        self.inner.publish.write().take();
        let connection = self.inner.link.write().take();
        let Some(connection) = connection else {
            return Ok(());
        };
        if !connection.status().connected() {
            return Ok(());
        }
        let limit = self.inner.config.shutdown_limit();
        match tokio::time::timeout(limit, connection.close(200, "OK".into())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                if connection.status().connected() {
                    Err(RabbitError::Shutdown(self.redact(error)))
                } else {
                    Ok(())
                }
            }
            Err(_) => Err(RabbitError::Shutdown(format!(
                "the server did not confirm the close within {limit:?}; the connection is dropped"
            ))),
        }
    }

    fn server(&self) -> Option<ruststream::ServerSpec> {
        Some(ruststream::DescribeServer::describe_server(self))
    }
}

impl Subscribe for RabbitBroker {
    type Subscriber = RabbitSubscriber;

    /// Consumes the durable classic queue `name`, declaring it if it does not exist
    /// (`RabbitQueue::new(name)`).
    async fn subscribe(&self, name: &str) -> Result<RabbitSubscriber, RabbitError> {
        self.open(RabbitQueue::new(name)).await
    }
}
