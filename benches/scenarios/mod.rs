//! The parts of the `engine` bench, run in this order. Each starts its own daemon(s), prints its
//! detail lines and its own summary table, and returns its rows for the combined table.

pub mod delivery;
pub mod ingest;
pub mod replay;
