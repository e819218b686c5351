//! Secrets that never show: [`Secret`], [`redact_url`] and [`Redactor`].
//!
//! A broker's config holds passwords, tokens and key seeds; its `Debug`, its errors, its
//! logs and its AsyncAPI description must hold none of them. [`Secret`] keeps one out of
//! `Debug` and `Display`; [`redact_url`] hides the credentials inside a URL; and a
//! [`Redactor`] strips every known secret from a text that came from elsewhere (a client
//! library's error message that echoes the URL it was given).

use std::fmt;

/// What every redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// A secret string: kept for the client library, shown as `<redacted>`.
///
/// ```
/// use ruststream::kit::Secret;
///
/// let password = Secret::new("s3cret");
/// assert_eq!(format!("{password:?} {password}"), "<redacted> <redacted>");
/// assert_eq!(password.expose(), "s3cret");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the client library that needs it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (an empty secret hides nothing).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Splits `url` into its scheme (if any), its user info (if any) and the rest.
///
/// The user info runs to the *last* `@`: a password written raw may contain `@`, `/`,
/// `?` or `:`, and a host never contains `@`. An `@` in a path or query without user
/// info is taken for user info too, which hides more than needed, never less.
fn split_user_info(url: &str) -> (Option<&str>, Option<&str>, &str) {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    match rest.rfind('@') {
        Some(at) => (scheme, Some(&rest[..at]), &rest[at + 1..]),
        None => (scheme, None, rest),
    }
}

/// The secret part of a URL's user info, if it has one: the password of
/// `scheme://user:password@host`, or the whole user info of `scheme://token@host` (a
/// lone user is how tokens travel in URLs).
///
/// ```
/// use ruststream::kit::url_secret;
///
/// assert_eq!(url_secret("nats://alice:p@ss/w?rd@host:4222"), Some("p@ss/w?rd"));
/// assert_eq!(url_secret("nats://t0ken@host:4222"), Some("t0ken"));
/// assert_eq!(url_secret("nats://host:4222"), None);
/// ```
pub fn url_secret(url: &str) -> Option<&str> {
    let (_, user_info, _) = split_user_info(url);
    let user_info = user_info?;
    let secret = match user_info.split_once(':') {
        Some((_, password)) => password,
        None => user_info,
    };
    (!secret.is_empty()).then_some(secret)
}

/// `url` with its user info (user and password) replaced by `<redacted>`; a URL
/// without user info comes back unchanged.
///
/// ```
/// use ruststream::kit::redact_url;
///
/// assert_eq!(redact_url("nats://u:p@ss@host:4222"), "nats://<redacted>@host:4222");
/// assert_eq!(redact_url("amqp://u:a/b?c@host/vhost"), "amqp://<redacted>@host/vhost");
/// assert_eq!(redact_url("host:4222"), "host:4222");
/// ```
pub fn redact_url(url: &str) -> String {
    match split_user_info(url) {
        (_, None, _) => url.to_owned(),
        (Some(scheme), Some(_), host) => format!("{scheme}://{REDACTED}@{host}"),
        (None, Some(_), host) => format!("{REDACTED}@{host}"),
    }
}

/// Strips a set of known secrets from any text: for error messages of client libraries,
/// which may echo a URL or a password they were given.
///
/// ```
/// use ruststream::kit::Redactor;
///
/// let redactor = Redactor::new()
///     .secret("t0ken")
///     .url("nats://alice:pa55@host:4222");
/// assert_eq!(
///     redactor.redact("auth failed for nats://alice:pa55@host:4222 with t0ken"),
///     "auth failed for nats://alice:<redacted>@host:4222 with <redacted>"
/// );
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor that knows no secret yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also strips `secret` (ignored when empty).
    #[must_use]
    pub fn secret(mut self, secret: impl AsRef<str>) -> Self {
        self.add(secret.as_ref());
        self
    }

    /// Also strips the secret inside `url` (see [`url_secret`]), if it has one.
    #[must_use]
    pub fn url(mut self, url: &str) -> Self {
        if let Some(secret) = url_secret(url) {
            self.add(secret);
        }
        self
    }

    /// Adds `secret` in place (ignored when empty or already known).
    pub fn add(&mut self, secret: &str) {
        if secret.is_empty() || self.secrets.iter().any(|known| known == secret) {
            return;
        }
        let at = self
            .secrets
            .partition_point(|known| known.len() >= secret.len());
        self.secrets.insert(at, secret.to_owned());
    }

    /// How many secrets it strips.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether it knows no secret.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Whether `text` contains any of the secrets.
    pub fn reveals(&self, text: &str) -> bool {
        self.secrets
            .iter()
            .any(|secret| text.contains(secret.as_str()))
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub fn redact(&self, text: impl fmt::Display) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        text
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_or_display() {
        let secret = Secret::from("pa55word");
        let shown = format!("{secret:?} {secret} {:?}", Some(&secret));
        assert!(!shown.contains("pa55word"), "{shown}");
        assert_eq!(secret.expose(), "pa55word");
        assert!(!secret.is_empty());
    }

    #[test]
    fn urls_are_redacted_up_to_the_last_at_sign() {
        assert_eq!(
            redact_url("nats://u:p@ss@host:4222"),
            "nats://<redacted>@host:4222"
        );
        assert_eq!(
            redact_url("redis://:pa/ss?w@host:6379/0"),
            "redis://<redacted>@host:6379/0"
        );
        assert_eq!(redact_url("t0ken@host:4222"), "<redacted>@host:4222");
        assert_eq!(redact_url("nats://host:4222"), "nats://host:4222");
    }

    #[test]
    fn the_secret_of_a_url_is_its_password_or_its_lone_user() {
        assert_eq!(url_secret("nats://u:p@ss@host"), Some("p@ss"));
        assert_eq!(url_secret("mqtt://u:a/b?c:d@host"), Some("a/b?c:d"));
        assert_eq!(url_secret("nats://t0ken@host"), Some("t0ken"));
        assert_eq!(url_secret("nats://u:@host"), None);
        assert_eq!(url_secret("nats://host"), None);
    }

    #[test]
    fn the_redactor_strips_every_secret_longest_first() {
        let redactor = Redactor::new()
            .secret("abc")
            .secret("abcdef")
            .secret("")
            .secret("abc")
            .url("nats://alice:pa55@host");
        assert_eq!(redactor.len(), 3);
        let text = redactor.redact("abcdef abc pa55 alice");
        assert_eq!(text, "<redacted> <redacted> <redacted> alice");
        assert!(redactor.reveals("xx pa55"));
        assert!(!redactor.reveals(&text));
        assert!(!format!("{redactor:?}").contains("pa55"));
    }

    #[test]
    fn an_empty_redactor_changes_nothing() {
        assert!(Redactor::new().is_empty());
        assert_eq!(Redactor::new().redact("plain"), "plain");
    }
}
