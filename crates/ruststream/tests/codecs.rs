//! The codecs: round trips, content types, decode errors, and bad input that must never
//! panic (random bytes, truncated encodings, a 16 MiB payload).
#![cfg(all(feature = "json", feature = "msgpack", feature = "cbor"))]

use std::collections::BTreeMap;

use proptest::prelude::*;
use ruststream::codec::{Cbor, Codec, CodecError, Decode, Encode, Json, MsgPack};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    name: String,
    amount: f64,
    tags: Vec<String>,
    lines: BTreeMap<String, i32>,
    note: Option<String>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Retail,
    Wholesale { discount: u8 },
}

fn sample() -> Order {
    Order {
        id: 10_000_023,
        name: "order-10000023 ✓".to_owned(),
        amount: 123.25,
        tags: vec!["new".to_owned(), String::new()],
        lines: [("sku-1".to_owned(), 3), ("sku-2".to_owned(), -1)]
            .into_iter()
            .collect(),
        note: None,
        kind: Kind::Wholesale { discount: 12 },
    }
}

/// Encodes then decodes `value` with `codec`.
fn round_trip<C, T>(codec: &C, value: &T) -> Result<T, CodecError>
where
    C: Encode<T> + Decode<T>,
{
    let mut bytes = Vec::new();
    codec.encode(value, &mut bytes)?;
    codec.decode(&bytes)
}

fn encoded<C: Encode<T>, T>(codec: &C, value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    codec.encode(value, &mut bytes).expect("encodes");
    bytes
}

#[test]
fn a_struct_round_trips_through_every_codec() {
    let order = sample();
    assert_eq!(round_trip(&Json, &order), Ok(order.clone()));
    assert_eq!(round_trip(&MsgPack, &order), Ok(order.clone()));
    assert_eq!(round_trip(&Cbor, &order), Ok(order));
}

#[test]
fn encode_appends_to_the_buffer() {
    let mut out = b"prefix".to_vec();
    Json.encode(&1u8, &mut out).expect("encodes");
    assert_eq!(out, b"prefix1");
}

#[test]
fn each_codec_names_its_content_type() {
    assert_eq!(Json.content_type(), "application/json");
    assert_eq!(MsgPack.content_type(), "application/msgpack");
    assert_eq!(Cbor.content_type(), "application/cbor");
}

#[test]
fn msgpack_keeps_field_names() {
    let bytes = encoded(&MsgPack, &sample());
    let needle = b"amount";
    assert!(
        bytes.windows(needle.len()).any(|w| w == needle),
        "structs are encoded as maps"
    );
}

#[test]
fn a_decode_error_names_the_target_type_and_carries_a_reason() {
    fn check<C: Decode<Order>>(codec: &C, bytes: &[u8]) {
        let err = codec.decode(bytes).expect_err("not an Order");
        let CodecError::Decode {
            content_type,
            target,
            len,
            reason,
        } = &err
        else {
            panic!("expected a decode error, got {err:?}");
        };
        assert_eq!(*content_type, codec.content_type());
        assert!(target.ends_with("Order"), "target `{target}`");
        assert_eq!(*len, bytes.len());
        assert!(!reason.is_empty());
        let message = err.to_string();
        assert!(message.contains("Order"), "{message}");
        assert!(message.contains(reason.as_str()), "{message}");
        assert!(message.contains(codec.content_type()), "{message}");
    }
    for bytes in [
        &b""[..],
        b"\xff\x00garbage",
        b"[1,2,3]",
        b"{\"id\":\"seven\"}",
    ] {
        check(&Json, bytes);
        check(&MsgPack, bytes);
        check(&Cbor, bytes);
    }
}

#[test]
fn a_payload_of_another_type_is_refused_not_misread() {
    let bytes = encoded(&Json, &vec![1u32, 2, 3]);
    assert!(Decode::<Order>::decode(&Json, &bytes).is_err());
    let bytes = encoded(&MsgPack, &"text");
    assert!(Decode::<Order>::decode(&MsgPack, &bytes).is_err());
    let bytes = encoded(&Cbor, &42u64);
    assert!(Decode::<Order>::decode(&Cbor, &bytes).is_err());
}

/// Nesting far deeper than any real message: each decoder must refuse it with an error
/// before it runs out of stack (a stack overflow aborts the whole process).
const DEEP: usize = 100_000;

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow_json() {
    let json = "[".repeat(DEEP);
    assert!(Decode::<serde_json::Value>::decode(&Json, json.as_bytes()).is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow_msgpack() {
    let msgpack = vec![0x91u8; DEEP]; // a one-element array, nested
    assert!(Decode::<serde_json::Value>::decode(&MsgPack, &msgpack).is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow_cbor() {
    let cbor = vec![0x81u8; DEEP]; // a one-element array, nested
    assert!(Decode::<serde_json::Value>::decode(&Cbor, &cbor).is_err());
}

/// A message with a big body, as a broker would carry it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Upload {
    id: u64,
    body: String,
    checksum: u64,
}

const SIXTEEN_MIB: usize = 16 * 1024 * 1024;

fn big_upload() -> Upload {
    // Printable, varied content: not a run a codec could shortcut.
    let body: String = (0..SIXTEEN_MIB)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let checksum = body.bytes().map(u64::from).sum();
    Upload {
        id: 1,
        body,
        checksum,
    }
}

#[test]
fn a_16_mib_payload_round_trips_through_every_codec() {
    let upload = big_upload();
    for (codec, bytes, back) in [
        (
            Json.content_type(),
            encoded(&Json, &upload).len(),
            round_trip(&Json, &upload),
        ),
        (
            MsgPack.content_type(),
            encoded(&MsgPack, &upload).len(),
            round_trip(&MsgPack, &upload),
        ),
        (
            Cbor.content_type(),
            encoded(&Cbor, &upload).len(),
            round_trip(&Cbor, &upload),
        ),
    ] {
        assert!(bytes > SIXTEEN_MIB, "{codec}: {bytes} bytes");
        match back {
            Ok(back) => assert!(back == upload, "{codec}: the 16 MiB body changed"),
            Err(error) => panic!("{codec}: a 16 MiB payload failed: {error}"),
        }
    }
}

#[test]
fn a_16_mib_byte_vector_round_trips_through_every_codec() {
    let bytes: Vec<u8> = (0..SIXTEEN_MIB).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&Json, &bytes).as_ref(), Ok(&bytes), "json");
    assert_eq!(round_trip(&MsgPack, &bytes).as_ref(), Ok(&bytes), "msgpack");
    assert_eq!(round_trip(&Cbor, &bytes).as_ref(), Ok(&bytes), "cbor");
}

// --- never a panic ------------------------------------------------------------------------

fn arbitrary_order() -> impl Strategy<Value = Order> {
    (
        any::<u64>(),
        ".{0,20}",
        // Any finite amount: JSON must give back the exact same f64 (serde_json's
        // `float_roundtrip` is on for this reason).
        any::<f64>().prop_filter("JSON has no NaN or infinity", |a| a.is_finite()),
        prop::collection::vec(".{0,8}", 0..4),
        prop::collection::btree_map(".{0,8}", any::<i32>(), 0..4),
        prop::option::of(".{0,8}"),
        prop_oneof![
            Just(Kind::Retail),
            any::<u8>().prop_map(|discount| Kind::Wholesale { discount }),
        ],
    )
        .prop_map(|(id, name, amount, tags, lines, note, kind)| Order {
            id,
            name,
            amount,
            tags,
            lines,
            note,
            kind,
        })
}

/// Decodes `bytes` into a fixed and into a self-describing type with every codec. Any
/// outcome is fine but a panic (which fails the property).
fn decode_everything(bytes: &[u8]) {
    let _ = Decode::<Order>::decode(&Json, bytes);
    let _ = Decode::<Order>::decode(&MsgPack, bytes);
    let _ = Decode::<Order>::decode(&Cbor, bytes);
    let _ = Decode::<serde_json::Value>::decode(&Json, bytes);
    let _ = Decode::<serde_json::Value>::decode(&MsgPack, bytes);
    let _ = Decode::<serde_json::Value>::decode(&Cbor, bytes);
    let _ = Decode::<Vec<u8>>::decode(&MsgPack, bytes);
    let _ = Decode::<Vec<u8>>::decode(&Cbor, bytes);
    let _ = Decode::<String>::decode(&Cbor, bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn random_orders_round_trip(order in arbitrary_order()) {
        prop_assert_eq!(round_trip(&Json, &order), Ok(order.clone()));
        prop_assert_eq!(round_trip(&MsgPack, &order), Ok(order.clone()));
        prop_assert_eq!(round_trip(&Cbor, &order), Ok(order));
    }

    #[test]
    fn truncated_encodings_are_errors_never_panics(
        order in arbitrary_order(),
        cut in any::<prop::sample::Index>(),
    ) {
        for (codec, bytes) in [
            (Json.content_type(), encoded(&Json, &order)),
            (MsgPack.content_type(), encoded(&MsgPack, &order)),
            (Cbor.content_type(), encoded(&Cbor, &order)),
        ] {
            let prefix = &bytes[..cut.index(bytes.len())];
            decode_everything(prefix);
            let result: Result<Order, CodecError> = match codec {
                "application/json" => Json.decode(prefix),
                "application/msgpack" => MsgPack.decode(prefix),
                _ => Cbor.decode(prefix),
            };
            prop_assert!(result.is_err(), "{} accepted a truncated Order", codec);
        }
    }

    #[test]
    fn corrupted_encodings_never_panic(
        order in arbitrary_order(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        for mut bytes in [
            encoded(&Json, &order),
            encoded(&MsgPack, &order),
            encoded(&Cbor, &order),
        ] {
            for (at, value) in &flips {
                let i = at.index(bytes.len());
                bytes[i] = *value;
            }
            decode_everything(&bytes);
        }
    }
}
