//! The command-line tools beside `serve`, one file each: `verify` checks one delivery's
//! signature, `listen` is a local receiver that verifies and prints deliveries.

pub mod listen;
pub mod verify;
