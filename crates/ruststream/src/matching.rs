//! Name matching: which subscriptions a published name reaches.
//!
//! Each broker has its own rule (NATS and the memory broker: `*` and `>` over
//! `.`-separated tokens; MQTT: `+` and `#` over `/`; AMQP topic exchanges: `*` and `#`).
//! The in-process routing of the memory broker and of every `TestClient` takes the rule as
//! a [`NameMatcher`], so each test client routes exactly like its broker.

/// A broker's rule for names and patterns.
pub trait NameMatcher: Send + Sync + 'static {
    /// Checks a subscription pattern; the error says what is wrong and how to fix it.
    fn validate_pattern(&self, pattern: &str) -> Result<(), String>;

    /// Checks a name used for publishing; the error says what is wrong and how to fix it.
    fn validate_name(&self, name: &str) -> Result<(), String>;

    /// Whether a (valid) published `name` matches a (valid) subscription `pattern`.
    fn matches(&self, pattern: &str, name: &str) -> bool;

    /// Whether a (valid) pattern has no wildcard, so it matches exactly the name equal to
    /// it. Routing compares such patterns with `==`. Defaults to `false` (always match
    /// through [`matches`](Self::matches)).
    fn is_literal(&self, pattern: &str) -> bool {
        let _ = pattern;
        false
    }
}

/// Dot-separated subjects with NATS wildcards: `*` matches exactly one token, `>` (last
/// token only) matches one or more tokens. Tokens are non-empty and contain no whitespace.
///
/// ```
/// use ruststream::matching::{DotSubjects, NameMatcher};
///
/// assert!(DotSubjects.matches("orders.*.created", "orders.eu.created"));
/// assert!(DotSubjects.matches("orders.>", "orders.eu.created"));
/// assert!(!DotSubjects.matches("orders.>", "orders"));
/// assert!(DotSubjects.validate_name("orders.*").is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DotSubjects;

impl DotSubjects {
    fn check_tokens(kind: &str, text: &str) -> Result<(), String> {
        if text.is_empty() {
            return Err(format!(
                "{kind} is empty: give a name such as `orders.created`"
            ));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(format!(
                "{kind} `{text}` contains whitespace, which subjects cannot hold"
            ));
        }
        if text.split('.').any(str::is_empty) {
            return Err(format!(
                "{kind} `{text}` has an empty token: tokens are separated by single dots, with none leading or trailing"
            ));
        }
        Ok(())
    }
}

impl DotSubjects {
    /// One pass over the bytes for the common case: printable ASCII tokens without
    /// wildcards, separated by single dots. Anything else takes the full check, which
    /// explains what is wrong.
    fn is_plain_subject(name: &str) -> bool {
        let mut token_empty = true;
        for &byte in name.as_bytes() {
            match byte {
                b'.' if token_empty => return false,
                b'.' => token_empty = true,
                b'*' | b'>' => return false,
                byte if byte <= b' ' || byte >= 0x7f => return false,
                _ => token_empty = false,
            }
        }
        !token_empty
    }
}

impl NameMatcher for DotSubjects {
    fn is_literal(&self, pattern: &str) -> bool {
        !pattern.bytes().any(|byte| byte == b'*' || byte == b'>')
    }

    fn validate_pattern(&self, pattern: &str) -> Result<(), String> {
        Self::check_tokens("subscription subject", pattern)?;
        let count = pattern.split('.').count();
        for (index, token) in pattern.split('.').enumerate() {
            let wild = token.contains(['*', '>']);
            if wild && token != "*" && token != ">" {
                return Err(format!(
                    "subscription subject `{pattern}` has token `{token}`: wildcards `*` and `>` must stand alone as a token"
                ));
            }
            if token == ">" && index + 1 != count {
                return Err(format!(
                    "subscription subject `{pattern}` has `>` before its last token: `>` matches the rest of a subject, so it must come last"
                ));
            }
        }
        Ok(())
    }

    fn validate_name(&self, name: &str) -> Result<(), String> {
        if Self::is_plain_subject(name) {
            return Ok(());
        }
        Self::check_tokens("subject", name)?;
        if name.contains(['*', '>']) {
            return Err(format!(
                "subject `{name}` is not valid for publish: wildcards are only allowed in subscriptions"
            ));
        }
        Ok(())
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.is_literal(pattern) {
            return pattern == name;
        }
        let mut names = name.split('.');
        for token in pattern.split('.') {
            match token {
                ">" => return names.next().is_some(),
                "*" => {
                    if names.next().is_none() {
                        return false;
                    }
                }
                literal => {
                    if names.next() != Some(literal) {
                        return false;
                    }
                }
            }
        }
        names.next().is_none()
    }
}

/// `a == b` for names, without a `memcmp` call for the lengths routing compares most on
/// every publish: names of 8 to 16 bytes are compared as two overlapping words.
#[cfg_attr(not(feature = "memory"), allow(dead_code))]
#[inline(always)]
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if !(8..=16).contains(&len) {
        return a == b;
    }
    let word = |bytes: &[u8], at: usize| {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(&bytes[at..at + 8]);
        u64::from_ne_bytes(chunk)
    };
    word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = String> {
        "[a-z0-9_-]{1,6}"
    }

    fn subject() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(token(), 1..6)
    }

    #[test]
    fn literal_and_wildcard_examples() {
        let m = DotSubjects;
        assert!(m.matches("a.b", "a.b"));
        assert!(!m.matches("a.b", "a.b.c"));
        assert!(!m.matches("a.b.c", "a.b"));
        assert!(m.matches("a.*", "a.b"));
        assert!(!m.matches("a.*", "a.b.c"));
        assert!(m.matches(">", "a"));
        assert!(m.matches("*.>", "a.b"));
        assert!(!m.matches("*.>", "a"));
    }

    #[test]
    fn invalid_patterns_and_names_explain_themselves() {
        let m = DotSubjects;
        assert!(m.validate_pattern("a.>.b").unwrap_err().contains("last"));
        assert!(
            m.validate_pattern("a.b*")
                .unwrap_err()
                .contains("stand alone")
        );
        assert!(
            m.validate_pattern("a..b")
                .unwrap_err()
                .contains("empty token")
        );
        assert!(m.validate_pattern("").unwrap_err().contains("empty"));
        assert!(
            m.validate_name("a.*")
                .unwrap_err()
                .contains("only allowed in subscriptions")
        );
        assert!(m.validate_name("a b").unwrap_err().contains("whitespace"));
        assert!(m.validate_name(".a").is_err());
    }

    proptest! {
        #[test]
        fn a_literal_pattern_matches_only_itself(a in subject(), b in subject()) {
            let (a, b) = (a.join("."), b.join("."));
            prop_assert!(DotSubjects.matches(&a, &a));
            prop_assert_eq!(DotSubjects.matches(&a, &b), a == b);
        }

        #[test]
        fn star_replaces_exactly_one_token(s in subject(), at in any::<prop::sample::Index>()) {
            let mut pattern = s.clone();
            let i = at.index(s.len());
            pattern[i] = "*".into();
            let pattern = pattern.join(".");
            prop_assert!(DotSubjects.validate_pattern(&pattern).is_ok());
            prop_assert!(DotSubjects.matches(&pattern, &s.join(".")));
            let mut longer = s.clone();
            longer.push("extra".into());
            prop_assert!(!DotSubjects.matches(&pattern, &longer.join(".")));
        }

        #[test]
        fn tail_matches_every_extension_but_not_the_prefix(prefix in subject(), tail in subject()) {
            let pattern = format!("{}.>", prefix.join("."));
            let name = format!("{}.{}", prefix.join("."), tail.join("."));
            prop_assert!(DotSubjects.matches(&pattern, &name));
            prop_assert!(!DotSubjects.matches(&pattern, &prefix.join(".")));
        }

        #[test]
        fn every_valid_name_is_a_valid_pattern(s in subject()) {
            let s = s.join(".");
            prop_assert!(DotSubjects.validate_name(&s).is_ok());
            prop_assert!(DotSubjects.validate_pattern(&s).is_ok());
        }

                #[test]
        fn the_fast_name_check_agrees_with_the_full_one(name in ".{0,24}") {
            let full = DotSubjects::check_tokens("subject", &name).is_ok() && !name.contains(['*', '>']);
            prop_assert_eq!(DotSubjects.validate_name(&name).is_ok(), full);
            if DotSubjects::is_plain_subject(&name) {
                prop_assert!(full);
            }
        }

        #[test]
        fn matching_never_panics(p in ".{0,30}", n in ".{0,30}") {
            let _ = DotSubjects.validate_pattern(&p);
            let _ = DotSubjects.validate_name(&n);
            let _ = DotSubjects.matches(&p, &n);
        }
    }

    #[test]
    fn same_name_agrees_with_equality_at_every_length() {
        let base = "abcdefghijklmnopqrstu";
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(same_name(a, a), "{a:?} equals itself");
            for at in 0..len {
                let mut b = a.as_bytes().to_vec();
                b[at] = b'X';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_name(a, &b), "{a:?} differs from {b:?} at {at}");
            }
            if len < base.len() {
                assert!(
                    !same_name(a, &base[..=len]),
                    "{a:?} is shorter than its extension"
                );
            }
        }
    }
}
