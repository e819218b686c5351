//! [`MemorySource`]: the memory broker's subscription descriptor.

use super::{MemoryBroker, MemoryError, MemorySubscriber};
use crate::SubscriptionSource;

/// What to subscribe to on a [`MemoryBroker`]: a subject pattern, alone or in a consumer
/// group.
///
/// ```
/// use ruststream::memory::MemorySource;
/// let source = MemorySource::new("orders.>").group("billing");
/// assert_eq!(source.group_name(), Some("billing"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySource {
    pattern: String,
    group: Option<String>,
}

impl MemorySource {
    /// A fan-out subscription to `pattern` (`*` and `>` wildcards allowed).
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            group: None,
        }
    }

    /// Joins the consumer group `group`: members share the messages, one each, and the
    /// group keeps unsettled and new messages while no member is subscribed.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The same source under a router's prefix (`"eu."` + `"orders.*"`); the group is
    /// kept as it is.
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.pattern.insert_str(0, prefix);
        self
    }

    /// The subject pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The consumer group, if any.
    pub fn group_name(&self) -> Option<&str> {
        self.group.as_deref()
    }
}

impl SubscriptionSource<MemoryBroker> for MemorySource {
    type Subscriber = MemorySubscriber;

    fn name(&self) -> &str {
        &self.pattern
    }

    async fn subscribe(self, broker: &MemoryBroker) -> Result<MemorySubscriber, MemoryError> {
        broker.open(&self.pattern, self.group.as_deref())
    }

    fn with_prefix(self, prefix: &str) -> Result<Self, Self> {
        Ok(self.prefixed(prefix))
    }
}
