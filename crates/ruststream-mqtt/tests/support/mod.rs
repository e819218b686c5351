//! What the live-server tests share, on `ruststream::kit::live`: the shared Mosquitto
//! server and a private one a test can restart.
#![allow(dead_code, unreachable_pub)]

use ruststream::kit::live::{LiveServer, ServerProcess};
use ruststream_mqtt::{Config, Protocol};

/// The shared test server (`RUSTSTREAM_MQTT_URL` overrides the URL).
pub const MOSQUITTO: LiveServer = LiveServer {
    name: "Mosquitto",
    url_var: "RUSTSTREAM_MQTT_URL",
    default_url: "mqtt://127.0.0.1:1883",
    start_command: "mosquitto -d -c /etc/mosquitto/mosquitto.conf",
};

/// Host and port of an `mqtt://host:port` URL.
pub fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split('/').next().unwrap_or(rest);
    match rest.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(1883)),
        None => (rest.to_owned(), 1883),
    }
}

/// The shared server's address, or `None` (skipped or failed, as `LiveServer::find` says).
pub async fn shared_server(test: &str) -> Option<(String, u16)> {
    MOSQUITTO.find(test).await.map(|url| host_port(&url))
}

/// A config for the shared server with a client id of its own.
pub fn config(server: &(String, u16), protocol: Protocol, client: &str) -> Config {
    Config::new(protocol, server.0.clone(), server.1, client)
}

/// A `mosquitto` of the test's own on its own port, with persistence in its own
/// directory; `restart` keeps the data directory.
pub async fn private_server(test: &str) -> Option<ServerProcess> {
    ServerProcess::start(test, "/usr/sbin/mosquitto", |port, store| {
        let conf = store.join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\n",
            store.display()
        );
        std::fs::write(&conf, text).expect("write the private mosquitto.conf");
        vec!["-c".into(), conf.into()]
    })
    .await
}
