//! What the live-server tests share, on `ruststream::kit::live`: the shared NATS server,
//! and a private `nats-server` a test can kill and restart.
#![allow(dead_code, unreachable_pub)]

use std::ffi::OsString;

use ruststream::kit::live::{LiveServer, ServerProcess};

/// The shared test server (`RUSTSTREAM_NATS_URL` overrides the URL).
pub const NATS: LiveServer = LiveServer {
    name: "NATS",
    url_var: "RUSTSTREAM_NATS_URL",
    default_url: "nats://127.0.0.1:4222",
    start_command: "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log",
};

/// The URL of the shared server, or `None` (skipped or failed, as `LiveServer::find` says).
pub async fn shared_server(test: &str) -> Option<String> {
    NATS.find(test).await
}

/// A `nats-server` of the test's own, JetStream on, with an optional user and password.
pub struct PrivateServer {
    pub process: ServerProcess,
    pub auth: Option<(String, String)>,
}

impl PrivateServer {
    /// Starts one, or (no binary) fails or skips like [`shared_server`].
    pub async fn start(test: &str, auth: Option<(&str, &str)>) -> Option<Self> {
        let auth = auth.map(|(user, password)| (user.to_owned(), password.to_owned()));
        let credentials = auth.clone();
        let process = ServerProcess::start(test, "/usr/sbin/nats-server", move |port, store| {
            let port = port.to_string();
            let mut args: Vec<OsString> = ["-a", "127.0.0.1", "-p", &port, "-js", "-sd"]
                .map(OsString::from)
                .into();
            args.push(store.into());
            if let Some((user, password)) = &credentials {
                args.extend(["--user", user, "--pass", password].map(OsString::from));
            }
            args
        })
        .await?;
        Some(Self { process, auth })
    }

    /// The URL to connect to (without the credentials; the test's config adds them).
    pub fn url(&self) -> String {
        format!("nats://{}", self.process.address())
    }
}

impl std::ops::Deref for PrivateServer {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}
