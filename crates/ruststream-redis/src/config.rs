//! [`Config`]: where the Redis server is, how to log in, TLS and timeouts.

use std::fmt;
use std::time::Duration;

use ruststream::kit::{Redactor, Secret, Tls, redact_url};

/// The settings of a [`RedisBroker`](crate::RedisBroker).
///
/// `Config::new(url)` takes the server URL (`redis://host:6379`, `rediss://` for TLS,
/// `redis://user:password@host:6379/2`), because there is no sane default server.
/// Everything else has a documented default. No setting ever shows a credential: the
/// `Debug` output redacts the URL and the password, and [`Config::redact`] strips them
/// from any text (every error message of this crate passes through it).
#[derive(Clone)]
pub struct Config {
    url: String,
    /// Every node URL of a Redis Cluster (the first is `url`); empty for one server.
    cluster: Vec<String>,
    username: Option<String>,
    password: Option<Secret>,
    database: Option<i64>,
    tls: Tls,
    connect_timeout: Duration,
    response_timeout: Duration,
    shutdown_timeout: Duration,
    redactor: Redactor,
}

impl Config {
    /// A config for the server at `url` (`redis://`, `rediss://` for TLS); credentials
    /// and the database may be in the URL or set with the builder methods.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            redactor: Redactor::new().url(&url),
            url,
            cluster: Vec::new(),
            username: None,
            password: None,
            database: None,
            tls: Tls::default(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
        }
    }

    /// A config for a Redis Cluster, reached through any of `nodes` (`redis://host:port`
    /// each; the cluster tells where the others are). Commands go through redis-rs's
    /// cluster client, each to the node of its key's slot; Pub/Sub subscriptions use the
    /// first node (the cluster forwards every `PUBLISH` to all nodes). A list's
    /// bookkeeping keys share its hash slot, so its scripts stay on one node; a
    /// transaction's publishes must all be to names of one slot.
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        let mut config = Self::new(nodes.first().cloned().unwrap_or_default());
        for node in &nodes {
            config.redactor = std::mem::take(&mut config.redactor).url(node);
        }
        config.cluster = nodes;
        config
    }

    /// The user name for `AUTH` (Redis 6 ACLs). Default: the URL's, else none.
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password for `AUTH`. Default: the URL's, else none. Never shown.
    #[must_use]
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        let password = password.into();
        self.redactor.add(password.expose());
        self.password = Some(password);
        self
    }

    /// The database number to `SELECT`. Default: the URL's path, else 0.
    #[must_use]
    pub fn database(mut self, database: i64) -> Self {
        self.database = Some(database);
        self
    }

    /// TLS settings (root certificates, client certificate). A `rediss://` URL turns TLS
    /// on by itself; TLS needs the crate feature `tls`. Default: none.
    #[must_use]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// How long to wait for a connection to be established. Default: 5 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the answer to a (non-blocking) command. Default: 5 s.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The bound on `shutdown` and on settling a message. Default: 5 s.
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The server URL with its credentials redacted, fit for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// `text` with every secret of this config (the URL's password, the password)
    /// replaced by `<redacted>`.
    pub fn redact(&self, text: impl fmt::Display) -> String {
        self.redactor.redact(text)
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The cluster's node URLs; empty for one server.
    pub(crate) fn cluster_nodes(&self) -> &[String] {
        &self.cluster
    }

    /// A redis-rs cluster client for the nodes, with this config's credentials and the
    /// given response timeout (`None`: for blocking reads).
    pub(crate) fn cluster_client(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<redis::cluster::ClusterClient, String> {
        let mut builder =
            redis::cluster::ClusterClient::builder(self.cluster.iter().map(String::as_str))
                .connection_timeout(self.connect_timeout)
                .response_timeout(response_timeout.unwrap_or(Duration::from_secs(24 * 3600)));
        if let Some(username) = &self.username {
            builder = builder.username(username);
        }
        if let Some(password) = &self.password {
            builder = builder.password(password.expose());
        }
        builder.build().map_err(|error| self.redact(error))
    }

    pub(crate) fn tls_settings(&self) -> &Tls {
        &self.tls
    }

    pub(crate) fn connect_timeout_value(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn response_timeout_value(&self) -> Duration {
        self.response_timeout
    }

    pub(crate) fn shutdown_timeout_value(&self) -> Duration {
        self.shutdown_timeout
    }

    /// The redis-rs connection info: the URL, then the settings that override it.
    pub(crate) fn connection_info(&self) -> Result<redis::ConnectionInfo, String> {
        use redis::IntoConnectionInfo;
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|error| self.redact(error))?;
        let mut settings = info.redis_settings().clone();
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose());
        }
        if let Some(database) = self.database {
            settings = settings.set_db(database);
        }
        Ok(info.set_redis_settings(settings))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &redact_url(&self.url))
            .field(
                "cluster",
                &self
                    .cluster
                    .iter()
                    .map(|url| redact_url(url))
                    .collect::<Vec<_>>(),
            )
            .field("username", &self.username)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_redact_hide_every_secret() {
        let config = Config::new("redis://alice:urlpass@cache:6379/1").password("s3cret");
        let shown = format!("{config:?}");
        assert!(!shown.contains("urlpass"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let text = config.redact("failed at redis://alice:urlpass@cache with s3cret");
        assert!(
            !text.contains("urlpass") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[test]
    fn settings_override_the_url() {
        let config = Config::new("redis://127.0.0.1:6379/1")
            .username("bob")
            .password("pw")
            .database(3);
        let info = config.connection_info().unwrap();
        assert_eq!(info.redis_settings().db(), 3);
    }
}
