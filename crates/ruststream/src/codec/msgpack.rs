//! The MessagePack codec (feature `msgpack`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, CodecError, Decode, Encode};

/// MessagePack through `rmp-serde`, structs encoded as maps (field names kept, so readers
/// in other languages see named fields); content type `application/msgpack`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgPack;

const CONTENT_TYPE: &str = "application/msgpack";

/// The nesting limit of serde_json, so hostile input is refused with an error long before
/// it could exhaust a task's stack (rmp-serde allows 1024 levels by default).
const MAX_DEPTH: usize = 128;

impl Codec for MsgPack {
    fn content_type(&self) -> &'static str {
        CONTENT_TYPE
    }
}

impl<T: Serialize + ?Sized> Encode<T> for MsgPack {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut serializer = rmp_serde::Serializer::new(out).with_struct_map();
        value
            .serialize(&mut serializer)
            .map_err(|e| CodecError::encode::<T>(CONTENT_TYPE, e))
    }
}

impl<T: DeserializeOwned> Decode<T> for MsgPack {
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
        deserializer.set_max_depth(MAX_DEPTH);
        T::deserialize(&mut deserializer)
            .map_err(|e| CodecError::decode::<T>(CONTENT_TYPE, bytes.len(), e))
    }
}
