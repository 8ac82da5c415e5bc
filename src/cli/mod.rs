//! The command-line tools beside `serve`, one file each: `verify` checks one delivery's
//! signature, `listen` is a local receiver that verifies and prints deliveries, `replay` asks a
//! running daemon to replay a range (through [`client`], shared by commands that talk to it).

pub mod client;
pub mod listen;
pub mod replay;
pub mod verify;
