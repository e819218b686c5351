//! The subscription descriptor: `MqttSource::new(filter)` and its options.

use ruststream::SubscriptionSource;
use ruststream::matching::NameMatcher;

use crate::broker::MqttBroker;
use crate::error::MqttError;
use crate::subscriber::MqttSubscriber;
use crate::topic::{MqttTopics, split_shared};

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Qos {
    /// QoS 0: at most once, never acknowledged.
    AtMostOnce,
    /// QoS 1: at least once (PUBACK). The default.
    #[default]
    AtLeastOnce,
    /// QoS 2: exactly once between client and server (PUBREC, PUBREL, PUBCOMP).
    ExactlyOnce,
}

impl Qos {
    /// The level as a number (0, 1 or 2).
    pub fn level(self) -> u8 {
        match self {
            Self::AtMostOnce => 0,
            Self::AtLeastOnce => 1,
            Self::ExactlyOnce => 2,
        }
    }

    /// The level from a number, `None` above 2.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// MQTT 5 retain handling: whether the server sends retained messages when subscribing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum RetainHandling {
    /// Send retained messages at every subscribe (MQTT's default).
    #[default]
    SendAtSubscribe,
    /// Send them only if the subscription did not exist yet.
    SendAtNewSubscribe,
    /// Never send retained messages at subscribe.
    DoNotSend,
}

/// A subscription to an MQTT topic filter.
///
/// ```
/// use ruststream_mqtt::{MqttSource, Qos, RetainHandling};
///
/// let source = MqttSource::new("sensors/+/temp")
///     .qos(Qos::ExactlyOnce)
///     .shared("thermostats")
///     .no_local()
///     .retain_handling(RetainHandling::DoNotSend);
/// assert_eq!(source.subscribed_filter(), "$share/thermostats/sensors/+/temp");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSource {
    filter: String,
    group: Option<String>,
    qos: Qos,
    no_local: bool,
    retain_handling: RetainHandling,
    /// `$share/<group>/<filter>`, or the filter itself.
    subscribed: String,
}

impl MqttSource {
    /// A subscription to `filter` (`+` and `#` wildcards; `$share/<group>/<filter>` is
    /// understood too) at QoS 1.
    pub fn new(filter: impl Into<String>) -> Self {
        let filter = filter.into();
        let (group, inner) = split_shared(&filter);
        let (group, inner) = (group.map(str::to_owned), inner.to_owned());
        let mut source = Self {
            filter: inner,
            group,
            qos: Qos::AtLeastOnce,
            no_local: false,
            retain_handling: RetainHandling::SendAtSubscribe,
            subscribed: String::new(),
        };
        source.rebuild();
        source
    }

    fn rebuild(&mut self) {
        self.subscribed = match &self.group {
            Some(group) => format!("$share/{group}/{}", self.filter),
            None => self.filter.clone(),
        };
    }

    /// The maximum QoS of delivery. Default QoS 1.
    #[must_use]
    pub fn qos(mut self, qos: Qos) -> Self {
        self.qos = qos;
        self
    }

    /// A shared subscription in `group`: the group's members share the messages, each to
    /// one of them (competing consumers).
    #[must_use]
    pub fn shared(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self.rebuild();
        self
    }

    /// MQTT 5: do not deliver this connection's own publishes.
    #[must_use]
    pub fn no_local(mut self) -> Self {
        self.no_local = true;
        self
    }

    /// MQTT 5: whether retained messages are sent at subscribe.
    #[must_use]
    pub fn retain_handling(mut self, retain_handling: RetainHandling) -> Self {
        self.retain_handling = retain_handling;
        self
    }

    /// The filter as subscribed (with `$share/<group>/` for a shared subscription).
    pub fn subscribed_filter(&self) -> &str {
        &self.subscribed
    }

    /// The topic filter without a shared-subscription prefix.
    pub fn topic_filter(&self) -> &str {
        &self.filter
    }

    /// The shared-subscription group, if any.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The QoS asked for.
    pub fn max_qos(&self) -> Qos {
        self.qos
    }

    pub(crate) fn is_no_local(&self) -> bool {
        self.no_local
    }

    pub(crate) fn retain(&self) -> RetainHandling {
        self.retain_handling
    }

    pub(crate) fn validate(&self) -> Result<(), MqttError> {
        MqttTopics
            .validate_pattern(&self.subscribed)
            .map_err(MqttError::Topic)
    }
}

impl SubscriptionSource<MqttBroker> for MqttSource {
    type Subscriber = MqttSubscriber;

    fn name(&self) -> &str {
        &self.subscribed
    }

    async fn subscribe(self, broker: &MqttBroker) -> Result<MqttSubscriber, MqttError> {
        broker.open(self).await
    }

    /// A router's prefix goes before the topic filter, as a level: `billing` and
    /// `invoices/+` give `billing/invoices/+` (inside any `$share/<group>/`).
    fn with_prefix(mut self, prefix: &str) -> Result<Self, Self> {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return Ok(self);
        }
        self.filter = format!("{prefix}/{}", self.filter);
        self.rebuild();
        Ok(self)
    }

    fn operation_bindings(&self) -> Option<serde_json::Value> {
        Some(crate::asyncapi::operation_bindings(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_filter_is_split_into_group_and_filter() {
        let source = MqttSource::new("$share/workers/jobs/+");
        assert_eq!(source.group(), Some("workers"));
        assert_eq!(source.topic_filter(), "jobs/+");
        assert_eq!(source.subscribed_filter(), "$share/workers/jobs/+");
    }

    #[test]
    fn a_prefix_goes_before_the_filter_inside_the_share() {
        let source = MqttSource::new("invoices/+").shared("billing");
        let prefixed = SubscriptionSource::<MqttBroker>::with_prefix(source, "eu/").unwrap();
        assert_eq!(prefixed.subscribed_filter(), "$share/billing/eu/invoices/+");
        assert_eq!(
            SubscriptionSource::<MqttBroker>::name(&prefixed),
            "$share/billing/eu/invoices/+"
        );
    }

    #[test]
    fn operation_bindings_give_the_qos() {
        let source = MqttSource::new("a").qos(Qos::ExactlyOnce);
        let bindings = SubscriptionSource::<MqttBroker>::operation_bindings(&source).unwrap();
        assert_eq!(bindings["mqtt"]["qos"], 2);
    }
}
