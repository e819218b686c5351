//! Live-server test support (feature `live-tests`), for a broker crate's own tests
//! against its real server: finding the server, skipping or failing when it is not
//! there, fresh names per run, clean-up that runs even when the test panics, and a
//! server process of the test's own.
//!
//! The rule for a missing server is the same for every broker: with
//! `RUSTSTREAM_REQUIRE_SERVERS=1` (CI sets it) the test panics naming the server and the
//! command that starts it; otherwise it prints `SKIPPED <test>: ...` and returns early,
//! so the workspace's tests pass on a machine without the server.
//!
//! ```no_run
//! use ruststream::kit::live::{LiveServer, fresh_name};
//!
//! const NATS: LiveServer = LiveServer {
//!     name: "NATS",
//!     url_var: "RUSTSTREAM_NATS_URL",
//!     default_url: "nats://127.0.0.1:4222",
//!     start_command: "nats-server -a 127.0.0.1 -p 4222 -js",
//! };
//!
//! #[tokio::test]
//! async fn round_trip() {
//!     let Some(url) = NATS.find("round_trip").await else { return };
//!     let subject = fresh_name("orders");
//!     // ... connect to `url`, use `subject`
//! }
//! # fn main() {}
//! ```

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::process::{Child, Command};

/// The environment variable that makes a missing server a failure instead of a skip.
pub const REQUIRE_SERVERS: &str = "RUSTSTREAM_REQUIRE_SERVERS";

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a clean-up may run when the guard is dropped.
const CLEAN_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the environment says a missing server is a failure
/// (`RUSTSTREAM_REQUIRE_SERVERS=1`).
pub fn servers_required() -> bool {
    std::env::var(REQUIRE_SERVERS).is_ok_and(|value| value == "1")
}

/// What a test does when what it needs is missing: panics with `what` when servers are
/// required, else prints `SKIPPED <test>: <what>` (the test then returns early).
pub fn missing(test: &str, what: impl fmt::Display) {
    if servers_required() {
        panic!("{test}: {what} ({REQUIRE_SERVERS}=1)");
    }
    eprintln!("SKIPPED {test}: {what} (set {REQUIRE_SERVERS}=1 to fail instead)");
}

/// A broker server shared by the tests, found by URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveServer {
    /// The server's name in messages (`"NATS"`).
    pub name: &'static str,
    /// The environment variable whose value, when set, replaces `default_url`.
    pub url_var: &'static str,
    /// Where the server is unless `url_var` says otherwise.
    pub default_url: &'static str,
    /// The command that starts it, shown when it is missing.
    pub start_command: &'static str,
}

impl LiveServer {
    /// The server's URL: the value of `url_var`, else `default_url`.
    pub fn url(&self) -> String {
        std::env::var(self.url_var).unwrap_or_else(|_| self.default_url.to_owned())
    }

    /// The URL if the server accepts a TCP connection within 2 s. When it does not:
    /// panics naming the server and its start command if servers are required, else
    /// prints that `test` is skipped and returns `None`.
    pub async fn find(&self, test: &str) -> Option<String> {
        let url = self.url();
        let address = address_of(&url);
        let reachable = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(address),
        )
        .await
        .is_ok_and(|connected| connected.is_ok());
        if reachable {
            return Some(url);
        }
        missing(
            test,
            format_args!(
                "{} is not reachable at {address} (set {} to use another server, or start it with `{}`)",
                self.name, self.url_var, self.start_command
            ),
        );
        None
    }
}

/// The `host:port` of a URL: no scheme, user info, path or further servers.
fn address_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split([',', '/', '?', '#']).next().unwrap_or(rest);
    rest.rfind('@').map_or(rest, |at| &rest[at + 1..])
}

/// A token no earlier run used: the process id and its start time, the same for the
/// whole process.
pub fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        format!("{}x{:x}", std::process::id(), nanos % (1u128 << 48))
    })
}

/// A name no earlier run and no other call used: `<prefix>_<run>_<n>`, ASCII letters,
/// digits and `_` after the prefix, so it suits subjects, topics, queues and stream
/// names alike.
pub fn fresh_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", run_id())
}

type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Runs an async clean-up (delete the test's stream, topic or queue) when dropped, so
/// it runs when the test panics too; [`run`](Self::run) runs it earlier, on the test's
/// own runtime.
///
/// On drop the clean-up runs on a thread and runtime of its own, bounded by 10 s: open a
/// new connection inside it rather than using one bound to the test's runtime.
///
/// ```no_run
/// use ruststream::kit::live::CleanUp;
///
/// # async fn delete_stream(_: &str) {}
/// # async fn test() {
/// let stream = "RSTEST_1".to_owned();
/// let _clean_up = CleanUp::new(move || async move { delete_stream(&stream).await });
/// // ... the test; the stream is deleted when `_clean_up` goes out of scope
/// # }
/// ```
pub struct CleanUp {
    job: Option<Job>,
}

impl CleanUp {
    /// A guard that runs `job()` to completion when dropped.
    pub fn new<F, Fut>(job: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            job: Some(Box::new(move || Box::pin(job()))),
        }
    }

    /// Runs the clean-up now, on the caller's runtime.
    pub async fn run(mut self) {
        if let Some(job) = self.job.take() {
            job().await;
        }
    }
}

impl Drop for CleanUp {
    fn drop(&mut self) {
        let Some(job) = self.job.take() else {
            return;
        };
        let ran = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            runtime.block_on(async move {
                if tokio::time::timeout(CLEAN_UP_TIMEOUT, job()).await.is_err() {
                    eprintln!("clean-up: did not finish within {CLEAN_UP_TIMEOUT:?}");
                }
            });
        })
        .join();
        if ran.is_err() {
            eprintln!("clean-up: panicked");
        }
    }
}

impl fmt::Debug for CleanUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CleanUp")
            .field("pending", &self.job.is_some())
            .finish()
    }
}

type Arguments = Box<dyn Fn(u16, &Path) -> Vec<OsString> + Send + Sync>;

/// A server process of the test's own: a free port on 127.0.0.1 and a temporary data
/// directory, both handed to the command line; killed, and its directory removed, on
/// drop. [`restart`](Self::restart) and [`restart_gracefully`](Self::restart_gracefully)
/// start it again on the same port and directory, for tests of a server crash.
///
/// ```no_run
/// use ruststream::kit::live::ServerProcess;
///
/// # async fn test() {
/// let Some(server) = ServerProcess::start("my_test", "/usr/sbin/nats-server", |port, dir| {
///     let mut args: Vec<std::ffi::OsString> =
///         ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"].map(Into::into).into();
///     args.push(dir.into());
///     args
/// })
/// .await
/// else {
///     return;
/// };
/// let url = format!("nats://{}", server.address());
/// server.restart().await; // SIGKILL, then start again
/// # }
/// ```
pub struct ServerProcess {
    program: PathBuf,
    arguments: Arguments,
    port: u16,
    data_dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl ServerProcess {
    /// Starts `program` with the arguments `arguments(port, data_dir)` returns, and
    /// waits until it accepts connections. When `program` is not installed: fails or
    /// skips as [`missing`] says, returning `None`.
    pub async fn start(
        test: &str,
        program: impl Into<PathBuf>,
        arguments: impl Fn(u16, &Path) -> Vec<OsString> + Send + Sync + 'static,
    ) -> Option<Self> {
        let program = program.into();
        if !program.exists() {
            missing(
                test,
                format_args!(
                    "it starts its own server and {} is not installed",
                    program.display()
                ),
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let data_dir = std::env::temp_dir().join(format!("ruststream-{}", fresh_name("server")));
        std::fs::create_dir_all(&data_dir).expect("a temporary data directory");
        let server = Self {
            program,
            arguments: Box::new(arguments),
            port,
            data_dir,
            child: Mutex::new(None),
        };
        server.spawn().await;
        Some(server)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its data directory (removed on drop).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    async fn spawn(&self) {
        let child = Command::new(&self.program)
            .args((self.arguments)(self.port, &self.data_dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{} does not start: {error}", self.program.display()));
        *self.child.lock() = Some(child);
        let address = self.address();
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{} did not listen on {address} within {START_TIMEOUT:?}",
            self.program.display()
        );
    }

    /// Kills the server with SIGKILL and waits until it is gone.
    pub async fn kill(&self) {
        let child = self.child.lock().take();
        if let Some(mut child) = child {
            child.start_kill().expect("SIGKILL the server");
            child.wait().await.expect("the killed server is reaped");
        }
    }

    /// SIGKILL, then start again on the same port and data directory: a crash.
    pub async fn restart(&self) {
        self.kill().await;
        self.spawn().await;
    }

    /// SIGTERM (the server writes its state and exits; SIGKILL after 10 s), then start
    /// again on the same port and data directory: a graceful restart.
    pub async fn restart_gracefully(&self) {
        let child = self.child.lock().take();
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

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().take() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl fmt::Debug for ServerProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerProcess")
            .field("program", &self.program)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn the_address_of_a_url_is_its_host_and_port() {
        assert_eq!(address_of("nats://127.0.0.1:4222"), "127.0.0.1:4222");
        assert_eq!(address_of("redis://u:p@ss@host:6379/0"), "host:6379");
        assert_eq!(address_of("a:1,b:2"), "a:1");
        assert_eq!(address_of("host:9092"), "host:9092");
    }

    #[test]
    fn fresh_names_differ_and_share_the_run() {
        let (a, b) = (fresh_name("orders"), fresh_name("orders"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("orders_{}_", run_id())), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_skipped_with_none() {
        if servers_required() {
            return; // it would panic, as it should
        }
        let nowhere = LiveServer {
            name: "Nothing",
            url_var: "RUSTSTREAM_KIT_TEST_NO_SUCH_VAR",
            default_url: "x://127.0.0.1:1",
            start_command: "true",
        };
        assert_eq!(nowhere.find("kit").await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clean_up_runs_when_dropped_and_when_run() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&dropped);
        drop(CleanUp::new(move || async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            flag.store(true, Ordering::SeqCst);
        }));
        assert!(dropped.load(Ordering::SeqCst));

        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        CleanUp::new(move || async move { flag.store(true, Ordering::SeqCst) })
            .run()
            .await;
        assert!(ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_missing_program_is_skipped_with_none() {
        if servers_required() {
            return;
        }
        let started = ServerProcess::start("kit", "/nonexistent/server", |_, _| Vec::new()).await;
        assert!(started.is_none());
    }
}
