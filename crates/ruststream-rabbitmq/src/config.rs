//! [`Config`]: where the server is, how to log in, TLS, heartbeats, prefetch and what
//! happens while the connection is down.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use lapin::uri::{AMQPScheme, AMQPUri};
use ruststream::kit::{Backoff, Redactor, Secret, Tls, redact_url};

use crate::error::RabbitError;

/// How a RabbitMQ broker connects and behaves.
///
/// `Config::new(url)` takes the AMQP URI (`amqp://user:password@host:5672/vhost`, or
/// `amqps://` for TLS), because there is no sane default server; everything else is a
/// builder method with a documented default. Credentials, in the URL or set with
/// [`credentials`](Self::credentials), never show in `Debug`, errors, logs, metrics or
/// AsyncAPI.
///
/// ```
/// use std::time::Duration;
/// use ruststream_rabbitmq::Config;
///
/// let config = Config::new("amqp://app:s3cret@rabbit.internal:5672/orders")
///     .connection_name("billing")
///     .heartbeat(Duration::from_secs(30))
///     .prefetch(64)
///     .publish_wait(Duration::from_secs(10));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert_eq!(config.redact("login s3cret refused"), "login <redacted> refused");
/// ```
#[derive(Clone)]
pub struct Config {
    url: String,
    vhost: Option<String>,
    user: Option<String>,
    password: Option<Secret>,
    tls: Tls,
    heartbeat: Option<Duration>,
    connection_name: Option<String>,
    prefetch: u16,
    connection_timeout: Duration,
    reconnect: Backoff,
    publish_wait: Option<Duration>,
    shutdown_timeout: Duration,
    redactor: Redactor,
}

/// The prefetch (`basic.qos`) of a subscription unless its queue or the config sets
/// another.
pub const DEFAULT_PREFETCH: u16 = 32;

impl Config {
    /// A config for the server at `url` (`amqp://` or `amqps://`). A URL whose path is
    /// empty or `/` uses the virtual host `/`.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            redactor: Redactor::new().url(&url),
            url,
            vhost: None,
            user: None,
            password: None,
            tls: Tls::default(),
            heartbeat: None,
            connection_name: None,
            prefetch: DEFAULT_PREFETCH,
            connection_timeout: Duration::from_secs(10),
            reconnect: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10)),
            publish_wait: None,
            shutdown_timeout: Duration::from_secs(5),
        }
    }

    /// Uses this virtual host instead of the URL's.
    #[must_use]
    pub fn vhost(mut self, vhost: impl Into<String>) -> Self {
        self.vhost = Some(vhost.into());
        self
    }

    /// Logs in with this user and password instead of the URL's.
    #[must_use]
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        let password = password.into();
        self.redactor.add(password.expose());
        self.user = Some(user.into());
        self.password = Some(password);
        self
    }

    /// TLS settings: extra root certificates, a client certificate for mutual TLS (PEM
    /// files), or TLS required (then the URL must be `amqps://`). Default: TLS exactly
    /// when the URL is `amqps://`, trusting the system's roots.
    #[must_use]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// The heartbeat interval asked of the server (default: the server's, 60 s on
    /// RabbitMQ). A dead connection is noticed within about two intervals.
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }

    /// The name the connection shows under in the management UI (default: none).
    #[must_use]
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// How many unacknowledged messages the server sends each subscription ahead
    /// (`basic.qos`; default [`DEFAULT_PREFETCH`]). Keep it at least the subscriber's
    /// `workers(n)`, or workers wait for messages the server holds back; a queue's own
    /// [`RabbitQueue::prefetch`](crate::RabbitQueue::prefetch) wins over it.
    #[must_use]
    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// How long connecting may take (default 10 s).
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// The delays between reconnection attempts while a publish waits for the
    /// connection (default: 100 ms doubling up to 10 s, with jitter).
    #[must_use]
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = backoff;
        self
    }

    /// While the connection is down, a publish waits up to `wait` for it to come back
    /// (reconnecting with [`reconnect`](Self::reconnect)'s backoff) and is then sent;
    /// a publish the server refuses (`basic.nack`, as a quorum queue does until it has
    /// a leader again) is sent again too. After `wait` it fails. Default: it fails at once with
    /// [`RabbitError::Disconnected`]. Either way a publish returns `Ok` only once the
    /// server confirmed it, so nothing is lost silently; a publish whose confirm was lost
    /// with the connection is sent again after the wait, which may duplicate it.
    #[must_use]
    pub fn publish_wait(mut self, wait: Duration) -> Self {
        self.publish_wait = Some(wait);
        self
    }

    /// The bound on `shutdown` (default 5 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The URL with its credentials redacted.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// `text` with every secret of this config replaced by `<redacted>`.
    pub fn redact(&self, text: impl fmt::Display) -> String {
        self.redactor.redact(text)
    }

    pub(crate) fn prefetch_count(&self) -> u16 {
        self.prefetch
    }

    pub(crate) fn backoff(&self) -> Backoff {
        self.reconnect
    }

    pub(crate) fn publish_wait_limit(&self) -> Option<Duration> {
        self.publish_wait
    }

    pub(crate) fn shutdown_limit(&self) -> Duration {
        self.shutdown_timeout
    }

    pub(crate) fn connect_limit(&self) -> Duration {
        self.connection_timeout
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.connection_name.as_deref()
    }

    pub(crate) fn tls_settings(&self) -> &Tls {
        &self.tls
    }

    /// The virtual host the broker uses: the configured one, else the URL's.
    pub fn virtual_host(&self) -> String {
        if let Some(vhost) = &self.vhost {
            return vhost.clone();
        }
        self.uri().map_or_else(|_| "/".to_owned(), |uri| uri.vhost)
    }

    /// The parsed URI with every override applied.
    pub(crate) fn uri(&self) -> Result<AMQPUri, RabbitError> {
        let mut uri = AMQPUri::from_str(&self.url).map_err(|reason| {
            RabbitError::Config(format!(
                "the URL `{}` is not an AMQP URI ({}); write it as amqp://user:password@host:5672/vhost",
                self.redacted_url(),
                self.redact(reason)
            ))
        })?;
        // The URI parser takes only DNS names as hosts; an IP address would become its
        // default, `localhost`.
        if let Some(host) = host_of(&self.url) {
            uri.authority.host = host.to_owned();
        }
        if uri.vhost.is_empty() {
            uri.vhost = "/".to_owned();
        }
        if let Some(vhost) = &self.vhost {
            uri.vhost.clone_from(vhost);
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            uri.authority.userinfo.username.clone_from(user);
            uri.authority.userinfo.password = password.expose().to_owned();
        }
        if let Some(heartbeat) = self.heartbeat {
            uri.query.heartbeat = Some(u16::try_from(heartbeat.as_secs()).unwrap_or(u16::MAX));
        }
        let timeout = u64::try_from(self.connection_timeout.as_millis()).unwrap_or(u64::MAX);
        uri.query.connection_timeout = Some(timeout.max(1));
        if self.tls.is_required() && uri.scheme != AMQPScheme::AMQPS {
            return Err(RabbitError::Config(format!(
                "TLS is required but the URL `{}` is not amqps://; use amqps://host:5671",
                self.redacted_url()
            )));
        }
        Ok(uri)
    }
}

/// The host of an AMQP URL: after the scheme and the user info, before the port and
/// path; IPv6 addresses without their brackets.
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let rest = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    (!host.is_empty()).then_some(host)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.redacted_url())
            .field("vhost", &self.vhost)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .field("heartbeat", &self.heartbeat)
            .field("connection_name", &self.connection_name)
            .field("prefetch", &self.prefetch)
            .field("connection_timeout", &self.connection_timeout)
            .field("publish_wait", &self.publish_wait)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_keeps_ip_hosts_and_defaults_the_vhost() {
        let uri = Config::new("amqp://u:p@10.1.2.3:5673").uri().unwrap();
        assert_eq!(uri.authority.host, "10.1.2.3");
        assert_eq!(uri.authority.port, 5673);
        assert_eq!(uri.vhost, "/");
        let uri = Config::new("amqp://h/").uri().unwrap();
        assert_eq!(uri.vhost, "/");
        let uri = Config::new("amqp://h/%2fapps").uri().unwrap();
        assert_eq!(uri.vhost, "/apps");
        let uri = Config::new("amqp://[::1]:5672/x").uri().unwrap();
        assert_eq!(uri.authority.host, "::1");
    }

    #[test]
    fn overrides_win_over_the_url() {
        let uri = Config::new("amqp://a:b@h/v")
            .vhost("w")
            .credentials("c", "d")
            .heartbeat(Duration::from_secs(7))
            .uri()
            .unwrap();
        assert_eq!(uri.vhost, "w");
        assert_eq!(uri.authority.userinfo.username, "c");
        assert_eq!(uri.authority.userinfo.password, "d");
        assert_eq!(uri.query.heartbeat, Some(7));
    }

    #[test]
    fn credentials_never_show() {
        let config = Config::new("amqp://app:urlpass@h/v").credentials("u", "setpass");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("urlpass") && !shown.contains("setpass"),
            "{shown}"
        );
        assert_eq!(config.redact("urlpass setpass"), "<redacted> <redacted>");
    }

    #[test]
    fn a_bad_url_is_a_config_error_without_the_password() {
        let error = Config::new("http://u:pw@h").uri().unwrap_err().to_string();
        assert!(error.contains("not an AMQP URI"), "{error}");
        assert!(!error.contains("pw@"), "{error}");
        let error = Config::new("amqp://h")
            .tls(Tls::default().required(true))
            .uri()
            .unwrap_err()
            .to_string();
        assert!(error.contains("amqps://"), "{error}");
    }
}
