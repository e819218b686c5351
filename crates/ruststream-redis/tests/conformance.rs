//! The conformance harness against the Redis server at 127.0.0.1:6379, once per
//! subscription kind: Pub/Sub channels, Pub/Sub patterns, lists and streams with consumer
//! groups. Each run uses keys under a prefix of its own and deletes them afterwards.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ruststream::conformance::{Capabilities, ConformanceTarget, Mode, Report, Suite};
use ruststream::kit::live::ServerProcess;
use ruststream_redis::{Config, RedisBroker, RedisGlob, RedisPublisher, RedisSource};

/// How long a pending stream entry, or a list consumer's silence, lasts before another
/// consumer takes it over: shorter than the receive timeout, so an unsettled message
/// comes back within it.
const TAKE_OVER: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Channel,
    Pattern,
    List,
    Stream,
    /// A stream read without a group (`XREAD`): every reader gets every entry.
    StreamNoGroup,
}

struct Target {
    url: String,
    prefix: String,
    kind: Kind,
    /// A private server this test can restart, and its password.
    private: Option<(Arc<ServerProcess>, String)>,
    /// The nodes of a Redis Cluster; empty for one server.
    cluster: Vec<String>,
}

impl ConformanceTarget for Target {
    type Broker = RedisBroker;
    type Source = RedisSource;
    type Publisher = RedisPublisher;

    fn capabilities(&self) -> Capabilities {
        let base = Capabilities {
            ordering: true,
            header_order: true,
            duplicate_headers: true,
            max_payload: 1_000_000,
            shutdown_timeout: Duration::from_secs(5),
            check_timeout: Duration::from_secs(60),
            // Only on a private server with an append-only file synced on every write.
            server_restart: self.private.is_some()
                && matches!(self.kind, Kind::List | Kind::Stream),
            ..Capabilities::baseline()
        };
        match self.kind {
            // Pub/Sub, and a stream read without a group: every subscriber gets every
            // message; no groups, nothing settled.
            Kind::Channel | Kind::Pattern | Kind::StreamNoGroup => Capabilities {
                fan_out: true,
                competing_consumers: false,
                durable: false,
                receive_timeout: Duration::from_secs(5),
                quiet_period: Duration::from_millis(300),
                ..base
            },
            // A list is one queue: its consumers compete, and it outlives them.
            Kind::List => Capabilities {
                fan_out: false,
                competing_consumers: true,
                durable: true,
                receive_timeout: Duration::from_secs(8),
                quiet_period: Duration::from_millis(500),
                nack_delay: Duration::from_secs(1),
                ..base
            },
            // A group per fan-out subscriber; members of one group compete.
            Kind::Stream => Capabilities {
                fan_out: true,
                competing_consumers: true,
                durable: true,
                receive_timeout: Duration::from_secs(8),
                quiet_period: Duration::from_millis(500),
                nack_delay: Duration::from_secs(1),
                ..base
            },
        }
    }

    async fn broker(&self) -> RedisBroker {
        if !self.cluster.is_empty() {
            return RedisBroker::new(
                Config::cluster(self.cluster.clone())
                    .connect_timeout(Duration::from_secs(3))
                    .shutdown_timeout(Duration::from_secs(3)),
            );
        }
        let config = support::config(&self.url);
        RedisBroker::new(match &self.private {
            Some((_, password)) => config.password(password.as_str()),
            None => config,
        })
    }

    fn source(&self, name: &str, mode: Mode) -> RedisSource {
        match (self.kind, mode) {
            (Kind::Channel, _) => RedisSource::channel(name),
            (Kind::Pattern, _) => RedisSource::pattern(RedisGlob::escape(name)),
            (Kind::List, _) => RedisSource::list(name)
                .visibility_timeout(TAKE_OVER)
                .block(Duration::from_millis(200)),
            (Kind::StreamNoGroup, _) => RedisSource::stream(name).block(Duration::from_millis(200)),
            (Kind::Stream, mode) => {
                let group = match mode {
                    Mode::Group(group) => group.to_owned(),
                    Mode::FanOut => format!("fanout-{:x}", fastrand::u64(..)),
                };
                RedisSource::stream(name)
                    .group(group)
                    .claim_idle(TAKE_OVER)
                    .block(Duration::from_millis(200))
                    .count(32)
            }
        }
    }

    fn publisher(&self, broker: &RedisBroker) -> RedisPublisher {
        match self.kind {
            Kind::Channel | Kind::Pattern => broker.channels(),
            Kind::List => broker.lists(),
            Kind::Stream | Kind::StreamNoGroup => broker.streams(),
        }
    }

    fn fresh_name(&self, check: &str) -> String {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}:{check}:{n}", self.prefix)
    }

    async fn restart_server(&self) -> Result<bool, String> {
        match &self.private {
            Some((server, _)) => {
                // SIGKILL: with `appendfsync always` every write Redis answered is on disk.
                server.restart().await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn credentials(&self) -> Vec<String> {
        self.private
            .iter()
            .map(|(_, password)| password.clone())
            .collect()
    }
}

fn assert_passed(report: &Report) {
    eprintln!("{report}");
    let (passed, failed, skipped) = report.counts();
    assert_eq!(
        failed, 0,
        "{failed} check(s) failed ({passed} passed, {skipped} skipped):\n{report}"
    );
}

async fn run(test: &str, kind: Kind) {
    let Some(url) = support::shared_server(test).await else {
        return;
    };
    let prefix = support::fresh_prefix(&format!("{kind:?}").to_lowercase());
    let clean_up = support::clean_up(&url, &prefix);
    let suite = Suite::new(Target {
        url,
        prefix,
        kind,
        private: None,
        cluster: Vec::new(),
    })
    .with_batches()
    .with_transactions()
    .with_request_reply()
    .with_describe_server();
    let report = suite.run_report().await;
    clean_up.run().await;
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_channels_pass_every_declared_suite() {
    run("pubsub_channels_pass_every_declared_suite", Kind::Channel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_patterns_pass_every_declared_suite() {
    run("pubsub_patterns_pass_every_declared_suite", Kind::Pattern).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_pass_every_declared_suite() {
    run("lists_pass_every_declared_suite", Kind::List).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_without_groups_pass_every_declared_suite() {
    run(
        "streams_without_groups_pass_every_declared_suite",
        Kind::StreamNoGroup,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_with_groups_pass_every_declared_suite() {
    run(
        "streams_with_groups_pass_every_declared_suite",
        Kind::Stream,
    )
    .await;
}

/// A `redis-server` of the test's own, with a password and an append-only file synced on
/// every write: a SIGKILL of the server during the checks loses no acknowledged publish,
/// and no description or error shows the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_nothing_on_lists_and_streams() {
    let test = "a_killed_and_restarted_server_loses_nothing_on_lists_and_streams";
    const PASSWORD: &str = "pr1vate-pa55";
    let Some(server) = ServerProcess::start(test, "/usr/bin/redis-server", |port, dir| {
        [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            PASSWORD,
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--dir",
        ]
        .map(Into::into)
        .into_iter()
        .chain([dir.as_os_str().to_owned()])
        .collect()
    })
    .await
    else {
        return;
    };
    let server = Arc::new(server);
    let url = format!("redis://{}", server.address());
    for kind in [Kind::List, Kind::Stream] {
        let report = Suite::new(Target {
            url: url.clone(),
            prefix: support::fresh_prefix("restart"),
            kind,
            private: Some((Arc::clone(&server), PASSWORD.to_owned())),
            cluster: Vec::new(),
        })
        .with_describe_server()
        .only("server_restart,no_credentials,publish_after_shutdown,ack_consumes")
        .run_report()
        .await;
        assert_passed(&report);
        assert!(
            report
                .to_string()
                .contains("PASS server_restart_loses_nothing"),
            "{kind:?}: {report}"
        );
    }
}

/// Starts a Redis Cluster of three masters on loopback ports (private `redis-server`
/// processes, stopped when the returned processes are dropped), or `None` when
/// `redis-server` is missing (skipped or failed, as `ServerProcess::start` says).
async fn three_master_cluster(test: &str) -> Option<Vec<ServerProcess>> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let node = ServerProcess::start(test, "/usr/bin/redis-server", |port, dir| {
            let config_file = dir.join("nodes.conf");
            let mut args: Vec<std::ffi::OsString> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "5000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-config-file",
            ]
            .map(Into::into)
            .into();
            args.push(config_file.into_os_string());
            args.push("--dir".into());
            args.push(dir.as_os_str().to_owned());
            args
        })
        .await?;
        nodes.push(node);
    }
    let addresses: Vec<String> = nodes.iter().map(ServerProcess::address).collect();
    let created = tokio::process::Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .await
        .expect("redis-cli runs");
    assert!(
        created.status.success(),
        "redis-cli --cluster create failed: {}{}",
        String::from_utf8_lossy(&created.stdout),
        String::from_utf8_lossy(&created.stderr)
    );
    // Every node must see every slot covered before the checks start.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for node in &nodes {
        loop {
            let info = tokio::process::Command::new("redis-cli")
                .args(["-p", &node.port().to_string(), "cluster", "info"])
                .output()
                .await
                .expect("redis-cli runs");
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cluster did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Some(nodes)
}

/// Streams with consumer groups, and lists, on a three-master Redis Cluster through
/// redis-rs's cluster client: every check uses names of its own, so they spread over the
/// slots of all three masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_lists_work_across_the_slots_of_a_three_master_cluster() {
    let test = "streams_and_lists_work_across_the_slots_of_a_three_master_cluster";
    let Some(nodes) = three_master_cluster(test).await else {
        return;
    };
    let urls: Vec<String> = nodes
        .iter()
        .map(|node| format!("redis://{}", node.address()))
        .collect();
    for kind in [Kind::Stream, Kind::List, Kind::Channel] {
        let report = Suite::new(Target {
            url: urls[0].clone(),
            prefix: support::fresh_prefix("cluster"),
            kind,
            private: None,
            cluster: urls.clone(),
        })
        .with_batches()
        .with_transactions()
        .with_request_reply()
        .with_describe_server()
        .run_report()
        .await;
        assert_passed(&report);
    }
}
