//! Serde support for 64-byte signatures (serde implements arrays only up to 32 elements).
//! Encoded as a fixed tuple of 64 bytes: in the canonical encoding that is 64 raw bytes.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
    let mut t = s.serialize_tuple(64)?;
    for b in bytes {
        t.serialize_element(b)?;
    }
    t.end()
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = [u8; 64];
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("64 signature bytes")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 64], A::Error> {
            let mut out = [0u8; 64];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            Ok(out)
        }
    }
    d.deserialize_tuple(64, V)
}
