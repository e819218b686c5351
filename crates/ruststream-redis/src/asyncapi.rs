//! AsyncAPI: the server description and the bindings of a source.

use ruststream::kit::redact_url;
use ruststream::{DescribeServer, ServerSpec};

use crate::source::Kind;
use crate::{RedisBroker, RedisSource};

impl DescribeServer for RedisBroker {
    /// The first server of the URL, without credentials; protocol `redis` (`rediss` with
    /// TLS) and the database as the path.
    fn describe_server(&self) -> ServerSpec {
        #[cfg(feature = "testing")]
        if let Some(client) = self.test_client() {
            return client.describe_server();
        }
        let url = redact_url(self.config().url());
        let protocol = if url.starts_with("rediss://") {
            "rediss"
        } else {
            "redis"
        };
        ServerSpec::from_url(Some(protocol), &url).with_description("Redis")
    }
}

/// The operation bindings of `source`: Redis has no official operation binding, so its
/// kind and options go in an `x-redis` extension.
pub(crate) fn operation_bindings(source: &RedisSource) -> Option<serde_json::Value> {
    let kind = match source.kind {
        Kind::Channel => "channel",
        Kind::Pattern => "pattern",
        Kind::List => "list",
        Kind::Stream => "stream",
    };
    let mut binding = serde_json::json!({ "kind": kind });
    if let Some(group) = &source.group {
        binding["group"] = group.clone().into();
    }
    if let Some(max) = source.max_deliver {
        binding["maxDeliver"] = max.into();
    }
    Some(serde_json::json!({ "x-redis": binding }))
}
