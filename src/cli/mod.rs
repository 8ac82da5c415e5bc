//! The command-line tools beside `serve`, one file each: `verify` checks one delivery's
//! signature, `listen` is a local receiver that verifies and prints deliveries, `replay` asks a
//! running daemon to replay a range (through [`client`], shared by commands that talk to it),
//! `backup` / `restore` snapshot a running daemon and fill an empty data dir from it.

pub mod backup;
pub mod client;
pub mod listen;
pub mod replay;
pub mod verify;
