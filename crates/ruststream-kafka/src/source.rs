//! [`KafkaSource`]: the subscription descriptor (topics, consumer group, start
//! position, retry topic).

use ruststream::contract::SubscriptionSource;

use crate::broker::KafkaBroker;
use crate::error::KafkaError;
use crate::subscriber::KafkaSubscriber;

/// Where a group with no committed offset for a partition starts reading it
/// (`auto.offset.reset`). A group with a committed offset always resumes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartFrom {
    /// The partition's first retained message.
    Earliest,
    /// Messages published once the group's first `subscribe` returned (Kafka's and
    /// FastStream's default): the partition's end at that moment is committed for the
    /// group before its consumer joins.
    #[default]
    Latest,
}

/// A subscription: one or more topics read in a consumer group, offsets committed by
/// the crate as messages are settled.
///
/// ```
/// use ruststream_kafka::{KafkaSource, StartFrom};
///
/// let source = KafkaSource::new("orders")
///     .topic("orders-eu")
///     .group("billing")
///     .start_from(StartFrom::Earliest);
/// assert_eq!(source.topics(), ["orders", "orders-eu"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSource {
    pub(crate) topics: Vec<String>,
    pub(crate) group: Option<String>,
    pub(crate) start: StartFrom,
    pub(crate) retry_topic: Option<String>,
}

impl KafkaSource {
    /// A subscription to `topic`, in the config's group (`Config::group_id`) unless
    /// [`group`](Self::group) names one.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topics: vec![topic.into()],
            group: None,
            start: StartFrom::Latest,
            retry_topic: None,
        }
    }

    /// One more topic, read by the same consumer.
    #[must_use]
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// The consumer group (`group.id`): its members share the partitions, and it
    /// resumes from its committed offsets.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Where to start in a partition the group has no committed offset for
    /// (default [`StartFrom::Latest`]).
    #[must_use]
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// The topic retries go through (`nack(true)`, `nack_after`); default
    /// `<first topic>.<group>.retry`. The subscription reads it in its group too.
    #[must_use]
    pub fn retry_topic(mut self, topic: impl Into<String>) -> Self {
        self.retry_topic = Some(topic.into());
        self
    }

    /// The topics.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The group, if set on the descriptor.
    pub fn group_name(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The retry topic of this subscription in `group`.
    pub fn retry_topic_in(&self, group: &str) -> String {
        self.retry_topic.clone().unwrap_or_else(|| {
            format!(
                "{}.{group}.retry",
                self.topics.first().map_or("", String::as_str)
            )
        })
    }
}

/// Checks a topic name as Kafka does: 1 to 249 characters of `a-z A-Z 0-9 . _ -`,
/// neither `.` nor `..`.
pub(crate) fn check_topic(topic: &str) -> Result<(), KafkaError> {
    let reason = if topic.is_empty() {
        Some("it is empty")
    } else if topic.len() > 249 {
        Some("it is longer than 249 characters")
    } else if topic == "." || topic == ".." {
        Some("`.` and `..` are reserved")
    } else if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, `.`, `_` and `-` are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(KafkaError::Topic {
            topic: topic.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl SubscriptionSource<KafkaBroker> for KafkaSource {
    type Subscriber = KafkaSubscriber;

    fn name(&self) -> &str {
        self.topics.first().map_or("", String::as_str)
    }

    async fn subscribe(self, broker: &KafkaBroker) -> Result<KafkaSubscriber, KafkaError> {
        KafkaSubscriber::open(broker, self).await
    }

    fn with_prefix(mut self, prefix: &str) -> Result<Self, Self> {
        for topic in &mut self.topics {
            topic.insert_str(0, prefix);
        }
        Ok(self)
    }

    fn operation_bindings(&self) -> Option<serde_json::Value> {
        let group = self.group.as_ref()?;
        Some(serde_json::json!({
            "kafka": {
                "groupId": { "type": "string", "enum": [group] },
                "bindingVersion": "0.5.0"
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_checked_as_kafka_does() {
        assert!(check_topic("orders.created_v1-eu").is_ok());
        for bad in ["", ".", "..", "orders/created", "ordres*", &"x".repeat(250)] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_retry_topic_defaults_to_topic_group_retry() {
        assert_eq!(
            KafkaSource::new("orders").retry_topic_in("billing"),
            "orders.billing.retry"
        );
        assert_eq!(
            KafkaSource::new("orders")
                .retry_topic("r")
                .retry_topic_in("g"),
            "r"
        );
    }

    #[test]
    fn a_group_is_the_kafka_operation_binding() {
        let source = KafkaSource::new("orders").group("billing");
        let bindings = SubscriptionSource::<KafkaBroker>::operation_bindings(&source).unwrap();
        assert_eq!(bindings["kafka"]["groupId"]["enum"][0], "billing");
        assert_eq!(bindings["kafka"]["bindingVersion"], "0.5.0");
        let none = SubscriptionSource::<KafkaBroker>::operation_bindings(&KafkaSource::new("o"));
        assert!(none.is_none());
    }

    #[test]
    fn a_prefix_goes_before_every_topic() {
        let source = KafkaSource::new("a").topic("b").with_prefix("eu.").unwrap();
        assert_eq!(source.topics(), ["eu.a", "eu.b"]);
    }
}
