//! What the live-server tests share, on `ruststream::kit::live`: the shared Redis server,
//! fresh key prefixes per run, and the clean-up of every key a run created.
#![allow(dead_code, unreachable_pub)]

use ruststream::kit::live::{CleanUp, LiveServer, fresh_name};
use ruststream_redis::Config;

/// The shared test server (`RUSTSTREAM_REDIS_URL` overrides the URL).
pub const REDIS: LiveServer = LiveServer {
    name: "Redis",
    url_var: "RUSTSTREAM_REDIS_URL",
    default_url: "redis://127.0.0.1:6379",
    start_command: "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
};

/// The URL of the shared server, or `None` (skipped or failed, as `LiveServer::find` says).
pub async fn shared_server(test: &str) -> Option<String> {
    REDIS.find(test).await
}

/// A key prefix no other run uses: `rstest:<run>:<n>`.
pub fn fresh_prefix(what: &str) -> String {
    format!("rstest:{}", fresh_name(what))
}

/// Deletes every key holding `prefix` (lists, streams, and the `{..}` keys of their
/// in-flight lists, consumers and delayed sets), even when the test panics.
pub fn clean_up(url: &str, prefix: &str) -> CleanUp {
    let url = url.to_owned();
    let prefix = prefix.to_owned();
    CleanUp::new(move || async move { delete_keys(&url, &prefix).await })
}

pub async fn delete_keys(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        eprintln!("clean-up: cannot connect to {url}");
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let scanned: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("*{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await;
        let Ok((next, keys)) = scanned else { return };
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// The config the tests use.
pub fn config(url: &str) -> Config {
    Config::new(url)
        .connect_timeout(std::time::Duration::from_secs(3))
        .shutdown_timeout(std::time::Duration::from_secs(3))
}
