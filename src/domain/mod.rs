//! The domain: what the journal's events mean, independent of storage and HTTP.
//! - [`catalog`]: the public event types, their read permission and scoping.
//! - [`permission`]: the permission names and a compact set of them.
//! - [`internal`]: the engine's own journal events (users, keys, hooks), never delivered.
//! - [`customer`]: customer fields, their validation, and normalized keys (index, loops).
//! - [`files`]: release-form PDFs stored by SHA-256, and their signed expiring URLs.
//! - [`outgoing`]: the data and body a subscriber receives (redaction, file URLs).
//! - [`address`]: which IP addresses are never a public receiver (SSRF).
//! - [`policy`]: the destination policy: allowed hosts, https only, private networks.
//! - [`visibility`]: who may see an event and what of it (scoping, permissions, redaction).

pub mod address;
pub mod catalog;
pub mod customer;
pub mod files;
pub mod internal;
pub mod outgoing;
pub mod permission;
pub mod policy;
pub mod visibility;
