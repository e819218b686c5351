//! [`TextHeaders`]: the check of header names and values for protocols whose headers are
//! text lines (`Name: value`: NATS, HTTP-like protocols, STOMP).
//!
//! A header such a protocol cannot carry unchanged is refused with a [`HeaderProblem`]
//! naming it and saying what to do, never altered on the way.

use crate::Headers;

/// The rules of a text-only header protocol:
///
/// - names: non-empty printable ASCII, without `:` or spaces;
/// - values: UTF-8 text without CR or LF, and (when the protocol trims values on
///   delivery, [`trims_values`](Self::trims_values)) without leading or trailing
///   whitespace.
///
/// ```
/// use ruststream::kit::TextHeaders;
///
/// const NATS: TextHeaders = TextHeaders::new("NATS").trims_values(true);
///
/// assert_eq!(NATS.check("x-id", b"42"), Ok("42"));
/// let problem = NATS.check("x-multi", b"a\r\nb").unwrap_err();
/// assert_eq!(problem.name, "x-multi");
/// assert!(problem.to_string().starts_with("header `x-multi` cannot be sent over NATS: "));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextHeaders {
    protocol: &'static str,
    trims_values: bool,
}

/// A header a protocol cannot carry unchanged: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header `{name}` cannot be sent over {protocol}: {reason}")]
pub struct HeaderProblem {
    /// The header name.
    pub name: String,
    /// What is wrong and what to do.
    pub reason: String,
    /// The protocol, as given to [`TextHeaders::new`].
    pub protocol: &'static str,
}

impl TextHeaders {
    /// The rules of `protocol` (its name appears in the reasons), values kept as they are.
    pub const fn new(protocol: &'static str) -> Self {
        Self {
            protocol,
            trims_values: false,
        }
    }

    /// Whether the protocol trims whitespace around values on delivery, so that a value
    /// with leading or trailing whitespace would not arrive unchanged.
    #[must_use]
    pub const fn trims_values(mut self, trims: bool) -> Self {
        self.trims_values = trims;
        self
    }

    /// Why the protocol cannot carry this header unchanged, if it cannot.
    pub fn problem(&self, name: &str, value: &[u8]) -> Option<String> {
        self.check(name, value).err().map(|problem| problem.reason)
    }

    /// The value as text if the protocol carries the header unchanged, else the problem.
    pub fn check<'v>(&self, name: &str, value: &'v [u8]) -> Result<&'v str, HeaderProblem> {
        let protocol = self.protocol;
        let refuse = |reason: String| HeaderProblem {
            name: name.to_owned(),
            reason,
            protocol,
        };
        if name.is_empty() {
            return Err(refuse("the name is empty".to_owned()));
        }
        if let Some(bad) = name.chars().find(|c| !c.is_ascii_graphic() || *c == ':') {
            return Err(refuse(format!(
                "the name contains {bad:?}; {protocol} header names are printable ASCII without `:` or spaces"
            )));
        }
        let Ok(text) = std::str::from_utf8(value) else {
            return Err(refuse(format!(
                "the value is not UTF-8 text; {protocol} header values are text, so encode binary values (base64, hex) before publishing"
            )));
        };
        if text.contains(['\r', '\n']) {
            return Err(refuse(format!(
                "the value contains CR or LF; {protocol} header values are single lines, so encode it before publishing"
            )));
        }
        if self.trims_values && text.trim() != text {
            return Err(refuse(format!(
                "the value starts or ends with whitespace, which {protocol} trims on delivery; trim it before publishing"
            )));
        }
        Ok(text)
    }

    /// Checks every header, stopping at the first the protocol cannot carry.
    pub fn check_all(&self, headers: &Headers) -> Result<(), HeaderProblem> {
        for (name, value) in headers.iter() {
            self.check(name, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: TextHeaders = TextHeaders::new("TEXT").trims_values(true);

    fn reason(name: &str, value: &[u8]) -> String {
        RULES.check(name, value).unwrap_err().to_string()
    }

    #[test]
    fn plain_text_headers_pass() {
        assert_eq!(RULES.check("x-tag", b"b b"), Ok("b b"));
        assert_eq!(RULES.problem("content-type", b"application/json"), None);
    }

    #[test]
    fn each_refusal_names_the_header_and_the_fix() {
        assert!(reason("", b"1").contains("the name is empty"));
        assert!(reason("x:y", b"1").contains("header `x:y`"));
        assert!(reason("x y", b"1").contains("printable ASCII"));
        assert!(reason("x-bin", &[0xff, 0]).contains("not UTF-8"));
        assert!(reason("x-multi", b"a\nb").contains("CR or LF"));
        assert!(reason("x-pad", b" 1").contains("trim it"));
    }

    #[test]
    fn padding_is_kept_when_the_protocol_does_not_trim() {
        assert_eq!(TextHeaders::new("TEXT").check("x-pad", b" 1 "), Ok(" 1 "));
    }

    #[test]
    fn check_all_stops_at_the_first_problem() {
        let headers: Headers = [("x-ok", "1"), ("x-bad", "a\rb"), ("x:worse", "2")]
            .into_iter()
            .collect();
        assert_eq!(RULES.check_all(&headers).unwrap_err().name, "x-bad");
    }
}
