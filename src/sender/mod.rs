//! Outgoing deliveries: how they are signed.

pub mod signing;
