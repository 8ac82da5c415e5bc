//! Replay: deliver a journal range to a hook again — by offset, time or event id — re-matched
//! against the hook's *current* events and its user's *current* permissions, with the events'
//! original `webhook-id`s and new sequences. [`scan`] decides which offsets match; [`worker`]
//! feeds them to the hook as journal batches, rate-capped by the hook's lag so a big replay never
//! starves live deliveries. Because the batches are journal events, a replay survives restarts
//! and a rebuild of the hooks projection assigns exactly the same sequences again.

pub mod scan;
pub mod worker;
