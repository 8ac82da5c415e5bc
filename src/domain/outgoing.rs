//! What leaves the daemon for a subscriber, built in one place for deliveries, replays, polling,
//! pull consumers and reads: the stored `data` bytes, spliced unchanged unless medical data must
//! be redacted (see [`visibility`](super::visibility)) or a release-form file needs its fresh
//! signed URL.

use std::borrow::Cow;

use super::files::{FileSigner, RELEASE_FORM_TYPE};
use super::visibility;
use crate::clock;
use crate::journal::Envelope;

#[derive(Clone)]
pub struct Outgoing {
    pub files: FileSigner,
}

impl Outgoing {
    /// The `data` a subscriber receives.
    pub fn data<'a>(&self, envelope: &'a Envelope, redact_medical: bool) -> Cow<'a, [u8]> {
        let visible = visibility::visible_data(&envelope.payload, redact_medical);
        if envelope.kind != RELEASE_FORM_TYPE {
            return visible;
        }
        match self.files.with_url(&visible, clock::now_ms()) {
            Some(with_url) => Cow::Owned(with_url),
            None => visible,
        }
    }

    /// The delivery body `{"id","type","timestamp","data"}`.
    pub fn body(&self, envelope: &Envelope, redact_medical: bool) -> Vec<u8> {
        let data = self.data(envelope, redact_medical);
        visibility::delivery_body(
            &envelope.id,
            &envelope.kind,
            &clock::format_ms(envelope.timestamp_ms),
            &data,
        )
    }
}
