//! What the live-server tests share: finding the server (and failing or skipping when it
//! is not there), and a private `nats-server` a test can kill and restart.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::process::{Child, Command};

/// The shared test server.
pub const ADDRESS: &str = "127.0.0.1:4222";

/// How to start the shared test server.
pub const START_COMMAND: &str = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";

/// The binary a test starts for its own server.
pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// Whether the environment says a missing server is a failure (scripts/test sets it).
fn servers_required() -> bool {
    std::env::var("RUSTSTREAM_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// The URL of the shared server if it is reachable. When it is not: panics naming NATS
/// and how to start it if `RUSTSTREAM_REQUIRE_SERVERS=1`, else prints that `test` is
/// skipped and returns `None`.
pub async fn shared_server(test: &str) -> Option<String> {
    let reachable = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(ADDRESS),
    )
    .await
    .is_ok_and(|connected| connected.is_ok());
    if reachable {
        return Some(format!("nats://{ADDRESS}"));
    }
    if servers_required() {
        panic!(
            "NATS is not reachable at {ADDRESS} and RUSTSTREAM_REQUIRE_SERVERS=1: start it with `{START_COMMAND}`"
        );
    }
    eprintln!(
        "SKIPPED {test}: no NATS server at {ADDRESS} (start it with `{START_COMMAND}`, or set RUSTSTREAM_REQUIRE_SERVERS=1 to fail instead)"
    );
    None
}

/// A token no earlier run used: process id and start time.
pub fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}x{:x}", std::process::id(), nanos % (1u128 << 48))
}

/// A `nats-server` of the test's own: a free private port, a temporary store directory,
/// JetStream on, optional user and password. Killed (and its store removed) on drop.
pub struct PrivateServer {
    pub port: u16,
    pub store: PathBuf,
    pub auth: Option<(String, String)>,
    child: Mutex<Option<Child>>,
}

impl PrivateServer {
    /// Starts one, or (no binary) fails or skips like [`shared_server`].
    pub async fn start(test: &str, auth: Option<(&str, &str)>) -> Option<Self> {
        if !std::path::Path::new(NATS_SERVER).exists() {
            if servers_required() {
                panic!(
                    "{test} starts its own NATS server and {NATS_SERVER} is missing (RUSTSTREAM_REQUIRE_SERVERS=1): install nats-server"
                );
            }
            eprintln!("SKIPPED {test}: {NATS_SERVER} is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let store = std::env::temp_dir().join(format!("ruststream-nats-{}", run_id()));
        std::fs::create_dir_all(&store).expect("a temporary store directory");
        let server = Self {
            port,
            store,
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
            child: Mutex::new(None),
        };
        server.spawn().await;
        Some(server)
    }

    /// The URL to connect to (without the credentials; the test's config adds them).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&self) {
        let mut command = Command::new(NATS_SERVER);
        command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some((user, password)) = &self.auth {
            command.args(["--user", user, "--pass", password]);
        }
        let child = command.spawn().expect("nats-server starts");
        *self.child.lock().unwrap() = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the private nats-server did not listen on {address} within 5 s");
    }

    /// Kills the server with SIGKILL and waits until it is gone.
    pub async fn kill(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            child.start_kill().expect("SIGKILL the server");
            child.wait().await.expect("the killed server is reaped");
        }
    }

    /// SIGKILL, then start again on the same port and store: a crash.
    pub async fn restart(&self) {
        self.kill().await;
        self.spawn().await;
    }

    /// SIGTERM (the server writes its state and exits), then start again on the same
    /// port and store: a graceful restart.
    pub async fn restart_gracefully(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                child
                    .start_kill()
                    .expect("SIGKILL the server that did not stop");
                child.wait().await.expect("the killed server is reaped");
            }
        }
        self.spawn().await;
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
