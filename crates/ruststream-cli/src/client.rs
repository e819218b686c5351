//! `publish`, `request` and `subscribe`: one message to a broker, or the messages from it.
//!
//! The broker is chosen by the URL's scheme through [`SCHEMES`], where the brokers still to
//! come already have their row (NATS, Redis and MQTT are available). The work itself is written once against the contract's
//! traits ([`Publisher`], [`RequestReply`], [`Subscribe`]); a broker crate joins by marking
//! its row available, a variant of [`Connected`] made in [`connect`], and one arm per
//! command that hands that broker to the same generic functions.

use std::io::Write as _;
use std::time::Duration;

use ruststream::{
    Broker, Headers, IncomingMessage, OutgoingMessage, Publisher, RequestReply, Subscribe,
    SubscriberExt as _,
};

use crate::error::CliError;

/// A broker this tool may speak to, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// NATS, through `ruststream-nats`.
    Nats,
    /// Redis Pub/Sub channels, through `ruststream-redis`.
    Redis,
    /// RabbitMQ (to come).
    RabbitMq,
    /// MQTT 5 or 3.1.1, through `ruststream-mqtt`.
    Mqtt,
    /// Kafka (to come).
    Kafka,
}

/// One row of the scheme table.
#[derive(Debug)]
pub(crate) struct Scheme {
    /// The URL schemes (`nats`, `tls`...).
    pub(crate) schemes: &'static [&'static str],
    /// The broker.
    pub(crate) kind: Kind,
    /// Its name for people.
    pub(crate) label: &'static str,
    /// The crate that speaks to it.
    pub(crate) krate: &'static str,
    /// Whether this tool is built with that crate.
    pub(crate) available: bool,
}

/// Every scheme the tool knows, and whether it can use it yet.
pub(crate) const SCHEMES: &[Scheme] = &[
    Scheme {
        schemes: &["nats", "tls"],
        kind: Kind::Nats,
        label: "NATS",
        krate: "ruststream-nats",
        available: true,
    },
    Scheme {
        schemes: &["redis", "rediss"],
        kind: Kind::Redis,
        label: "Redis",
        krate: "ruststream-redis",
        available: true,
    },
    Scheme {
        schemes: &["amqp", "amqps"],
        kind: Kind::RabbitMq,
        label: "RabbitMQ",
        krate: "ruststream-rabbitmq",
        available: false,
    },
    Scheme {
        schemes: &["mqtt", "mqtts"],
        kind: Kind::Mqtt,
        label: "MQTT",
        krate: "ruststream-mqtt",
        available: true,
    },
    Scheme {
        schemes: &["kafka"],
        kind: Kind::Kafka,
        label: "Kafka",
        krate: "ruststream-kafka",
        available: false,
    },
];

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The destination.
    pub(crate) name: String,
    /// The body.
    pub(crate) body: Vec<u8>,
    /// The headers, in order.
    pub(crate) headers: Vec<(String, String)>,
}

/// The row of `url`'s scheme, or an error that says which schemes there are.
pub(crate) fn scheme_of(url: &str) -> Result<&'static Scheme, CliError> {
    let known = || {
        SCHEMES
            .iter()
            .flat_map(|row| row.schemes.iter().map(|scheme| format!("{scheme}://")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(CliError::Url(format!(
            "`{}` is not a broker URL: write it with its scheme, such as nats://127.0.0.1:4222 (known: {})",
            redact(url),
            known()
        )));
    };
    let scheme = scheme.to_ascii_lowercase();
    let row = SCHEMES
        .iter()
        .find(|row| row.schemes.contains(&scheme.as_str()))
        .ok_or_else(|| {
            CliError::Url(format!(
                "no broker speaks `{scheme}://` (known: {})",
                known()
            ))
        })?;
    if !row.available {
        let available = SCHEMES
            .iter()
            .filter(|row| row.available)
            .map(|row| format!("{}://", row.schemes[0]))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CliError::Url(format!(
            "{scheme}:// ({}) is not supported by this tool yet: it is not built with the {} \
             crate, which a service uses directly; available now: {available}",
            row.label, row.krate
        )));
    }
    Ok(row)
}

/// `url` with any password replaced by `***` (`nats://user:***@host:4222`).
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            // A lone userinfo is a token for NATS: a secret too.
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

/// A connected broker of one of the kinds this tool speaks.
enum Connected {
    Nats(ruststream_nats::NatsBroker),
    Mqtt(ruststream_mqtt::MqttBroker),
    Redis(ruststream_redis::RedisBroker),
}

/// Connects to the broker at `url`.
async fn connect(url: &str) -> Result<(Connected, &'static Scheme), CliError> {
    let row = scheme_of(url)?;
    let address = redact(url);
    match row.kind {
        Kind::Nats => {
            let config = ruststream_nats::Config::new(url)
                .name("ruststream-cli")
                .connection_timeout(Duration::from_secs(3))
                .max_reconnects(Some(0));
            let broker = ruststream_nats::NatsBroker::new(config);
            broker.connect().await.map_err(|error| CliError::Connect {
                broker: row.label,
                address,
                reason: match error {
                    ruststream_nats::NatsError::Connect { reason, .. } => format!(
                        "{reason}; is nats-server running there (nats-server -a 127.0.0.1 -p 4222)?"
                    ),
                    other => other.to_string(),
                },
            })?;
            Ok((Connected::Nats(broker), row))
        }
        Kind::Mqtt => {
            let config = mqtt_config(url)?
                .connect_timeout(Duration::from_secs(3))
                .ack_timeout(Duration::from_secs(10));
            let broker = ruststream_mqtt::MqttBroker::new(config);
            broker.connect().await.map_err(|error| CliError::Connect {
                broker: row.label,
                address,
                reason: match error {
                    // Redacted by the crate: no password in it.
                    ruststream_mqtt::MqttError::Connect(reason) => format!(
                        "{reason}; is Mosquitto (or another MQTT server) running there \
                         (mosquitto -p 1883)?"
                    ),
                    other => other.to_string(),
                },
            })?;
            Ok((Connected::Mqtt(broker), row))
        }
        Kind::Redis => {
            let config = ruststream_redis::Config::new(url).connect_timeout(Duration::from_secs(3));
            let broker = ruststream_redis::RedisBroker::new(config);
            broker.connect().await.map_err(|error| CliError::Connect {
                broker: row.label,
                address,
                reason: match error {
                    // Redacted by the crate: no password in it.
                    ruststream_redis::RedisError::Connect { reason, .. } => format!(
                        "{reason}; is redis-server running there (redis-server --port 6379)?"
                    ),
                    other => other.to_string(),
                },
            })?;
            Ok((Connected::Redis(broker), row))
        }
        // `scheme_of` lets no unavailable broker through.
        Kind::RabbitMq | Kind::Kafka => {
            unreachable!("{} is marked unavailable in SCHEMES", row.label)
        }
    }
}

fn headers_of(message: &Message) -> Headers {
    let mut headers = Headers::with_capacity(message.headers.len());
    for (name, value) in &message.headers {
        headers.append(name.clone(), value.clone().into_bytes());
    }
    headers
}

/// A failure once connected, with the broker and address it concerns.
fn failed(action: String, row: &Scheme, url: &str) -> impl FnOnce(String) -> CliError {
    let address = redact(url);
    let broker = row.label;
    move |reason| CliError::Broker {
        action,
        broker,
        address,
        reason,
    }
}

/// `ruststream publish`.
pub(crate) async fn publish(url: &str, message: &Message) -> Result<(), CliError> {
    let (broker, row) = connect(url).await?;
    let fail = failed(format!("publish to `{}`", message.name), row, url);
    let result = match &broker {
        Connected::Nats(nats) => publish_on(nats, message).await.map_err(nats_reason),
        Connected::Mqtt(mqtt) => publish_on(mqtt, message).await.map_err(|error| {
            let v311 = mqtt.config().protocol() == ruststream_mqtt::Protocol::V311;
            match error {
                ruststream_mqtt::MqttError::Header(reason) if v311 => format!(
                    "{reason} (this URL asks for MQTT 3.1.1: drop `?version=3.1.1` for MQTT 5)"
                ),
                other => mqtt_reason(other),
            }
        }),
        Connected::Redis(redis) => publish_on(redis, message).await.map_err(redis_reason),
    };
    close(&broker).await;
    result.map_err(fail)?;
    eprintln!(
        "published {} bytes to `{}` on {}",
        message.body.len(),
        message.name,
        redact(url)
    );
    Ok(())
}

/// `ruststream request`: the reply's headers go to standard error, its body to standard
/// output.
pub(crate) async fn request(
    url: &str,
    message: &Message,
    timeout: Duration,
) -> Result<(), CliError> {
    let (broker, row) = connect(url).await?;
    let fail = failed(format!("the request to `{}`", message.name), row, url);
    let result = match &broker {
        Connected::Nats(nats) => request_on(nats, message, timeout)
            .await
            .map_err(nats_reason),
        Connected::Mqtt(mqtt) if mqtt.config().protocol() != ruststream_mqtt::Protocol::V5 => Err(
            "request-reply needs MQTT 5 (response topic and correlation data): drop \
                 `?version=3.1.1` from the URL"
                .to_owned(),
        ),
        Connected::Mqtt(mqtt) => request_on(mqtt, message, timeout)
            .await
            .map_err(mqtt_reason),
        Connected::Redis(redis) => request_on(redis, message, timeout)
            .await
            .map_err(redis_reason),
    };
    close(&broker).await;
    let reply = result.map_err(fail)?;
    for (name, value) in reply.headers.iter() {
        eprintln!("{name}: {}", printable(value));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&reply.payload);
    if !reply.payload.ends_with(b"\n") {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
    Ok(())
}

/// `ruststream subscribe`: prints each message, then acks it.
pub(crate) async fn subscribe(url: &str, name: &str, count: Option<u64>) -> Result<(), CliError> {
    let (broker, row) = connect(url).await?;
    let fail = failed(format!("the subscription to `{name}`"), row, url);
    let result = match &broker {
        Connected::Nats(nats) => {
            async {
                let subscriber = nats.subscribe(name).await.map_err(nats_reason)?;
                // The subscription is registered at the server once the flush returns:
                // whatever is published after the line below arrives.
                let client = nats.client().map_err(|e| e.to_string())?;
                client.flush().await.map_err(|e| e.to_string())?;
                eprintln!("subscribed to `{name}` on {} (Ctrl-C stops)", redact(url));
                print_messages(subscriber, count).await
            }
            .await
        }
        Connected::Mqtt(mqtt) => {
            async {
                // Returns once the server acknowledged the subscription (SUBACK): whatever
                // is published after the line below arrives.
                let subscriber = mqtt.subscribe(name).await.map_err(mqtt_reason)?;
                eprintln!("subscribed to `{name}` on {} (Ctrl-C stops)", redact(url));
                print_messages(subscriber, count).await
            }
            .await
        }
        Connected::Redis(redis) => {
            async {
                use ruststream::SubscriptionSource as _;
                // A glob (`orders.*`) is a pattern (PSUBSCRIBE), anything else a channel;
                // either returns once the server confirmed it.
                let source = if name.contains(['*', '?', '[']) {
                    ruststream_redis::RedisSource::pattern(name)
                } else {
                    ruststream_redis::RedisSource::channel(name)
                };
                let subscriber = source.subscribe(redis).await.map_err(redis_reason)?;
                eprintln!("subscribed to `{name}` on {} (Ctrl-C stops)", redact(url));
                print_messages(subscriber, count).await
            }
            .await
        }
    };
    close(&broker).await;
    result.map_err(fail)
}

async fn close(broker: &Connected) {
    match broker {
        Connected::Nats(nats) => {
            let _ = nats.shutdown().await;
        }
        Connected::Mqtt(mqtt) => {
            let _ = mqtt.shutdown().await;
        }
        Connected::Redis(redis) => {
            let _ = redis.shutdown().await;
        }
    }
}

/// What went wrong, without the action and channel the caller's message already names.
fn redis_reason(error: ruststream_redis::RedisError) -> String {
    use ruststream_redis::RedisError;
    match error {
        RedisError::Publish { reason, .. }
        | RedisError::Request { reason, .. }
        | RedisError::Subscribe { reason, .. }
        | RedisError::Receive { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// What went wrong, without the action and topic the caller's message already names.
fn mqtt_reason(error: ruststream_mqtt::MqttError) -> String {
    use ruststream_mqtt::MqttError;
    match error {
        MqttError::Publish { reason, .. }
        | MqttError::Request { reason, .. }
        | MqttError::Subscribe { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// The MQTT client configuration an `mqtt://` or `mqtts://` URL describes:
/// `mqtt://[user[:password]@]host[:port][?version=5|3.1.1][&client-id=ID]`.
///
/// The port defaults to 1883 (8883 for `mqtts://`, which requires TLS with the platform's
/// root certificates); the version to MQTT 5; the client id to `ruststream-cli-` followed
/// by the process id and the time, so that two commands never take each other's
/// connection over. User name and password may be percent-encoded.
pub(crate) fn mqtt_config(url: &str) -> Result<ruststream_mqtt::Config, CliError> {
    use ruststream_mqtt::{Config, Protocol, Tls};
    let invalid = |why: String| {
        CliError::Url(format!(
            "`{}` is not an MQTT URL: {why} (write it as \
             mqtt://[user:password@]host[:port][?version=5|3.1.1][&client-id=ID])",
            redact(url)
        ))
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("no scheme".to_owned()))?;
    let tls = scheme.eq_ignore_ascii_case("mqtts");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !path.is_empty() && path != "/" {
        return Err(invalid(format!(
            "an MQTT URL has no path (`{path}`): give the topic as its own argument"
        )));
    }
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 address: `[::1]:1883`.
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid("an IPv6 address without its `]`".to_owned()))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(invalid(format!("`{after}` after the address"))),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("no host".to_owned()));
    }
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| invalid(format!("`{port}` is not a port")))?,
        None => default_port,
    };
    let mut protocol = Protocol::V5;
    let mut client_id = None;
    for pair in query.into_iter().flat_map(|query| query.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "version" | "protocol" => {
                protocol = match value {
                    "5" | "5.0" | "v5" => Protocol::V5,
                    "3.1.1" | "311" | "v311" | "4" => Protocol::V311,
                    other => {
                        return Err(invalid(format!(
                            "`{other}` is not an MQTT version: write version=5 (the default) \
                             or version=3.1.1"
                        )));
                    }
                }
            }
            "client-id" | "client_id" if !value.is_empty() => {
                client_id = Some(percent_decode(value));
            }
            other => {
                return Err(invalid(format!(
                    "unknown query setting `{other}`: known are version and client-id"
                )));
            }
        }
    }
    let client_id = client_id.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        format!("ruststream-cli-{}-{nanos}", std::process::id())
    });
    let mut config = Config::new(protocol, host, port, client_id);
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        config = config.credentials(percent_decode(user), percent_decode(password));
    }
    if tls {
        config = config.tls(Tls::default().required(true));
    }
    Ok(config)
}

/// `%XX` escapes decoded (as UTF-8, lossily); anything else kept as is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What went wrong, without the action and subject the caller's message already names.
fn nats_reason(error: ruststream_nats::NatsError) -> String {
    use ruststream_nats::NatsError;
    match error {
        NatsError::Publish { reason, .. }
        | NatsError::Request { reason, .. }
        | NatsError::Subscribe { reason, .. }
        | NatsError::Receive { reason, .. } => reason,
        other => other.to_string(),
    }
}

async fn publish_on<B: Publisher>(broker: &B, message: &Message) -> Result<(), B::Error> {
    let headers = headers_of(message);
    let outgoing = OutgoingMessage::new(&message.name, &message.body).with_headers(&headers);
    broker.publish(outgoing).await
}

async fn request_on<B: RequestReply>(
    broker: &B,
    message: &Message,
    timeout: Duration,
) -> Result<ruststream::Reply, B::Error> {
    let headers = headers_of(message);
    let outgoing = OutgoingMessage::new(&message.name, &message.body).with_headers(&headers);
    broker.request(outgoing, timeout).await
}

/// Prints what arrives until Ctrl-C, the end of the subscription or `count` messages.
async fn print_messages<S: ruststream::Subscriber>(
    mut subscriber: S,
    count: Option<u64>,
) -> Result<(), String> {
    let mut seen = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    let mut ctrl_c = std::pin::pin!(ctrl_c);
    while count.is_none_or(|count| seen < count) {
        let next = tokio::select! {
            next = subscriber.next_message() => next,
            _ = &mut ctrl_c => break,
        };
        let Some(message) = next else { break };
        let message = message.map_err(|e| e.to_string())?;
        print!("{}", format_message(&message));
        let _ = std::io::stdout().flush();
        message.ack().await.map_err(|e| e.to_string())?;
        seen += 1;
    }
    Ok(())
}

/// A message as printed by `subscribe`: a line with its name and size, its headers, a
/// blank line, the body and a blank line.
pub(crate) fn format_message(message: &impl IncomingMessage) -> String {
    let payload = message.payload();
    let mut text = format!(
        "--- {} ({} bytes)\n",
        message.name().unwrap_or("?"),
        payload.len()
    );
    if let Some(reply_to) = message.reply_to() {
        text.push_str(&format!("reply-to: {reply_to}\n"));
    }
    for (name, value) in message.headers().iter() {
        text.push_str(&format!("{name}: {}\n", printable(value)));
    }
    text.push('\n');
    text.push_str(&printable(payload));
    text.push_str("\n\n");
    text
}

/// Text as is; bytes that are not UTF-8 as `\xNN` escapes.
fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_and_tokens() {
        assert_eq!(
            redact("nats://orders:s3cret@10.0.0.1:4222"),
            "nats://orders:***@10.0.0.1:4222"
        );
        assert_eq!(redact("nats://t0ken@host:4222/x"), "nats://***@host:4222/x");
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact("mqtt://u:pw@h:1883?client-id=a@b"),
            "mqtt://u:***@h:1883?client-id=a@b"
        );
    }

    #[test]
    fn brokers_the_tool_lacks_name_their_crate() {
        for (url, krate) in [
            ("amqp://guest:guest@127.0.0.1:5672", "ruststream-rabbitmq"),
            ("kafka://127.0.0.1:9092", "ruststream-kafka"),
        ] {
            let error = scheme_of(url).unwrap_err().to_string();
            assert!(error.contains("not supported by this tool yet"), "{error}");
            assert!(error.contains(krate), "{error}");
            assert!(!error.contains("guest:guest"), "{error}");
        }
        assert_eq!(scheme_of("nats://h:4222").unwrap().kind, Kind::Nats);
        assert_eq!(scheme_of("mqtt://h:1883").unwrap().kind, Kind::Mqtt);
        assert_eq!(scheme_of("rediss://h:6379").unwrap().kind, Kind::Redis);
        assert_eq!(scheme_of("MQTTS://h").unwrap().kind, Kind::Mqtt);
    }

    #[test]
    fn mqtt_urls_give_host_port_version_and_credentials() {
        use ruststream_mqtt::Protocol;
        let config = mqtt_config("mqtt://127.0.0.1:1883").unwrap();
        assert_eq!(
            (config.host(), config.port(), config.protocol()),
            ("127.0.0.1", 1883, Protocol::V5)
        );
        assert!(config.client_id().starts_with("ruststream-cli-"));
        let config = mqtt_config("mqtt://broker.local").unwrap();
        assert_eq!((config.host(), config.port()), ("broker.local", 1883));
        let config = mqtt_config("mqtts://broker.local").unwrap();
        assert_eq!(config.port(), 8883);
        let config = mqtt_config("mqtt://[::1]:1884/?version=3.1.1&client-id=probe").unwrap();
        assert_eq!(
            (config.host(), config.port(), config.protocol()),
            ("::1", 1884, Protocol::V311)
        );
        assert_eq!(config.client_id(), "probe");
        let config = mqtt_config("mqtt://orders:s%40cret@h:1883").unwrap();
        assert!(!format!("{config:?}").contains("s@cret"));
        assert_eq!(config.redact("pw s@cret"), "pw <redacted>");
    }

    #[test]
    fn bad_mqtt_urls_say_what_is_wrong_without_the_password() {
        for (url, says) in [
            ("mqtt://u:s3cret@h:1883?version=4.0", "not an MQTT version"),
            ("mqtt://u:s3cret@h:port", "not a port"),
            ("mqtt://u:s3cret@h:1883/orders", "no path"),
            ("mqtt://u:s3cret@h?qos=1", "unknown query setting `qos`"),
            ("mqtt://u:s3cret@:1883", "no host"),
        ] {
            let error = mqtt_config(url).unwrap_err().to_string();
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains("s3cret"), "{url}: {error}");
        }
    }

    #[test]
    fn an_unknown_scheme_lists_the_known_ones() {
        let error = scheme_of("http://x").unwrap_err().to_string();
        assert!(error.contains("nats://"), "{error}");
        let error = scheme_of("localhost:4222").unwrap_err().to_string();
        assert!(error.contains("not a broker URL"), "{error}");
    }
}
