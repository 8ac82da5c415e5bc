//! The domain: what the journal's events mean, independent of storage and HTTP.
//! - [`catalog`]: the public event types, their read permission and scoping.
//! - [`permission`]: the permission names and a compact set of them.
//! - [`internal`]: the engine's own journal events (users, keys), never delivered.

pub mod catalog;
pub mod internal;
pub mod permission;
