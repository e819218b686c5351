//! [`Format`]: the serde codec a subscriber, router or app decodes and encodes with.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::CodecError;

/// Which serde codec a subscriber uses for payloads and replies.
///
/// Chosen per subscriber, router or app (the nearest wins; JSON when none is set). The
/// choice is a value, so one handler type can run with any format, and decoding the
/// built-in formats stays monomorphic: no dynamic dispatch per message. A format whose
/// cargo feature is off fails each decode with an error naming the feature. A serde
/// format of your own plugs in as [`Format::custom`].
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub enum Format {
    /// JSON (feature `json`, on by default).
    #[default]
    Json,
    /// MessagePack (feature `msgpack`).
    MsgPack,
    /// CBOR (feature `cbor`).
    Cbor,
    /// A codec of your own ([`CustomCodec`]).
    Custom(&'static dyn CustomCodec),
}

/// A serde format of your own (YAML, Bincode, Postcard...), for [`Format::custom`].
///
/// It works through [`erased_serde`](crate::codec::erased_serde), so one codec value
/// serves every payload type: it hands the runtime a deserializer over the bytes, and
/// serializes a type-erased value.
///
/// ```
/// use ruststream::codec::erased_serde;
/// use ruststream::runtime::{CustomCodec, Format};
///
/// /// JSON under another content type, as a stand-in for your format.
/// struct LabelledJson;
///
/// impl CustomCodec for LabelledJson {
///     fn content_type(&self) -> &'static str {
///         "application/vnd.example+json"
///     }
///
///     fn deserialize(
///         &self,
///         bytes: &[u8],
///         visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error>,
///     ) -> Result<(), String> {
///         let mut json = serde_json::Deserializer::from_slice(bytes);
///         visit(&mut <dyn erased_serde::Deserializer>::erase(&mut json)).map_err(|e| e.to_string())
///     }
///
///     fn serialize(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<(), String> {
///         let mut json = serde_json::Serializer::new(out);
///         erased_serde::serialize(value, &mut json).map_err(|e| e.to_string())
///     }
/// }
///
/// static LABELLED_JSON: LabelledJson = LabelledJson;
/// let format = Format::custom(&LABELLED_JSON);
/// assert_eq!(format.content_type(), "application/vnd.example+json");
/// ```
pub trait CustomCodec: Send + Sync + 'static {
    /// The content type written to, and recognised in, the `content-type` header.
    fn content_type(&self) -> &'static str;

    /// Calls `visit` once with a deserializer over `bytes`; the error's text is the
    /// decode failure's reason.
    fn deserialize(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), String>;

    /// Appends the encoding of `value` to `out`.
    fn serialize(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), String>;
}

impl std::fmt::Debug for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Json => f.write_str("Json"),
            Format::MsgPack => f.write_str("MsgPack"),
            Format::Cbor => f.write_str("Cbor"),
            Format::Custom(codec) => write!(f, "Custom({})", codec.content_type()),
        }
    }
}

/// Formats are equal when they name the same content type.
impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.content_type() == other.content_type()
    }
}

impl Eq for Format {}

impl std::hash::Hash for Format {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.content_type().hash(state);
    }
}

impl Format {
    /// A codec of your own: a `static` that implements [`CustomCodec`].
    pub fn custom(codec: &'static dyn CustomCodec) -> Self {
        Format::Custom(codec)
    }

    /// The content type written to the `content-type` header.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::MsgPack => "application/msgpack",
            Format::Cbor => "application/cbor",
            Format::Custom(codec) => codec.content_type(),
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
    /// subscriber's and `custom` are the app's own codecs: the one the label names, this
    /// one when there is no label or the label says nothing of the encoding
    /// (`text/plain`, `application/octet-stream`), and an error naming both types
    /// otherwise.
    pub(crate) fn for_label(
        self,
        content_type: Option<&[u8]>,
        custom: &[Format],
    ) -> Result<Format, CodecError> {
        let Some(label) = content_type else {
            return Ok(self);
        };
        let essence = media_type(label);
        if essence.eq_ignore_ascii_case(self.content_type().as_bytes()) {
            return Ok(self);
        }
        if let Some(format) = Format::of_content_type(label) {
            return Ok(format);
        }
        if let Some(format) = custom
            .iter()
            .find(|format| essence.eq_ignore_ascii_case(format.content_type().as_bytes()))
        {
            return Ok(*format);
        }
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
            Format::Custom(_) => "",
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
            Format::Custom(codec) => decode_custom(codec, bytes),
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
            Format::Custom(codec) => codec
                .serialize(&value, out)
                .map_err(|reason| CodecError::encode::<T>(codec.content_type(), reason)),
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

/// Decodes `bytes` as `T` with a codec of the user's.
fn decode_custom<T: DeserializeOwned>(
    codec: &dyn CustomCodec,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let mut value = None;
    let decoded = codec.deserialize(bytes, &mut |deserializer| {
        value = Some(erased_serde::deserialize::<T>(deserializer)?);
        Ok(())
    });
    match (decoded, value) {
        (Ok(()), Some(value)) => Ok(value),
        (Err(reason), _) => Err(CodecError::decode::<T>(
            codec.content_type(),
            bytes.len(),
            reason,
        )),
        (Ok(()), None) => Err(CodecError::decode::<T>(
            codec.content_type(),
            bytes.len(),
            "the codec did not call the deserializer visit",
        )),
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
        let none: &[Format] = &[];
        let label = |label: &[u8]| json.for_label(Some(label), none);
        assert_eq!(json.for_label(None, none), Ok(Format::Json));
        assert_eq!(label(b"application/msgpack"), Ok(Format::MsgPack));
        assert_eq!(label(b"Application/CBOR; foo=bar"), Ok(Format::Cbor));
        assert_eq!(label(b"text/plain; charset=utf-8"), Ok(Format::Json));
        assert_eq!(label(b"application/octet-stream"), Ok(Format::Json));
        let text = label(b"application/x-protobuf").unwrap_err().to_string();
        assert!(text.contains("application/x-protobuf"), "{text}");
        assert!(text.contains("application/json"), "{text}");
    }
}
