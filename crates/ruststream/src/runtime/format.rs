//! [`Format`]: the serde codec a subscriber, router or app decodes and encodes with.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::CodecError;

/// Which serde codec a subscriber uses for payloads and replies.
///
/// Chosen per subscriber, router or app (the nearest wins; JSON when none is set). The
/// choice is a value, so one handler type can run with any format, and decoding stays
/// monomorphic: no dynamic dispatch per message. A format whose cargo feature is off
/// fails each decode with an error naming the feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Format {
    /// JSON (feature `json`, on by default).
    #[default]
    Json,
    /// MessagePack (feature `msgpack`).
    MsgPack,
    /// CBOR (feature `cbor`).
    Cbor,
}

impl Format {
    /// The content type written to the `content-type` header.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::MsgPack => "application/msgpack",
            Format::Cbor => "application/cbor",
        }
    }

    /// The format a `content-type` header names, if it is one of these (parameters such
    /// as `; charset=utf-8` and letter case are ignored; `application/x-msgpack` and
    /// `application/vnd.msgpack` name MessagePack too).
    pub fn of_content_type(content_type: &[u8]) -> Option<Format> {
        let essence = media_type(content_type);
        let is = |name: &str| essence.eq_ignore_ascii_case(name.as_bytes());
        if is("application/json") {
            Some(Format::Json)
        } else if is("application/msgpack")
            || is("application/x-msgpack")
            || is("application/vnd.msgpack")
        {
            Some(Format::MsgPack)
        } else if is("application/cbor") {
            Some(Format::Cbor)
        } else {
            None
        }
    }

    /// The format to decode a payload labelled `content_type` with, when this is the
    /// subscriber's: the one the label names, this one when there is no label or the label
    /// says nothing of the encoding (`text/plain`, `application/octet-stream`), and an
    /// error naming both types otherwise.
    pub(crate) fn for_label(self, content_type: Option<&[u8]>) -> Result<Format, CodecError> {
        let Some(label) = content_type else {
            return Ok(self);
        };
        if let Some(format) = Format::of_content_type(label) {
            return Ok(format);
        }
        let essence = media_type(label);
        let says_nothing = [b"text/plain".as_slice(), b"application/octet-stream"]
            .iter()
            .any(|plain| essence.eq_ignore_ascii_case(plain));
        if says_nothing || essence.is_empty() {
            return Ok(self);
        }
        Err(CodecError::ContentType {
            expected: self.content_type(),
            found: String::from_utf8_lossy(label).into_owned(),
        })
    }

    fn feature(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::MsgPack => "msgpack",
            Format::Cbor => "cbor",
        }
    }

    fn disabled(self) -> String {
        format!(
            "the `{}` feature of ruststream is not enabled",
            self.feature()
        )
    }

    /// Decodes `bytes` as `T`.
    #[inline(always)]
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        #[cfg(any(feature = "json", feature = "msgpack", feature = "cbor"))]
        use crate::codec::Decode as _;
        match self {
            #[cfg(feature = "json")]
            Format::Json => crate::codec::Json.decode(bytes),
            #[cfg(feature = "msgpack")]
            Format::MsgPack => crate::codec::MsgPack.decode(bytes),
            #[cfg(feature = "cbor")]
            Format::Cbor => crate::codec::Cbor.decode(bytes),
            #[allow(unreachable_patterns)]
            other => Err(CodecError::decode::<T>(
                other.content_type(),
                bytes.len(),
                other.disabled(),
            )),
        }
    }

    /// Appends the encoding of `value` to `out`.
    pub fn encode<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        #[cfg(any(feature = "json", feature = "msgpack", feature = "cbor"))]
        use crate::codec::Encode as _;
        match self {
            #[cfg(feature = "json")]
            Format::Json => crate::codec::Json.encode(value, out),
            #[cfg(feature = "msgpack")]
            Format::MsgPack => crate::codec::MsgPack.encode(value, out),
            #[cfg(feature = "cbor")]
            Format::Cbor => crate::codec::Cbor.encode(value, out),
            #[allow(unreachable_patterns)]
            other => {
                let _ = (value, out);
                Err(CodecError::encode::<T>(
                    other.content_type(),
                    other.disabled(),
                ))
            }
        }
    }
}

#[cfg(feature = "json")]
impl From<crate::codec::Json> for Format {
    fn from(_: crate::codec::Json) -> Self {
        Format::Json
    }
}

#[cfg(feature = "msgpack")]
impl From<crate::codec::MsgPack> for Format {
    fn from(_: crate::codec::MsgPack) -> Self {
        Format::MsgPack
    }
}

#[cfg(feature = "cbor")]
impl From<crate::codec::Cbor> for Format {
    fn from(_: crate::codec::Cbor) -> Self {
        Format::Cbor
    }
}

/// The media type of a `content-type` value, without its parameters.
fn media_type(content_type: &[u8]) -> &[u8] {
    content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_chooses_the_format_or_is_refused_naming_both() {
        let json = Format::Json;
        assert_eq!(json.for_label(None), Ok(Format::Json));
        assert_eq!(
            json.for_label(Some(b"application/msgpack")),
            Ok(Format::MsgPack)
        );
        assert_eq!(
            json.for_label(Some(b"Application/CBOR; foo=bar")),
            Ok(Format::Cbor)
        );
        assert_eq!(
            json.for_label(Some(b"text/plain; charset=utf-8")),
            Ok(Format::Json)
        );
        assert_eq!(
            json.for_label(Some(b"application/octet-stream")),
            Ok(Format::Json)
        );
        let refused = json.for_label(Some(b"application/x-protobuf")).unwrap_err();
        let text = refused.to_string();
        assert!(text.contains("application/x-protobuf"), "{text}");
        assert!(text.contains("application/json"), "{text}");
    }
}
