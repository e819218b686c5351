//! What the live-server tests share, on `ruststream::kit::live`: the shared RabbitMQ
//! server, and a private RabbitMQ node a test can kill and restart.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use parking_lot::Mutex;
use ruststream::kit::live::{LiveServer, fresh_name, missing};
use tokio::process::{Child, Command};

/// The shared test server (`RUSTSTREAM_RABBITMQ_URL` overrides the URL).
pub const RABBITMQ: LiveServer = LiveServer {
    name: "RabbitMQ",
    url_var: "RUSTSTREAM_RABBITMQ_URL",
    default_url: "amqp://guest:guest@127.0.0.1:5672/%2f",
    start_command: "rabbitmq-server -detached (or scripts/services rabbitmq)",
};

/// The URL of the shared server, or `None` (skipped or failed, as `LiveServer::find` says).
pub async fn shared_server(test: &str) -> Option<String> {
    RABBITMQ.find(test).await
}

/// The server script run directly (the packaged wrapper switches to the `rabbitmq` user).
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// How long a node may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The user and password of every private node.
pub const PRIVATE_USER: &str = "rstest";
pub const PRIVATE_PASSWORD: &str = "pr1vate-s3cret";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A RabbitMQ node of the test's own: its own node name, AMQP port, distribution port,
/// data and log directories, config (no plugins, a user of its own); its process group
/// is killed and its directory removed on drop. It never touches the shared server.
pub struct PrivateNode {
    node: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl PrivateNode {
    /// Starts one, or (no server installed) fails or skips as `missing` says.
    pub async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, |_| String::new()).await
    }

    /// Starts one whose config also holds the lines `extra(dir)` returns (given the
    /// node's directory, for files such as certificates written there first).
    pub async fn start_with(test: &str, extra: impl FnOnce(&Path) -> String) -> Option<Self> {
        if !Path::new(SERVER).exists() {
            missing(
                test,
                format_args!("it starts its own RabbitMQ node and {SERVER} is not installed"),
            );
            return None;
        }
        let name = fresh_name("rsnode");
        let dir = std::env::temp_dir().join(format!("ruststream-{name}"));
        std::fs::create_dir_all(dir.join("mnesia")).expect("a data directory");
        std::fs::create_dir_all(dir.join("log")).expect("a log directory");
        let port = free_port();
        let node = Self {
            node: format!("{name}@localhost"),
            port,
            dist_port: free_port(),
            dir,
            child: Mutex::new(None),
        };
        let extra = extra(&node.dir);
        std::fs::write(
            node.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{port}\ndefault_user = {PRIVATE_USER}\ndefault_pass = {PRIVATE_PASSWORD}\nloopback_users = none\n{extra}"
            ),
        )
        .expect("the node's config");
        std::fs::write(node.dir.join("enabled_plugins"), "[].\n").expect("no plugins");
        std::fs::write(node.dir.join("env.conf"), "").expect("an empty env file");
        node.spawn().await;
        Some(node)
    }

    /// `amqp://` URL without credentials (the test's config adds them).
    pub fn url(&self) -> String {
        format!("amqp://127.0.0.1:{}/%2f", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn spawn(&self) {
        let dir = &self.dir;
        let child = Command::new(SERVER)
            .current_dir(dir)
            .env("HOME", dir)
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("env.conf"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{SERVER} does not start: {error}"));
        *self.child.lock() = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the private RabbitMQ node {} did not listen on {address} within {START_TIMEOUT:?}; see {}",
            self.node,
            self.dir.join("log").display()
        );
    }

    fn signal_group(&self, signal: &str) -> Option<Child> {
        let child = self.child.lock().take()?;
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args([signal, "--", &format!("-{pid}")])
                .status();
        }
        Some(child)
    }

    /// SIGKILL to the whole node (script and Erlang VM), and waits until it is gone.
    pub async fn kill(&self) {
        if let Some(mut child) = self.signal_group("-KILL") {
            let _ = child.wait().await;
        }
        self.wait_closed().await;
    }

    /// SIGTERM (the node stops cleanly, writing its queues' state; SIGKILL after 60 s).
    pub async fn stop(&self) {
        if let Some(mut child) = self.signal_group("-TERM") {
            let pid = child.id();
            if tokio::time::timeout(Duration::from_secs(60), child.wait())
                .await
                .is_err()
                && let Some(pid) = pid
            {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
        }
        self.wait_closed().await;
    }

    /// Waits until nothing listens on the port (the VM may outlive the script a moment).
    async fn wait_closed(&self) {
        let address = format!("127.0.0.1:{}", self.port);
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(&address).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A crash and a start on the same port and data.
    pub async fn restart(&self) {
        self.kill().await;
        self.spawn().await;
    }

    /// A clean stop and a start on the same port and data.
    pub async fn restart_gracefully(&self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Starts it again after `kill` or `stop`.
    pub async fn start_again(&self) {
        self.spawn().await;
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        if let Some(child) = self.child.get_mut().take()
            && let Some(pid) = child.id()
        {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        if std::env::var_os("RUSTSTREAM_KEEP_NODE_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept the node's directory {}", self.dir.display());
        }
    }
}
