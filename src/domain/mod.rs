//! The domain: what the journal's events mean, independent of storage and HTTP.
//! - [`catalog`]: the public event types, their read permission and scoping.
//! - [`permission`]: the permission names and a compact set of them.
//! - [`internal`]: the engine's own journal events (users, keys, hooks), never delivered.
//! - [`files`]: release-form PDFs stored by SHA-256, and their signed expiring URLs.
//! - [`outgoing`]: the data and body a subscriber receives (redaction, file URLs).
//! - [`visibility`]: who may see an event and what of it (scoping, permissions, redaction).

pub mod catalog;
pub mod files;
pub mod internal;
pub mod outgoing;
pub mod permission;
pub mod visibility;
