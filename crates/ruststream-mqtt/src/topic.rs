//! MQTT topic names and topic filters: `/`-separated levels, `+` (one level) and `#` (any
//! number of levels, last only), shared subscriptions `$share/<group>/<filter>`, and the
//! rule that a filter starting with a wildcard never matches a topic starting with `$`.

use ruststream::matching::NameMatcher;

/// MQTT's topic rule as a [`NameMatcher`]: what the in-process mode routes by, and what the
/// live connection uses to hand each incoming publish to its subscriptions.
///
/// ```
/// use ruststream::matching::NameMatcher;
/// use ruststream_mqtt::MqttTopics;
///
/// assert!(MqttTopics.matches("sensors/+/temp", "sensors/kitchen/temp"));
/// assert!(MqttTopics.matches("sensors/#", "sensors"));
/// assert!(MqttTopics.matches("$share/workers/jobs/#", "jobs/1"));
/// assert!(!MqttTopics.matches("#", "$SYS/uptime"));
/// assert!(MqttTopics.validate_name("sensors/+").is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttTopics;

/// The longest topic or filter MQTT can encode (a two-byte length prefix).
const MAX_LEN: usize = 65_535;

/// A shared subscription `$share/<group>/<filter>` split into its group and filter; any
/// other filter is returned as is, with no group.
pub(crate) fn split_shared(filter: &str) -> (Option<&str>, &str) {
    if let Some(rest) = filter.strip_prefix("$share/")
        && let Some((group, inner)) = rest.split_once('/')
    {
        return (Some(group), inner);
    }
    (None, filter)
}

fn check_common(kind: &str, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!(
            "{kind} is empty: give one such as `sensors/kitchen/temp`"
        ));
    }
    if text.len() > MAX_LEN {
        return Err(format!(
            "{kind} is {} bytes long; MQTT allows at most {MAX_LEN}",
            text.len()
        ));
    }
    if text.contains('\0') {
        return Err(format!(
            "{kind} `{}` contains a NUL character, which MQTT forbids",
            text.escape_debug()
        ));
    }
    Ok(())
}

fn check_filter(filter: &str) -> Result<(), String> {
    check_common("topic filter", filter)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (index, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || index + 1 != levels.len()) {
            return Err(format!(
                "topic filter `{filter}`: `#` must be a whole level and the last one, as in `sensors/#`"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "topic filter `{filter}`: `+` must be a whole level, as in `sensors/+/temp`"
            ));
        }
    }
    Ok(())
}

impl MqttTopics {
    fn filter_matches(filter: &str, topic: &str) -> bool {
        // A filter starting with a wildcard does not match a topic starting with `$`
        // (MQTT 5 §4.7.2, 3.1.1 §4.7.2).
        if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
            return false;
        }
        let mut filter_levels = filter.split('/');
        let mut topic_levels = topic.split('/');
        loop {
            match (filter_levels.next(), topic_levels.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(t)) if f == t => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl NameMatcher for MqttTopics {
    fn validate_pattern(&self, pattern: &str) -> Result<(), String> {
        if let Some(rest) = pattern.strip_prefix("$share/") {
            let Some((group, inner)) = rest.split_once('/') else {
                return Err(format!(
                    "shared subscription `{pattern}` has no filter: write `$share/<group>/<filter>`"
                ));
            };
            if group.is_empty() || group.contains(['+', '#']) {
                return Err(format!(
                    "shared subscription `{pattern}`: the group name must be non-empty and hold no `+` or `#`"
                ));
            }
            return check_filter(inner);
        }
        check_filter(pattern)
    }

    fn validate_name(&self, name: &str) -> Result<(), String> {
        check_common("topic", name)?;
        if name.contains(['+', '#']) {
            return Err(format!(
                "topic `{name}` contains a wildcard: `+` and `#` are only allowed in subscriptions"
            ));
        }
        Ok(())
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        let (_, filter) = split_shared(pattern);
        Self::filter_matches(filter, name)
    }

    fn is_literal(&self, pattern: &str) -> bool {
        !pattern.starts_with("$share/") && !pattern.contains(['+', '#'])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plus_matches_exactly_one_level() {
        assert!(MqttTopics.matches("a/+/c", "a/b/c"));
        assert!(MqttTopics.matches("a/+/c", "a//c"));
        assert!(!MqttTopics.matches("a/+/c", "a/b/x/c"));
        assert!(!MqttTopics.matches("a/+", "a"));
        assert!(
            MqttTopics.matches("+", ""),
            "an empty topic level is a level"
        );
        assert!(MqttTopics.matches("+/+", "/finance"));
    }

    #[test]
    fn hash_matches_the_parent_and_every_descendant() {
        assert!(MqttTopics.matches("a/#", "a"));
        assert!(MqttTopics.matches("a/#", "a/b"));
        assert!(MqttTopics.matches("a/#", "a/b/c"));
        assert!(!MqttTopics.matches("a/#", "ab"));
        assert!(MqttTopics.matches("#", "anything/at/all"));
    }

    #[test]
    fn dollar_topics_need_an_explicit_first_level() {
        assert!(!MqttTopics.matches("#", "$SYS/x"));
        assert!(!MqttTopics.matches("+/x", "$SYS/x"));
        assert!(MqttTopics.matches("$SYS/#", "$SYS/x"));
        assert!(!MqttTopics.matches("$share/g/#", "$SYS/x"));
    }

    #[test]
    fn shared_subscriptions_match_by_their_inner_filter() {
        assert!(MqttTopics.matches("$share/g/a/+", "a/b"));
        assert!(!MqttTopics.matches("$share/g/a/+", "g/a/b"));
        assert!(!MqttTopics.is_literal("$share/g/a"));
        assert!(MqttTopics.validate_pattern("$share/g").is_err());
        assert!(MqttTopics.validate_pattern("$share//a").is_err());
    }

    #[test]
    fn invalid_filters_and_names_are_refused_with_the_fix() {
        assert!(MqttTopics.validate_pattern("a/#/b").is_err());
        assert!(MqttTopics.validate_pattern("a/b#").is_err());
        assert!(MqttTopics.validate_pattern("a/b+/c").is_err());
        assert!(MqttTopics.validate_pattern("").is_err());
        assert!(
            MqttTopics
                .validate_name("a/+")
                .unwrap_err()
                .contains("wildcard")
        );
        assert!(MqttTopics.validate_name("a/b").is_ok());
        assert!(MqttTopics.validate_pattern("+/a/#").is_ok());
    }

    /// An independent, recursive statement of the rule, to hold the matcher to.
    fn reference(filter: &[&str], topic: &[&str]) -> bool {
        match (filter.split_first(), topic.split_first()) {
            (Some((&"#", _)), _) => true,
            (Some((&"+", f)), Some((_, t))) => reference(f, t),
            (Some((f0, f)), Some((t0, t))) => f0 == t0 && reference(f, t),
            (None, None) => true,
            _ => false,
        }
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just(String::new()),
            Just("$x".to_owned())
        ]
    }

    proptest! {
        #[test]
        fn matcher_agrees_with_the_reference(
            topic in prop::collection::vec(level(), 1..5),
            filter in prop::collection::vec(prop_oneof![level(), Just("+".to_owned())], 1..5),
            hash in any::<bool>(),
        ) {
            let mut filter = filter;
            if hash { filter.push("#".to_owned()); }
            let filter_text = filter.join("/");
            let topic_text = topic.join("/");
            prop_assume!(!filter_text.is_empty() && !topic_text.is_empty());
            prop_assert!(MqttTopics.validate_pattern(&filter_text).is_ok());
            let f: Vec<&str> = filter.iter().map(String::as_str).collect();
            let t: Vec<&str> = topic.iter().map(String::as_str).collect();
            let dollar = topic_text.starts_with('$') && (f[0] == "+" || f[0] == "#");
            let expected = !dollar && reference(&f, &t);
            prop_assert_eq!(MqttTopics.matches(&filter_text, &topic_text), expected);
            let shared = format!("$share/g/{filter_text}");
            prop_assert_eq!(MqttTopics.matches(&shared, &topic_text), expected);
        }
    }
}
