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
    private_server_with(test, None).await
}

/// The same, accepting only `user` with `password` when given.
pub async fn private_server_with(
    test: &str,
    credentials: Option<(&str, &str)>,
) -> Option<ServerProcess> {
    let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
    ServerProcess::start(test, "/usr/sbin/mosquitto", move |port, store| {
        let conf = store.join("mosquitto.conf");
        let auth = match &credentials {
            Some((user, password)) => {
                let file = store.join("passwords");
                let status = std::process::Command::new("mosquitto_passwd")
                    .args(["-c", "-b"])
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .expect("run mosquitto_passwd");
                assert!(status.success(), "mosquitto_passwd failed");
                format!("allow_anonymous false\npassword_file {}\n", file.display())
            }
            None => "allow_anonymous true\n".to_owned(),
        };
        // Started as root, Mosquitto would drop to the `mosquitto` user, which cannot
        // write the persistence file in this directory.
        let user = if std::env::var("USER").as_deref() == Ok("root") || unix_uid_is_root() {
            "user root\n"
        } else {
            ""
        };
        let text = format!(
            "listener {port} 127.0.0.1\n{user}{auth}persistence true\npersistence_location {}/\nautosave_interval 1\n",
            store.display()
        );
        std::fs::write(&conf, text).expect("write the private mosquitto.conf");
        vec!["-c".into(), conf.into()]
    })
    .await
}

fn unix_uid_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}
