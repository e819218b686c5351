//! [`RedisBroker`]: the connection, its lifecycle and subscriptions by name.

use std::sync::{Arc, OnceLock};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, Value};
use ruststream::kit::Shutdown;
use ruststream::{Broker, Subscribe};

use crate::{Config, RedisError, RedisSource, RedisSubscriber};

/// A connection to one Redis server: the `Broker`, `Subscribe` (by name: a Pub/Sub
/// channel), `Publisher` (to channels; [`RedisBroker::lists`] and
/// [`RedisBroker::streams`] publish to lists and streams) and `DescribeServer`.
///
/// Cloning is cheap and shares the connection. Commands go through redis-rs's
/// `ConnectionManager`, which reconnects by itself; each subscription that blocks
/// (`BLMOVE`, `XREADGROUP BLOCK`, Pub/Sub) has a connection of its own.
#[derive(Clone)]
pub struct RedisBroker {
    pub(crate) inner: Arc<Inner>,
}

/// A connection to one server (shared or of its own) or to a cluster; what every
/// command of the crate goes through.
#[derive(Clone)]
pub(crate) enum Conn {
    /// The shared, reconnecting connection to one server.
    Manager(ConnectionManager),
    /// A connection of its own to one server, for blocking reads.
    Own(MultiplexedConnection),
    /// A cluster connection: each command to the node of its key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Manager(connection) => connection.req_packed_command(cmd),
            Self::Own(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Manager(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Own(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(connection) => connection.get_db(),
            Self::Own(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    /// One server's client: commands, and Pub/Sub (the first node of a cluster).
    client: OnceLock<Client>,
    /// The cluster's client for blocking reads, when the config names a cluster.
    blocking_cluster: OnceLock<redis::cluster::ClusterClient>,
    manager: OnceLock<Conn>,
    connecting: tokio::sync::Mutex<()>,
    pub(crate) shutdown: Shutdown,
    #[cfg(feature = "testing")]
    pub(crate) in_process: Option<ruststream::testing::TestClient>,
}

impl RedisBroker {
    /// A broker for `config`; nothing is connected before [`Broker::connect`].
    pub fn new(config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                client: OnceLock::new(),
                blocking_cluster: OnceLock::new(),
                manager: OnceLock::new(),
                connecting: tokio::sync::Mutex::new(()),
                shutdown: Shutdown::new(),
                #[cfg(feature = "testing")]
                in_process: None,
            }),
        }
    }

    /// A broker for the server at `url`, with default settings.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self::new(Config::new(url))
    }

    /// The broker's config.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    #[cfg(feature = "testing")]
    pub(crate) fn test_client(&self) -> Option<&ruststream::testing::TestClient> {
        self.inner.in_process.as_ref()
    }

    #[cfg(feature = "testing")]
    pub(crate) fn with_test_client(client: ruststream::testing::TestClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: Config::new("redis://in-process"),
                client: OnceLock::new(),
                blocking_cluster: OnceLock::new(),
                manager: OnceLock::new(),
                connecting: tokio::sync::Mutex::new(()),
                shutdown: Shutdown::new(),
                in_process: Some(client),
            }),
        }
    }

    /// The shared command connection; an error before `connect` or after `shutdown`.
    pub(crate) fn manager(&self) -> Result<Conn, RedisError> {
        if self.inner.shutdown.is_triggered() {
            return Err(RedisError::Closed);
        }
        self.inner
            .manager
            .get()
            .cloned()
            .ok_or(RedisError::NotConnected)
    }

    /// A connection of its own, for a command that blocks (no response timeout).
    pub(crate) async fn dedicated(&self) -> Result<Conn, RedisError> {
        if let Some(cluster) = self.inner.blocking_cluster.get() {
            if self.inner.shutdown.is_triggered() {
                return Err(RedisError::Closed);
            }
            return cluster
                .get_async_connection()
                .await
                .map(Conn::Cluster)
                .map_err(|error| self.connect_error(error));
        }
        let client = self.client()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.config.connect_timeout_value()))
            .set_response_timeout(None);
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map(Conn::Own)
            .map_err(|error| self.connect_error(error))
    }

    /// A Pub/Sub connection of its own.
    pub(crate) async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        let client = self.client()?;
        tokio::time::timeout(
            self.inner.config.connect_timeout_value(),
            client.get_async_pubsub(),
        )
        .await
        .map_err(|_| RedisError::Connect {
            url: self.inner.config.redacted_url(),
            reason: "timed out".into(),
        })?
        .map_err(|error| self.connect_error(error))
    }

    fn client(&self) -> Result<&Client, RedisError> {
        if self.inner.shutdown.is_triggered() {
            return Err(RedisError::Closed);
        }
        self.inner.client.get().ok_or(RedisError::NotConnected)
    }

    pub(crate) fn connect_error(&self, error: impl std::fmt::Display) -> RedisError {
        RedisError::Connect {
            url: self.inner.config.redacted_url(),
            reason: self.inner.config.redact(error),
        }
    }

    /// `error` from redis-rs as redacted text.
    pub(crate) fn redact(&self, error: impl std::fmt::Display) -> String {
        self.inner.config.redact(error)
    }

    fn build_client(&self) -> Result<Client, RedisError> {
        let config = &self.inner.config;
        let info = config.connection_info().map_err(RedisError::Config)?;
        let tls = config.tls_settings();
        if !tls.roots().is_empty() || tls.client().is_some() {
            return build_with_certificates(config, info);
        }
        if tls.is_required() && !config.url().starts_with("rediss://") {
            return Err(RedisError::Config(format!(
                "TLS is required but the URL `{}` is not `rediss://`",
                config.redacted_url()
            )));
        }
        Client::open(info).map_err(|error| RedisError::Config(config.redact(error)))
    }
}

#[cfg(feature = "tls")]
fn build_with_certificates(
    config: &Config,
    info: redis::ConnectionInfo,
) -> Result<Client, RedisError> {
    let tls = config.tls_settings();
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| {
            RedisError::Config(format!("cannot read TLS file {}: {error}", path.display()))
        })
    };
    // Several root files make one PEM bundle.
    let root_cert = if tls.roots().is_empty() {
        None
    } else {
        let mut bundle = Vec::new();
        for path in tls.roots() {
            bundle.extend(read(path)?);
            bundle.push(b'\n');
        }
        Some(bundle)
    };
    let client_tls = match tls.client() {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        None => None,
    };
    Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|error| RedisError::Config(config.redact(error)))
}

#[cfg(not(feature = "tls"))]
fn build_with_certificates(
    _config: &Config,
    _info: redis::ConnectionInfo,
) -> Result<Client, RedisError> {
    Err(RedisError::Config(
        "TLS certificates are set but ruststream-redis was built without its `tls` feature; enable it".into(),
    ))
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("config", &self.inner.config)
            .field("connected", &self.inner.manager.get().is_some())
            .field("shut_down", &self.inner.shutdown.is_triggered())
            .finish_non_exhaustive()
    }
}

impl Broker for RedisBroker {
    type Error = RedisError;

    async fn connect(&self) -> Result<(), RedisError> {
        #[cfg(feature = "testing")]
        if let Some(client) = self.test_client() {
            return client.connect().await.map_err(|error| RedisError::Connect {
                url: "in-process".into(),
                reason: error.to_string(),
            });
        }
        if self.inner.shutdown.is_triggered() {
            return Err(RedisError::Closed);
        }
        let _guard = self.inner.connecting.lock().await;
        if self.inner.manager.get().is_some() {
            return Ok(());
        }
        let client = self.build_client()?;
        let config = &self.inner.config;
        if !config.cluster_nodes().is_empty() {
            let commands = config
                .cluster_client(Some(config.response_timeout_value()))
                .map_err(RedisError::Config)?;
            let blocking = config.cluster_client(None).map_err(RedisError::Config)?;
            let connection = tokio::time::timeout(
                config.connect_timeout_value() * 2,
                commands.get_async_connection(),
            )
            .await
            .map_err(|_| self.connect_error("timed out"))?
            .map_err(|error| self.connect_error(error))?;
            let _ = self.inner.client.set(client);
            let _ = self.inner.blocking_cluster.set(blocking);
            let _ = self.inner.manager.set(Conn::Cluster(connection));
            return Ok(());
        }
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout_value()))
            .set_response_timeout(Some(config.response_timeout_value()))
            .set_number_of_retries(3);
        let manager = tokio::time::timeout(
            config.connect_timeout_value() * 2,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| self.connect_error("timed out"))?
        .map_err(|error| self.connect_error(error))?;
        let _ = self.inner.client.set(client);
        let _ = self.inner.manager.set(Conn::Manager(manager));
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), RedisError> {
        #[cfg(feature = "testing")]
        if let Some(client) = self.test_client() {
            self.inner.shutdown.trigger();
            return client
                .shutdown()
                .await
                .map_err(|error| RedisError::Receive {
                    name: "in-process".into(),
                    reason: error.to_string(),
                });
        }
        // Every subscriber stream watches the signal and ends; their tasks drop their
        // connections. Commands already sent complete on their own.
        self.inner.shutdown.trigger();
        Ok(())
    }

    fn server(&self) -> Option<ruststream::ServerSpec> {
        Some(ruststream::DescribeServer::describe_server(self))
    }
}

impl Subscribe for RedisBroker {
    type Subscriber = RedisSubscriber;

    async fn subscribe(&self, name: &str) -> Result<RedisSubscriber, RedisError> {
        RedisSource::channel(name).open(self).await
    }
}
