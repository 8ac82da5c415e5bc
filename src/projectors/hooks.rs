//! The hooks projection and matcher: applies hook configuration events, keeps its own view of
//! users (so matching is a pure function of the journal prefix and a rebuild gives the same
//! result), and matches every public event to the hooks subscribed to its type, appending
//! `(hook, sequence) → offset` entries. Each hook thus has a gapless sequence from 1; its lane in
//! the sender delivers from its cursor into that sequence.
//!
//! Matching filters by scope (user-scoped events assigned to someone else never enter a hook's
//! sequence) but not by permissions: a hook whose user lost a permission still matches, so the
//! sender sees the event, skips it and suspends the hook. A suspended hook matches nothing: events
//! of its suspended period are delivered only by an explicit replay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock};

use crate::journal::Db;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::Projector;
use crate::domain::catalog;
use crate::domain::internal::{
    self, HookDeleted, HookRecord, HookSecretRotated, HookState, HookStateChange, HookUpdate,
    UserRecord,
};
use crate::domain::visibility::{self, Decision};
use crate::journal::{Envelope, JournalError, WriteFn};
use crate::projectors::registry::RegistryState;

pub const NAME: &str = "hooks";
/// `hook id → JSON HookRow`.
pub(crate) const HOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("hooks");
/// `user id → JSON UserRecord`: the matcher's own view of users, as of its checkpoint.
pub(crate) const HOOK_USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("hooks_users");
/// `replay id → JSON ReplayRow`.
pub(crate) const HOOK_REPLAYS: TableDefinition<&str, &[u8]> = TableDefinition::new("hook_replays");
/// `(hook id, sequence) → journal offset`.
pub const HOOK_ENTRIES: TableDefinition<(&str, u64), u64> = TableDefinition::new("hook_entries");

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookRow {
    pub record: HookRecord,
    /// Sequences handed out so far (the last one).
    pub head_sequence: u64,
}

/// A replay's (or resend's) progress, as the projection knows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReplayRow {
    pub replay_id: String,
    pub hook_id: String,
    pub from_offset: u64,
    pub to_offset: u64,
    pub matched: u64,
    pub scanned_through: u64,
    /// Entries appended to the hook's sequence so far.
    pub queued: u64,
    pub first_sequence: Option<u64>,
    pub last_sequence: Option<u64>,
    pub created_at_ms: i64,
}

impl ReplayRow {
    pub fn scanning(&self) -> bool {
        self.scanned_through < self.to_offset
    }
}

/// Wakes a hook's lane when its head moves.
#[derive(Default)]
pub struct HookSignal {
    head: AtomicU64,
    pub notify: tokio::sync::Notify,
}

impl HookSignal {
    pub fn head(&self) -> u64 {
        self.head.load(AtomicOrdering::Acquire)
    }
}

/// The read side: hook configurations (cloned only when one changes) and per-hook heads.
pub struct Hooks {
    records: RwLock<Arc<BTreeMap<String, HookRecord>>>,
    replays: RwLock<Arc<BTreeMap<String, ReplayRow>>>,
    signals: Mutex<HashMap<String, Arc<HookSignal>>>,
    /// Bumped whenever a configuration changes, so the sender re-reads the hooks.
    config_version: tokio::sync::watch::Sender<u64>,
}

impl Hooks {
    pub fn snapshot(&self) -> Arc<BTreeMap<String, HookRecord>> {
        self.records.read().expect("hooks lock").clone()
    }

    pub fn get(&self, id: &str) -> Option<HookRecord> {
        self.records.read().expect("hooks lock").get(id).cloned()
    }

    pub fn replays(&self) -> Arc<BTreeMap<String, ReplayRow>> {
        self.replays.read().expect("replays lock").clone()
    }

    pub fn signal(&self, id: &str) -> Arc<HookSignal> {
        self.signals
            .lock()
            .expect("signals lock")
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    pub fn head_sequence(&self, id: &str) -> u64 {
        self.signal(id).head()
    }

    pub fn config_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.config_version.subscribe()
    }
}

#[derive(Default, Clone)]
struct MatchState {
    users: HashMap<String, UserRecord>,
    hooks: BTreeMap<String, HookRow>,
    replays: BTreeMap<String, ReplayRow>,
    /// event type → ids of hooks subscribed to it.
    by_type: HashMap<String, Vec<String>>,
}

impl MatchState {
    fn reindex(&mut self) {
        self.by_type.clear();
        for (id, row) in &self.hooks {
            for t in &row.record.events {
                self.by_type.entry(t.clone()).or_default().push(id.clone());
            }
        }
    }

    fn load(db: &Db) -> Result<MatchState, JournalError> {
        let txn = db.begin_read()?;
        let mut state = MatchState::default();
        match txn.open_table(HOOKS) {
            Ok(table) => {
                for item in table.iter()? {
                    let (_, v) = item?;
                    let row: HookRow = serde_json::from_slice(v.value())
                        .map_err(|e| JournalError::Corrupt(format!("hook row: {e}")))?;
                    state.hooks.insert(row.record.id.clone(), row);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match txn.open_table(HOOK_REPLAYS) {
            Ok(table) => {
                for item in table.iter()? {
                    let (_, v) = item?;
                    let row: ReplayRow = serde_json::from_slice(v.value())
                        .map_err(|e| JournalError::Corrupt(format!("replay row: {e}")))?;
                    state.replays.insert(row.replay_id.clone(), row);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match txn.open_table(HOOK_USERS) {
            Ok(table) => {
                for item in table.iter()? {
                    let (_, v) = item?;
                    let user: UserRecord = serde_json::from_slice(v.value())
                        .map_err(|e| JournalError::Corrupt(format!("hooks user row: {e}")))?;
                    state.users.insert(user.id.clone(), user);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        state.reindex();
        Ok(state)
    }
}

pub struct HooksProjector {
    state: MatchState,
    dirty_users: BTreeSet<String>,
    dirty_hooks: BTreeSet<String>,
    deleted_hooks: BTreeSet<String>,
    /// Replays of deleted hooks: nothing will ever deliver them, so their rows go too.
    deleted_replays: BTreeSet<String>,
    dirty_replays: BTreeSet<String>,
    replays_changed: bool,
    entries: Vec<(String, u64, u64)>,
    config_changed: bool,
    /// Heads to publish once durable.
    pending_heads: BTreeMap<String, u64>,
    published: Arc<Hooks>,
}

impl HooksProjector {
    pub fn load(db: &Db) -> Result<(HooksProjector, Arc<Hooks>), JournalError> {
        let state = MatchState::load(db)?;
        let records = state
            .hooks
            .iter()
            .map(|(id, row)| (id.clone(), row.record.clone()))
            .collect();
        let (config_version, _) = tokio::sync::watch::channel(0);
        let hooks = Arc::new(Hooks {
            records: RwLock::new(Arc::new(records)),
            replays: RwLock::new(Arc::new(state.replays.clone())),
            signals: Mutex::new(HashMap::new()),
            config_version,
        });
        for (id, row) in &state.hooks {
            hooks
                .signal(id)
                .head
                .store(row.head_sequence, AtomicOrdering::Release);
        }
        let projector = HooksProjector {
            state,
            dirty_users: BTreeSet::new(),
            dirty_hooks: BTreeSet::new(),
            deleted_hooks: BTreeSet::new(),
            deleted_replays: BTreeSet::new(),
            dirty_replays: BTreeSet::new(),
            replays_changed: false,
            entries: Vec::new(),
            config_changed: false,
            pending_heads: BTreeMap::new(),
            published: hooks.clone(),
        };
        Ok((projector, hooks))
    }

    fn apply_internal(&mut self, entry: &Envelope) -> Result<(), serde_json::Error> {
        let hooks = &mut self.state.hooks;
        match entry.kind.as_str() {
            internal::USER_UPSERTED => {
                let user: UserRecord = serde_json::from_slice(&entry.payload)?;
                self.dirty_users.insert(user.id.clone());
                self.state.users.insert(user.id.clone(), user);
                return Ok(());
            }
            internal::HOOK_CREATED => {
                let record: HookRecord = serde_json::from_slice(&entry.payload)?;
                let id = record.id.clone();
                self.deleted_hooks.remove(&id);
                hooks.insert(
                    id.clone(),
                    HookRow {
                        record,
                        head_sequence: 0,
                    },
                );
                self.dirty_hooks.insert(id);
                self.state.reindex();
            }
            internal::HOOK_UPDATED => {
                let update: HookUpdate = serde_json::from_slice(&entry.payload)?;
                let Some(row) = hooks.get_mut(&update.id) else {
                    return Ok(());
                };
                let r = &mut row.record;
                if let Some(url) = update.target_url {
                    r.target_url = Some(url);
                }
                let reindex = update.events.is_some();
                if let Some(events) = update.events {
                    r.events = events;
                }
                if let Some(description) = update.description {
                    r.description = description;
                }
                r.updated_at_ms = update.at_ms;
                self.dirty_hooks.insert(update.id);
                if reindex {
                    self.state.reindex();
                }
            }
            internal::HOOK_STATE_CHANGED => {
                let change: HookStateChange = serde_json::from_slice(&entry.payload)?;
                let Some(row) = hooks.get_mut(&change.id) else {
                    return Ok(());
                };
                row.record.state = change.state;
                row.record.state_reason = change.reason;
                row.record.updated_at_ms = change.at_ms;
                self.dirty_hooks.insert(change.id);
            }
            internal::HOOK_SECRET_ROTATED => {
                let rotated: HookSecretRotated = serde_json::from_slice(&entry.payload)?;
                let Some(row) = hooks.get_mut(&rotated.id) else {
                    return Ok(());
                };
                let r = &mut row.record;
                r.previous_secret = Some(std::mem::replace(&mut r.secret, rotated.secret));
                r.previous_secret_expires_at_ms = Some(rotated.previous_secret_expires_at_ms);
                r.updated_at_ms = rotated.at_ms;
                self.dirty_hooks.insert(rotated.id);
            }
            internal::REPLAY_REQUESTED => {
                let req: internal::ReplayRequested = serde_json::from_slice(&entry.payload)?;
                let row = ReplayRow {
                    replay_id: req.replay_id.clone(),
                    hook_id: req.hook_id,
                    from_offset: req.from_offset,
                    to_offset: req.to_offset,
                    matched: req.matched,
                    scanned_through: req.from_offset.saturating_sub(1),
                    queued: 0,
                    first_sequence: None,
                    last_sequence: None,
                    created_at_ms: req.at_ms,
                };
                self.state.replays.insert(req.replay_id.clone(), row);
                self.dirty_replays.insert(req.replay_id);
                self.replays_changed = true;
                return Ok(());
            }
            internal::REPLAY_BATCH => {
                let batch: internal::ReplayBatch = serde_json::from_slice(&entry.payload)?;
                self.apply_replay_batch(batch);
                return Ok(());
            }
            internal::HOOK_DELETED => {
                let deleted: HookDeleted = serde_json::from_slice(&entry.payload)?;
                if hooks.remove(&deleted.id).is_some() {
                    self.dirty_hooks.remove(&deleted.id);
                    let replays = &mut self.state.replays;
                    let gone: Vec<String> = replays
                        .values()
                        .filter(|r| r.hook_id == deleted.id)
                        .map(|r| r.replay_id.clone())
                        .collect();
                    for id in gone {
                        replays.remove(&id);
                        self.dirty_replays.remove(&id);
                        self.deleted_replays.insert(id);
                        self.replays_changed = true;
                    }
                    self.deleted_hooks.insert(deleted.id);
                    self.state.reindex();
                }
            }
            _ => return Ok(()),
        }
        self.config_changed = true;
        Ok(())
    }

    /// Gives each offset of the batch the hook's next sequence (whatever the hook's state: a
    /// replay is explicit), and advances the replay's progress.
    fn apply_replay_batch(&mut self, batch: internal::ReplayBatch) {
        let row = self
            .state
            .replays
            .entry(batch.replay_id.clone())
            .or_insert_with(|| ReplayRow {
                replay_id: batch.replay_id.clone(),
                hook_id: batch.hook_id.clone(),
                from_offset: batch.offsets.iter().copied().min().unwrap_or(0),
                to_offset: batch.scanned_through,
                matched: batch.offsets.len() as u64,
                scanned_through: batch.scanned_through,
                queued: 0,
                first_sequence: None,
                last_sequence: None,
                created_at_ms: batch.at_ms,
            });
        row.scanned_through = row.scanned_through.max(batch.scanned_through);
        if let Some(hook) = self.state.hooks.get_mut(&batch.hook_id) {
            for offset in &batch.offsets {
                hook.head_sequence += 1;
                let seq = hook.head_sequence;
                self.entries.push((batch.hook_id.clone(), seq, *offset));
                row.first_sequence.get_or_insert(seq);
                row.last_sequence = Some(seq);
                row.queued += 1;
            }
            if !batch.offsets.is_empty() {
                self.pending_heads
                    .insert(batch.hook_id.clone(), hook.head_sequence);
                self.dirty_hooks.insert(batch.hook_id.clone());
            }
        }
        self.dirty_replays.insert(batch.replay_id);
        self.replays_changed = true;
    }

    fn match_public(&mut self, entry: &Envelope) {
        let Some(event_type) = catalog::lookup(&entry.kind) else {
            return;
        };
        let Some(ids) = self.state.by_type.get(event_type.name) else {
            return;
        };
        for id in ids {
            let Some(row) = self.state.hooks.get_mut(id) else {
                continue;
            };
            if row.record.state == HookState::Suspended {
                continue;
            }
            let Some(user) = self.state.users.get(&row.record.owner_user_id) else {
                continue;
            };
            let permissions = RegistryState::user_permissions(user);
            let decision = visibility::decide(
                event_type,
                entry.assigned_user_id.as_deref(),
                user,
                permissions,
                true,
            );
            if decision == Decision::OutOfScope {
                continue;
            }
            row.head_sequence += 1;
            self.entries
                .push((id.clone(), row.head_sequence, entry.offset));
            self.pending_heads.insert(id.clone(), row.head_sequence);
            self.dirty_hooks.insert(id.clone());
        }
    }
}

impl Projector for HooksProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, entry: &Envelope) {
        if internal::is_internal(&entry.kind) {
            if let Err(e) = self.apply_internal(entry) {
                tracing::error!(offset = entry.offset, error = %e, "unreadable hook event");
            }
        } else {
            self.match_public(entry);
        }
    }

    fn take_writes(&mut self) -> Option<WriteFn> {
        if self.dirty_hooks.is_empty()
            && self.dirty_users.is_empty()
            && self.deleted_hooks.is_empty()
            && self.dirty_replays.is_empty()
            && self.deleted_replays.is_empty()
        {
            return None;
        }
        let rows: Vec<(String, Vec<u8>)> = std::mem::take(&mut self.dirty_hooks)
            .into_iter()
            .filter_map(|id| {
                Some((
                    id.clone(),
                    serde_json::to_vec(self.state.hooks.get(&id)?).ok()?,
                ))
            })
            .collect();
        let users: Vec<(String, Vec<u8>)> = std::mem::take(&mut self.dirty_users)
            .into_iter()
            .filter_map(|id| {
                Some((
                    id.clone(),
                    serde_json::to_vec(self.state.users.get(&id)?).ok()?,
                ))
            })
            .collect();
        let deleted: Vec<String> = std::mem::take(&mut self.deleted_hooks)
            .into_iter()
            .collect();
        let replays: Vec<(String, Vec<u8>)> = std::mem::take(&mut self.dirty_replays)
            .into_iter()
            .filter_map(|id| {
                Some((
                    id.clone(),
                    serde_json::to_vec(self.state.replays.get(&id)?).ok()?,
                ))
            })
            .collect();
        let deleted_replays: Vec<String> = std::mem::take(&mut self.deleted_replays)
            .into_iter()
            .collect();
        let entries = std::mem::take(&mut self.entries);
        Some(Box::new(move |txn: &WriteTransaction| {
            let mut t = txn.open_table(HOOKS)?;
            for (id, row) in &rows {
                t.insert(id.as_str(), row.as_slice())?;
            }
            for id in &deleted {
                t.remove(id.as_str())?;
            }
            let mut t = txn.open_table(HOOK_USERS)?;
            for (id, row) in &users {
                t.insert(id.as_str(), row.as_slice())?;
            }
            let mut t = txn.open_table(HOOK_REPLAYS)?;
            for (id, row) in &replays {
                t.insert(id.as_str(), row.as_slice())?;
            }
            for id in &deleted_replays {
                t.remove(id.as_str())?;
            }
            let mut t = txn.open_table(HOOK_ENTRIES)?;
            for (id, seq, offset) in &entries {
                t.insert((id.as_str(), *seq), *offset)?;
            }
            Ok(())
        }))
    }

    fn on_durable(&mut self) {
        if std::mem::take(&mut self.config_changed) {
            let records = self
                .state
                .hooks
                .iter()
                .map(|(id, row)| (id.clone(), row.record.clone()))
                .collect();
            *self.published.records.write().expect("hooks lock") = Arc::new(records);
            self.published.config_version.send_modify(|v| *v += 1);
        }
        if std::mem::take(&mut self.replays_changed) {
            *self.published.replays.write().expect("replays lock") =
                Arc::new(self.state.replays.clone());
        }
        for (id, head) in std::mem::take(&mut self.pending_heads) {
            let signal = self.published.signal(&id);
            signal.head.store(head, AtomicOrdering::Release);
            signal.notify.notify_one();
        }
    }

    fn reload(&mut self, db: &Db) -> Result<(), JournalError> {
        self.state = MatchState::load(db)?;
        self.dirty_users.clear();
        self.dirty_hooks.clear();
        self.deleted_hooks.clear();
        self.dirty_replays.clear();
        self.deleted_replays.clear();
        self.replays_changed = true;
        self.entries.clear();
        self.pending_heads.clear();
        self.config_changed = true;
        Ok(())
    }
}

/// Up to `max` entries of `hook_id` with sequence ≥ `from`, as `(sequence, offset)`.
pub fn read_entries(
    db: &Db,
    hook_id: &str,
    from: u64,
    max: usize,
) -> Result<Vec<(u64, u64)>, JournalError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(HOOK_ENTRIES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for item in table.range((hook_id, from.max(1))..=(hook_id, u64::MAX))? {
        if out.len() >= max {
            break;
        }
        let (k, v) = item?;
        out.push((k.value().1, v.value()));
    }
    Ok(out)
}

/// Removes the projection's tables (for a rebuild). The sender's cursors stay: matching is
/// deterministic, so the rebuilt sequences are the same ones the cursors point into.
pub fn wipe(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.delete_table(HOOKS)?;
    txn.delete_table(HOOK_USERS)?;
    txn.delete_table(HOOK_ENTRIES)?;
    txn.delete_table(HOOK_REPLAYS)?;
    Ok(())
}

/// A deterministic dump of the projection (hooks with heads, and every entry), for rebuild
/// checks.
pub fn dump_tables(db: &Db) -> Result<String, JournalError> {
    let state = MatchState::load(db)?;
    let mut out = String::new();
    for row in state.replays.values() {
        out.push_str(&format!(
            "replay {}\n",
            serde_json::to_string(row).unwrap_or_default()
        ));
    }
    for row in state.hooks.values() {
        out.push_str(&format!(
            "hook {}\n",
            serde_json::to_string(row).unwrap_or_default()
        ));
        for (seq, offset) in read_entries(db, &row.record.id, 1, usize::MAX)? {
            out.push_str(&format!("entry {} {seq} {offset}\n", row.record.id));
        }
    }
    Ok(out)
}
