//! The envelope that carries headers on channels and lists: FastStream 0.7's default
//! Redis message format (`BinaryMessageFormatV1`), so a FastStream service and ours read
//! each other's messages.
//!
//! ```text
//! [identity: 8 bytes  89 42 49 4E 0D 0A 1A 0A  ("\x89BIN\r\n\x1a\n")]
//! [format version: u16 big-endian = 1]
//! [headers offset: u32 big-endian, where the header count is (18)]
//! [data offset: u32 big-endian, where the payload starts]
//! [header count: u16 big-endian]
//! then per header: [name length: u16][name][value length: u16][value]
//! [payload: the untouched bytes, to the end]
//! ```
//!
//! On receive, a value without the identity bytes is tried as FastStream's older JSON
//! envelope (`{"data": "...", "headers": {...}}`), and else taken as a raw payload
//! without headers, the same fallbacks FastStream has.

use bytes::Bytes;
use ruststream::Headers;

use crate::RedisError;

/// The identity bytes that open an envelope.
pub(crate) const IDENTITY: &[u8; 8] = b"\x89BIN\r\n\x1a\n";
const VERSION: u16 = 1;
const HEADERS_START: usize = IDENTITY.len() + 2 + 4 + 4;

/// The envelope of `payload` with `headers` (and `extra` headers first).
pub(crate) fn encode(
    payload: &[u8],
    extra: &[(&str, &[u8])],
    headers: &Headers,
) -> Result<Vec<u8>, RedisError> {
    let count = extra.len() + headers.len();
    let count = u16::try_from(count).map_err(|_| RedisError::Header {
        name: "*".into(),
        reason: format!("{count} headers, at most 65535 fit in the envelope"),
    })?;
    let mut out = Vec::with_capacity(HEADERS_START + 2 + headers.encoded_len() + payload.len());
    out.extend_from_slice(IDENTITY);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&count.to_be_bytes());
    let all = extra.iter().copied().chain(headers.iter());
    for (name, value) in all {
        write_string(&mut out, name, name.as_bytes())?;
        write_string(&mut out, name, value)?;
    }
    let data_start = u32::try_from(out.len()).map_err(|_| RedisError::Header {
        name: "*".into(),
        reason: "the headers exceed 4 GiB".into(),
    })?;
    let headers_start = HEADERS_START as u32;
    out[10..14].copy_from_slice(&headers_start.to_be_bytes());
    out[14..18].copy_from_slice(&data_start.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

fn write_string(out: &mut Vec<u8>, name: &str, bytes: &[u8]) -> Result<(), RedisError> {
    let len = u16::try_from(bytes.len()).map_err(|_| RedisError::Header {
        name: name.to_owned(),
        reason: format!(
            "{} bytes; a header name or value holds at most 65535 bytes in the envelope",
            bytes.len()
        ),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// The payload and headers of a received value (envelope, legacy JSON envelope or raw).
pub(crate) fn decode(value: Bytes) -> (Bytes, Headers) {
    if value.starts_with(IDENTITY)
        && let Some(decoded) = decode_binary(&value)
    {
        return decoded;
    }
    if value.first() == Some(&b'{')
        && let Some(decoded) = decode_json(&value)
    {
        return decoded;
    }
    (value, Headers::new())
}

fn decode_binary(value: &Bytes) -> Option<(Bytes, Headers)> {
    let u16_at = |at: usize| -> Option<usize> {
        Some(u16::from_be_bytes(value.get(at..at + 2)?.try_into().ok()?) as usize)
    };
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_be_bytes(value.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    if u16_at(IDENTITY.len())? != usize::from(VERSION) {
        return None;
    }
    let headers_start = u32_at(10)?;
    let data_start = u32_at(14)?;
    let count = u16_at(headers_start)?;
    let mut at = headers_start + 2;
    let mut headers = Headers::with_capacity(count);
    for _ in 0..count {
        let name_len = u16_at(at)?;
        let name = std::str::from_utf8(value.get(at + 2..at + 2 + name_len)?).ok()?;
        at += 2 + name_len;
        let value_len = u16_at(at)?;
        let header = value.slice(at + 2..at + 2 + value_len);
        if header.len() != value_len {
            return None;
        }
        at += 2 + value_len;
        headers.append(name.to_owned(), header);
    }
    if data_start > value.len() {
        return None;
    }
    Some((value.slice(data_start..), headers))
}

fn decode_json(value: &[u8]) -> Option<(Bytes, Headers)> {
    let parsed: serde_json::Value = serde_json::from_slice(value).ok()?;
    let object = parsed.as_object()?;
    let data = object.get("data")?.as_str()?;
    let mut headers = Headers::new();
    if let Some(map) = object.get("headers").and_then(|h| h.as_object()) {
        for (name, value) in map {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            headers.append(name.clone(), text);
        }
    }
    Some((Bytes::copy_from_slice(data.as_bytes()), headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_payload_headers_and_order() {
        let mut headers = Headers::new();
        headers.append("b", "2");
        headers.append("a", "1");
        headers.append("a", "3");
        let value = encode(b"\x00\xffpayload", &[("correlation_id", b"c-1")], &headers).unwrap();
        let (payload, got) = decode(Bytes::from(value));
        assert_eq!(&payload[..], b"\x00\xffpayload");
        let pairs: Vec<_> = got
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("correlation_id".to_owned(), b"c-1".to_vec()),
                ("b".to_owned(), b"2".to_vec()),
                ("a".to_owned(), b"1".to_vec()),
                ("a".to_owned(), b"3".to_vec()),
            ]
        );
    }

    /// Bytes as FastStream 0.7.8's `BinaryMessageFormatV1.encode` writes them for
    /// `publish(b"hi", headers={"x": "1"}, correlation_id="c")` with no content type.
    #[test]
    fn reads_faststream_binary_format() {
        let mut value = Vec::new();
        value.extend_from_slice(IDENTITY);
        value.extend_from_slice(&1u16.to_be_bytes());
        value.extend_from_slice(&18u32.to_be_bytes());
        let headers: &[u8] = b"\x00\x0ecorrelation_id\x00\x01c\x00\x01x\x00\x011";
        value.extend_from_slice(&(18 + 2 + headers.len() as u32).to_be_bytes());
        value.extend_from_slice(&2u16.to_be_bytes());
        value.extend_from_slice(headers);
        value.extend_from_slice(b"hi");
        let (payload, got) = decode(Bytes::from(value));
        assert_eq!(&payload[..], b"hi");
        assert_eq!(got.get_str("correlation_id"), Some("c"));
        assert_eq!(got.get_str("x"), Some("1"));
    }

    #[test]
    fn reads_the_legacy_json_envelope_and_raw_values() {
        let (payload, headers) = decode(Bytes::from_static(
            br#"{"data":"hello","headers":{"k":"v"}}"#,
        ));
        assert_eq!(&payload[..], b"hello");
        assert_eq!(headers.get_str("k"), Some("v"));
        let (payload, headers) = decode(Bytes::from_static(b"plain"));
        assert_eq!(&payload[..], b"plain");
        assert!(headers.is_empty());
    }

    #[test]
    fn a_truncated_envelope_is_a_raw_payload() {
        let value = encode(b"x", &[], &[("a", "b")].into_iter().collect()).unwrap();
        let cut = Bytes::copy_from_slice(&value[..value.len() - 4]);
        let (payload, headers) = decode(cut.clone());
        assert_eq!(payload, cut);
        assert!(headers.is_empty());
    }
}
