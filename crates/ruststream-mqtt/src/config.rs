//! The MQTT connection's configuration.

use std::fmt;
use std::time::Duration;

use ruststream::kit::{Backoff, Redactor, Secret, Tls};

/// The MQTT protocol version of a connection. Both are driven through the same API; what
/// differs is what a message can carry (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// MQTT 5: user properties as headers, content type, correlation data, response topic,
    /// message expiry, no-local and retain handling.
    V5,
    /// MQTT 3.1.1: payload only; a header on a publish is refused.
    V311,
}

impl Protocol {
    /// The version as AsyncAPI writes it (`5` or `3.1.1`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V5 => "5",
            Self::V311 => "3.1.1",
        }
    }
}

/// How to reach and talk to one MQTT server.
///
/// `Config::new(protocol, host, port, client_id)` takes what has no sane default; the rest
/// are builder methods with documented defaults. `Debug` never prints the password.
///
/// ```
/// use std::time::Duration;
/// use ruststream_mqtt::{Config, Protocol};
///
/// let config = Config::new(Protocol::V5, "127.0.0.1", 1883, "billing-1")
///     .credentials("billing", "s3cret")
///     .persistent_session(Duration::from_secs(3600))
///     .keep_alive(Duration::from_secs(30));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) protocol: Protocol,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) client_id: String,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) tls: Tls,
    pub(crate) keep_alive: Duration,
    pub(crate) clean_start: bool,
    pub(crate) session_expiry: Duration,
    pub(crate) inflight: u16,
    pub(crate) receive_maximum: u16,
    pub(crate) max_packet_size: u32,
    pub(crate) reconnect: Backoff,
    pub(crate) connect_timeout: Duration,
    pub(crate) ack_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) publish_qos: crate::Qos,
}

impl Config {
    /// A connection to `host:port` speaking `protocol`, identified by `client_id`.
    ///
    /// The client id names the session on the server: two live connections with the same
    /// id take each other over, and a persistent session is found again by it, so there is
    /// no default. Defaults: clean start, keep-alive 30 s, 100 messages in flight each
    /// way, no TLS, no credentials.
    pub fn new(
        protocol: Protocol,
        host: impl Into<String>,
        port: u16,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            protocol,
            host: host.into(),
            port,
            client_id: client_id.into(),
            username: None,
            password: None,
            tls: Tls::default(),
            keep_alive: Duration::from_secs(30),
            clean_start: true,
            session_expiry: Duration::ZERO,
            inflight: 100,
            receive_maximum: 100,
            max_packet_size: 16 * 1024 * 1024,
            reconnect: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10)),
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            publish_qos: crate::Qos::AtLeastOnce,
        }
    }

    /// User name and password. The password is kept in a [`Secret`] and redacted from
    /// every log, error and AsyncAPI document.
    #[must_use]
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// TLS settings (rustls). Default: plain TCP. `Tls::default().required(true)` uses the
    /// platform's root certificates.
    #[must_use]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Keep-alive interval (at least 5 s for the client). Default 30 s.
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive.max(Duration::from_secs(5));
        self
    }

    /// Keeps the session on the server for `expiry` after a disconnect (clean start off):
    /// subscriptions and QoS 1 and 2 messages published meanwhile wait for this client id
    /// to come back. On MQTT 3.1.1 the session lives until a clean connect (the server's
    /// own expiry applies). Default: a clean session.
    #[must_use]
    pub fn persistent_session(mut self, expiry: Duration) -> Self {
        self.clean_start = false;
        self.session_expiry = expiry;
        self
    }

    /// Clean start (`true`, the default) discards any earlier session of this client id at
    /// connect.
    #[must_use]
    pub fn clean_start(mut self, clean_start: bool) -> Self {
        self.clean_start = clean_start;
        self
    }

    /// Session expiry interval sent on MQTT 5 connects. Default 0 (the session ends with
    /// the connection).
    #[must_use]
    pub fn session_expiry(mut self, expiry: Duration) -> Self {
        self.session_expiry = expiry;
        self
    }

    /// Outgoing QoS 1 and 2 publishes in flight before publishing waits. Default 100.
    #[must_use]
    pub fn inflight(mut self, inflight: u16) -> Self {
        self.inflight = inflight.max(1);
        self
    }

    /// Incoming QoS 1 and 2 messages the server may have unacknowledged in this client's
    /// hands (MQTT 5 receive maximum; on 3.1.1 the server's own setting applies).
    /// Default 100.
    #[must_use]
    pub fn receive_maximum(mut self, receive_maximum: u16) -> Self {
        self.receive_maximum = receive_maximum.max(1);
        self
    }

    /// The largest packet sent or accepted. Default 16 MiB.
    #[must_use]
    pub fn max_packet_size(mut self, bytes: u32) -> Self {
        self.max_packet_size = bytes;
        self
    }

    /// Delays between reconnect attempts. Default: 100 ms growing to 10 s, with jitter.
    #[must_use]
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = backoff;
        self
    }

    /// How long `connect` waits for the server's CONNACK. Default 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a QoS 1 or 2 publish, or a subscribe, waits for the server's answer.
    /// Default 30 s.
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// The bound on `shutdown`. Default 5 s.
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The QoS of a publish that sets no `mqtt-qos` header. Default QoS 1 (the publish
    /// returns once the server acknowledged it).
    #[must_use]
    pub fn publish_qos(mut self, qos: crate::Qos) -> Self {
        self.publish_qos = qos;
        self
    }

    /// The protocol version.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The server host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `text` with every secret of this configuration replaced by `<redacted>`.
    pub fn redact(&self, text: impl fmt::Display) -> String {
        self.redactor().redact(text)
    }

    pub(crate) fn redactor(&self) -> Redactor {
        let mut redactor = Redactor::new();
        if let Some(password) = &self.password {
            redactor.add(password.expose());
        }
        redactor
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("protocol", &self.protocol)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .field("keep_alive", &self.keep_alive)
            .field("clean_start", &self.clean_start)
            .field("session_expiry", &self.session_expiry)
            .field("inflight", &self.inflight)
            .field("receive_maximum", &self.receive_maximum)
            .finish_non_exhaustive()
    }
}
