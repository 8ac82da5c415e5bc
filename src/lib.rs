//! rev23-webhooks: the webhook engine for REV23.
//!
//! The architecture, as the folders show it:
//! - [`journal`]: the append-only event journal in redb, the single source of truth, and the one
//!   writer thread that owns every write transaction (group commit).
//! - [`projectors`]: in-process threads that derive state (the user/key registry, hooks and their
//!   matched sequences) from the journal, each committing its state and checkpoint atomically.
//! - [`sender`]: the hyper client side that delivers each hook's sequence, signed and retried.
//! - [`replay`]: re-delivering any journal range to a hook, rate-capped, surviving restarts.
//! - [`api`]: the hyper HTTP server, auth, rate limits and one file per API resource.
//! - [`domain`]: the event catalog, permissions and the records the journal carries.
//! - [`loops`]: loop protection for two-way syncs (what was sent, what echoes it).
//! - [`daemon`]: wiring, start-up bootstrap and graceful shutdown; [`systemd`]: readiness and
//!   watchdog notifications when run as a `Type=notify` service.
//! - [`sender`]: outgoing deliveries; [`sender::signing`] is Standard Webhooks signing and
//!   verification.
//! - [`ifttt`]: IFTTT trigger slugs, the identities IFTTT polls, and realtime notifications.
//! - [`cli`]: the command-line tools beside `serve` (`verify`, `listen`, `replay`).

pub mod api;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod fuzzing;
pub mod ids;
pub mod ifttt;
pub mod journal;
pub mod loops;
pub mod projectors;
pub mod replay;
pub mod retention;
pub mod sender;
pub mod shutdown;
pub mod systemd;
