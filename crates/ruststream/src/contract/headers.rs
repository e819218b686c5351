//! Message headers: ordered, multi-valued and binary-safe.
//!
//! Names are strings compared exactly (case-sensitive); values are bytes. Insertion order
//! is kept, and one name may carry several values. Names the framework itself writes are
//! lower-case and listed as constants here.
//!
//! # Mapping onto each broker
//!
//! Each broker crate maps [`Headers`] onto its native headers and documents the limits of
//! its protocol. A value the protocol cannot carry is refused at publish with an error
//! naming the header, never altered silently.
//!
//! | broker | native form | limits |
//! |---|---|---|
//! | memory | kept as is | none |
//! | NATS | message headers (`HPUB`) | names without `:` or whitespace; values without CR/LF |
//! | Kafka | record headers | none: string keys, byte values, order and duplicates kept |
//! | RabbitMQ | AMQP `headers` table, values as byte arrays | duplicate names collapse, last wins |
//! | MQTT 5 | user properties | names and values must be UTF-8 |
//! | MQTT 3.1.1 | none: the broker crate wraps payload and headers in an envelope | - |
//! | Redis Streams | entry fields beside the payload field | none |
//! | Redis Pub/Sub and lists | none: an envelope, as for MQTT 3.1.1 | - |

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

/// The header carrying the codec's content type (`application/json`...).
pub const CONTENT_TYPE: &str = "content-type";
/// The header carrying a correlation id from a request to its reply.
pub const CORRELATION_ID: &str = "correlation-id";
/// The header carrying a publisher-chosen message id (used for de-duplication and traces).
pub const MESSAGE_ID: &str = "message-id";

/// Ordered, multi-valued, binary-safe message headers.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Headers {
    entries: Vec<(Cow<'static, str>, Bytes)>,
}

impl Headers {
    /// No headers. Does not allocate.
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// No headers, with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// The number of entries (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `name` to `value`, replacing every earlier value of `name`.
    ///
    /// The entry keeps the position of the first replaced one, or goes last if new.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        match self.entries.iter().position(|(n, _)| *n == name) {
            Some(first) => {
                self.entries[first].1 = value;
                let mut index = 0;
                self.entries.retain(|(n, _)| {
                    let keep = index <= first || *n != name;
                    index += 1;
                    keep
                });
            }
            None => self.entries.push((name, value)),
        }
    }

    /// Adds a value for `name` after the existing ones.
    pub fn append(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Bytes>) {
        self.entries.push((name.into(), value.into()));
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The first value of `name`, if it is valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in insertion order.
    pub fn get_all<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Whether `name` has at least one value.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// Removes every value of `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| n != name);
        before - self.entries.len()
    }

    /// Removes every entry, keeping the allocated room for reuse.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Every entry, in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// Every entry with its value as shared [`Bytes`] (cheap to clone), in insertion order.
    pub fn iter_bytes(&self) -> impl ExactSizeIterator<Item = (&str, &Bytes)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_ref(), v))
    }

    /// The total size of names and values in bytes, for size limits.
    pub fn encoded_len(&self) -> usize {
        self.entries.iter().map(|(n, v)| n.len() + v.len()).sum()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl<N, V> FromIterator<(N, V)> for Headers
where
    N: Into<Cow<'static, str>>,
    V: Into<Bytes>,
{
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        headers.extend(iter);
        headers
    }
}

impl<N, V> Extend<(N, V)> for Headers
where
    N: Into<Cow<'static, str>>,
    V: Into<Bytes>,
{
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        for (name, value) in iter {
            self.append(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_insertion_order_and_duplicates() {
        let headers: Headers = [("b", "1"), ("a", "2"), ("b", "3")].into_iter().collect();
        let seen: Vec<_> = headers.iter().collect();
        assert_eq!(
            seen,
            vec![("b", &b"1"[..]), ("a", &b"2"[..]), ("b", &b"3"[..])]
        );
        assert_eq!(headers.get_all("b").collect::<Vec<_>>(), vec![b"1", b"3"]);
    }

    #[test]
    fn insert_replaces_all_values_in_place_of_the_first() {
        let mut headers: Headers = [("b", "1"), ("a", "2"), ("b", "3")].into_iter().collect();
        headers.insert("b", "new");
        let seen: Vec<_> = headers.iter().collect();
        assert_eq!(seen, vec![("b", &b"new"[..]), ("a", &b"2"[..])]);
    }

    #[test]
    fn values_are_binary_safe() {
        let mut headers = Headers::new();
        let raw = vec![0u8, 0xff, b'\r', b'\n', 0x80];
        headers.insert("bin", raw.clone());
        assert_eq!(headers.get("bin"), Some(&raw[..]));
        assert_eq!(headers.get_str("bin"), None);
    }

    #[test]
    fn names_are_case_sensitive() {
        let mut headers = Headers::new();
        headers.insert("Content-Type", "a");
        assert!(headers.get(CONTENT_TYPE).is_none());
        assert!(headers.contains("Content-Type"));
    }

    #[test]
    fn remove_counts_every_value() {
        let mut headers: Headers = [("x", "1"), ("y", "2"), ("x", "3")].into_iter().collect();
        assert_eq!(headers.remove("x"), 2);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers.remove("x"), 0);
        assert_eq!(headers.encoded_len(), 2);
    }
}
