//! The on-disk encoding of a journal entry. This is the only module that touches bincode: a
//! leading format-version byte, then the bincode 2 `standard()` encoding of [`Envelope`]. The
//! golden-byte tests below pin the format, so a dependency bump or a field change cannot alter
//! what is on disk without a failing test (and a new version byte).

use bincode::{Decode, Encode};

/// The current format. Bump it (and keep a decoder for the old one) when the layout changes.
pub const FORMAT_VERSION: u8 = 1;

/// Upper bound on one encoded entry; the API limits bodies well below it.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Encode, Decode, Clone, Debug, PartialEq, Eq, Default)]
pub struct Origin {
    pub key_id: Option<String>,
    pub user_id: Option<String>,
}

/// One journal entry.
#[derive(Encode, Decode, Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Position in the journal: gapless from 1.
    pub offset: u64,
    /// `evt_...` or the client's id; unique across the journal.
    pub id: String,
    /// A catalog type (`customer.created`) or an internal one (`internal.key_created`).
    pub kind: String,
    /// When it happened (`occurred_at`, else when it was received), unix ms.
    pub timestamp_ms: i64,
    /// When the journal committed it, unix ms (retention and replay by time use this).
    pub appended_at_ms: i64,
    pub origin: Origin,
    pub assigned_user_id: Option<String>,
    /// `data.id` of public events.
    pub entity_id: Option<String>,
    /// The `data` JSON exactly as received (validated), so deliveries splice it unchanged.
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("empty journal entry")]
    Empty,
    #[error("unknown journal format version {0}")]
    UnknownVersion(u8),
    #[error("journal entry does not decode: {0}")]
    Malformed(String),
    #[error("journal entry has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("journal entry of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_ENTRY_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_ENTRY_BYTES>()
}

pub fn encode(envelope: &Envelope) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64 + envelope.payload.len() + envelope.id.len());
    out.push(FORMAT_VERSION);
    bincode::encode_into_std_write(envelope, &mut out, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if out.len() > MAX_ENTRY_BYTES {
        return Err(CodecError::TooLarge(out.len()));
    }
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<Envelope, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    let (envelope, read): (Envelope, usize) = bincode::decode_from_slice(body, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if read != body.len() {
        return Err(CodecError::TrailingBytes(body.len() - read));
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            offset: 300,
            id: "evt_1".into(),
            kind: "customer.created".into(),
            timestamp_ms: 1_796_376_051_123,
            appended_at_ms: 1_796_376_051_124,
            origin: Origin {
                key_id: Some("key_A".into()),
                user_id: Some("usr_B".into()),
            },
            assigned_user_id: None,
            entity_id: Some("c1".into()),
            payload: br#"{"id":"c1"}"#.to_vec(),
        }
    }

    /// The pinned bytes of format version 1. If this test fails, the on-disk format changed:
    /// bump FORMAT_VERSION and keep decoding version 1 instead of editing these bytes.
    const GOLDEN_V1: &str = concat!(
        "01",     // format version
        "fb2c01", // offset 300 (varint u16 marker + LE)
        "05",
        "6576745f31", // id "evt_1"
        "10",
        "637573746f6d65722e63726561746564", // kind "customer.created"
        "fd667bb68044030000",               // timestamp_ms (zigzag, u64 marker + LE)
        "fd687bb68044030000",               // appended_at_ms
        "01",
        "05",
        "6b65795f41", // origin.key_id Some("key_A")
        "01",
        "05",
        "7573725f42", // origin.user_id Some("usr_B")
        "00",         // assigned_user_id None
        "01",
        "02",
        "6331", // entity_id Some("c1")
        "0b",
        "7b226964223a226331227d", // payload {"id":"c1"}
    );

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn golden_bytes_encode() {
        assert_eq!(hex(&encode(&sample()).unwrap()), GOLDEN_V1);
    }

    #[test]
    fn golden_bytes_decode() {
        assert_eq!(decode(&unhex(GOLDEN_V1)).unwrap(), sample());
    }

    #[test]
    fn round_trip_extremes() {
        let mut e = sample();
        e.offset = u64::MAX;
        e.timestamp_ms = i64::MIN;
        e.origin = Origin::default();
        e.payload = vec![b'x'; 100_000];
        assert_eq!(decode(&encode(&e).unwrap()).unwrap(), e);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode(&[]), Err(CodecError::Empty));
        assert_eq!(decode(&[2, 0]), Err(CodecError::UnknownVersion(2)));
        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(CodecError::TrailingBytes(1)));
        let truncated = &encode(&sample()).unwrap()[..20];
        assert!(matches!(decode(truncated), Err(CodecError::Malformed(_))));
        // A huge declared string length must not allocate or panic.
        assert!(decode(&[1, 0x01, 0xfc, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
