//! In process (feature `testing`): [`KafkaBroker::in_process`] routes subscriptions and
//! publishes through a `ruststream::testing::TestClient` with Kafka's topic names, and
//! gives each message the partition Kafka's default partitioner gives its key.

use ruststream::matching::NameMatcher;
use ruststream::testing::{Quiescence, TestBroker, TestClient};

use crate::broker::KafkaBroker;
use crate::config::Config;
use crate::source::check_topic;

/// Kafka topic names: no wildcards, a subscription matches the topic of its name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaTopics;

impl NameMatcher for KafkaTopics {
    fn validate_pattern(&self, pattern: &str) -> Result<(), String> {
        check_topic(pattern).map_err(|error| error.to_string())
    }

    fn validate_name(&self, name: &str) -> Result<(), String> {
        check_topic(name).map_err(|error| error.to_string())
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        pattern == name
    }

    fn is_literal(&self, _pattern: &str) -> bool {
        true
    }
}

impl KafkaBroker {
    /// A broker that runs in process, for tests: no cluster, core routing by topic name
    /// (consumer groups share, every group gets every message), settlement recorded and
    /// not performed (a retry does not redeliver), partitions computed from the key as
    /// Kafka's default partitioner does over `Config::create_topics` partitions.
    /// `config` supplies the group of by-name subscriptions and what AsyncAPI shows.
    pub fn in_process(config: Config) -> Self {
        let client = TestClient::new(KafkaTopics);
        let broker = Self::new(config);
        let described = ruststream::contract::DescribeServer::describe_server(&broker);
        Self::with_test_client(broker, client.with_server(described))
    }

    /// Whether this broker runs in process.
    pub fn is_in_process(&self) -> bool {
        self.test_client().is_some()
    }
}

impl TestBroker for KafkaBroker {
    fn quiescence(&self) -> Quiescence {
        match self.test_client() {
            Some(client) => Quiescence::Backlog(client.backlog()),
            None => Quiescence::MessageIds,
        }
    }
}

/// The partition Kafka's default partitioner (murmur2, as the Java client, aiokafka and
/// this crate's producer use) gives `key` among `partitions`; keyless records: 0.
pub(crate) fn partition_for(key: Option<&[u8]>, partitions: i32) -> i32 {
    match key {
        Some(key) if partitions > 1 => {
            #[allow(clippy::cast_possible_wrap)]
            let positive = (murmur2(key) & 0x7fff_ffff) as i32;
            positive % partitions
        }
        _ => 0,
    }
}

/// Kafka's murmur2 (seed `0x9747b28c`).
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    #[allow(clippy::cast_possible_truncation)]
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas() {
        // Values of Kafka's own `Utils.murmur2` tests.
        #[allow(clippy::cast_possible_wrap)]
        let signed = |data: &[u8]| murmur2(data) as i32;
        assert_eq!(signed(b"21"), -973_932_308);
        assert_eq!(signed(b"foobar"), -790_332_482);
        assert_eq!(signed(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(signed(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            signed(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(signed(b"abc"), 479_470_107);
    }

    #[test]
    fn keys_map_to_partitions_and_keyless_records_to_the_first() {
        assert_eq!(partition_for(None, 6), 0);
        assert_eq!(partition_for(Some(b"any"), 1), 0);
        let partition = partition_for(Some(b"customer-7"), 6);
        assert!((0..6).contains(&partition));
        assert_eq!(partition_for(Some(b"customer-7"), 6), partition, "stable");
    }
}
