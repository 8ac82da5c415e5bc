//! The registry projection: users and API keys, derived from the `internal.*` journal events.
//! The projector thread keeps a working copy, commits changed rows with its checkpoint, then
//! publishes an immutable snapshot that request handlers read without locking the writer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use crate::journal::Db;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::Projector;
use crate::domain::internal::{self, KeyRecord, KeyRevoked, UserRecord};
use crate::domain::permission::PermissionSet;
use crate::journal::{Envelope, JournalError, WriteFn};

pub const NAME: &str = "registry";
/// `user id → JSON UserRecord`.
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_users");
/// `key id → JSON KeyRecord`.
pub(crate) const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("registry_keys");

/// One consistent view of all users and keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryState {
    pub users: BTreeMap<String, UserRecord>,
    pub keys: BTreeMap<String, KeyRecord>,
    key_by_hash: HashMap<String, String>,
}

/// A caller that presented a valid key.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: UserRecord,
    pub key: KeyRecord,
    /// key ∩ the user's current permissions (owners hold all).
    pub permissions: PermissionSet,
}

impl RegistryState {
    /// The user's current permissions: everything for an owner.
    pub fn user_permissions(user: &UserRecord) -> PermissionSet {
        if user.owner {
            PermissionSet::all()
        } else {
            PermissionSet::parse_names(&user.permissions).unwrap_or_default()
        }
    }

    /// Resolves a key hash to an active key of an active user.
    pub fn authenticate(&self, key_hash: &str) -> Option<Principal> {
        let key = self.keys.get(self.key_by_hash.get(key_hash)?)?;
        if key.revoked_at_ms.is_some() {
            return None;
        }
        let user = self.users.get(&key.user_id)?;
        if !user.active {
            return None;
        }
        let user_perms = Self::user_permissions(user);
        let key_perms = match &key.permissions {
            Some(names) => PermissionSet::parse_names(names).unwrap_or_default(),
            None => PermissionSet::all(),
        };
        Some(Principal {
            user: user.clone(),
            key: key.clone(),
            permissions: user_perms.intersect(key_perms),
        })
    }

    pub fn active_owner_count(&self) -> usize {
        self.users.values().filter(|u| u.owner && u.active).count()
    }

    fn apply(&mut self, entry: &Envelope) -> Result<Change, serde_json::Error> {
        match entry.kind.as_str() {
            internal::USER_UPSERTED => {
                let user: UserRecord = serde_json::from_slice(&entry.payload)?;
                let id = user.id.clone();
                self.users.insert(id.clone(), user);
                Ok(Change::User(id))
            }
            internal::KEY_CREATED => {
                let key: KeyRecord = serde_json::from_slice(&entry.payload)?;
                let id = key.id.clone();
                self.key_by_hash.insert(key.hash.clone(), id.clone());
                self.keys.insert(id.clone(), key);
                Ok(Change::Key(id))
            }
            internal::KEY_REVOKED => {
                let revoked: KeyRevoked = serde_json::from_slice(&entry.payload)?;
                match self.keys.get_mut(&revoked.id) {
                    Some(key) if key.revoked_at_ms.is_none() => {
                        key.revoked_at_ms = Some(revoked.revoked_at_ms);
                        Ok(Change::Key(revoked.id))
                    }
                    _ => Ok(Change::None),
                }
            }
            _ => Ok(Change::None),
        }
    }

    fn load(db: &Db) -> Result<RegistryState, JournalError> {
        let txn = db.begin_read()?;
        let mut state = RegistryState::default();
        match txn.open_table(USERS) {
            Ok(table) => {
                for item in table.iter()? {
                    let (_, v) = item?;
                    let user: UserRecord = serde_json::from_slice(v.value())
                        .map_err(|e| JournalError::Corrupt(format!("registry user row: {e}")))?;
                    state.users.insert(user.id.clone(), user);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match txn.open_table(KEYS) {
            Ok(table) => {
                for item in table.iter()? {
                    let (_, v) = item?;
                    let key: KeyRecord = serde_json::from_slice(v.value())
                        .map_err(|e| JournalError::Corrupt(format!("registry key row: {e}")))?;
                    state.key_by_hash.insert(key.hash.clone(), key.id.clone());
                    state.keys.insert(key.id.clone(), key);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(state)
    }
}

enum Change {
    None,
    User(String),
    Key(String),
}

/// The read side handed to request handlers.
#[derive(Clone)]
pub struct Registry {
    snapshot: Arc<RwLock<Arc<RegistryState>>>,
}

impl Registry {
    pub fn snapshot(&self) -> Arc<RegistryState> {
        self.snapshot.read().expect("registry lock").clone()
    }
}

pub struct RegistryProjector {
    state: RegistryState,
    dirty_users: BTreeSet<String>,
    dirty_keys: BTreeSet<String>,
    /// Rows were committed since the last publish.
    unpublished: bool,
    published: Registry,
}

impl RegistryProjector {
    /// Loads the committed projection; returns the projector and its read side.
    pub fn load(db: &Db) -> Result<(RegistryProjector, Registry), JournalError> {
        let state = RegistryState::load(db)?;
        let registry = Registry {
            snapshot: Arc::new(RwLock::new(Arc::new(state.clone()))),
        };
        let projector = RegistryProjector {
            state,
            dirty_users: BTreeSet::new(),
            dirty_keys: BTreeSet::new(),
            unpublished: false,
            published: registry.clone(),
        };
        Ok((projector, registry))
    }
}

impl Projector for RegistryProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, entry: &Envelope) {
        if !internal::is_internal(&entry.kind) {
            return;
        }
        match self.state.apply(entry) {
            Ok(Change::User(id)) => {
                self.dirty_users.insert(id);
            }
            Ok(Change::Key(id)) => {
                self.dirty_keys.insert(id);
            }
            Ok(Change::None) => {}
            // The daemon wrote this payload itself; a bad one is logged, never fatal.
            Err(e) => {
                tracing::error!(offset = entry.offset, error = %e, "unreadable registry event")
            }
        }
    }

    fn take_writes(&mut self) -> Option<WriteFn> {
        if self.dirty_users.is_empty() && self.dirty_keys.is_empty() {
            return None;
        }
        self.unpublished = true;
        let users: Vec<(String, Vec<u8>)> = std::mem::take(&mut self.dirty_users)
            .into_iter()
            .filter_map(|id| {
                let row = serde_json::to_vec(self.state.users.get(&id)?).ok()?;
                Some((id, row))
            })
            .collect();
        let keys: Vec<(String, Vec<u8>)> = std::mem::take(&mut self.dirty_keys)
            .into_iter()
            .filter_map(|id| {
                let row = serde_json::to_vec(self.state.keys.get(&id)?).ok()?;
                Some((id, row))
            })
            .collect();
        Some(Box::new(move |txn: &WriteTransaction| {
            let mut t = txn.open_table(USERS)?;
            for (id, row) in &users {
                t.insert(id.as_str(), row.as_slice())?;
            }
            let mut t = txn.open_table(KEYS)?;
            for (id, row) in &keys {
                t.insert(id.as_str(), row.as_slice())?;
            }
            Ok(())
        }))
    }

    fn on_durable(&mut self) {
        if std::mem::take(&mut self.unpublished) {
            *self.published.snapshot.write().expect("registry lock") = Arc::new(self.state.clone());
        }
    }

    fn reload(&mut self, db: &Db) -> Result<(), JournalError> {
        self.state = RegistryState::load(db)?;
        self.dirty_users.clear();
        self.dirty_keys.clear();
        self.unpublished = false;
        Ok(())
    }
}

/// Removes the registry's tables (for a rebuild).
pub fn wipe(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.delete_table(USERS)?;
    txn.delete_table(KEYS)?;
    Ok(())
}

/// A deterministic text dump of the registry tables, for rebuild checks and debugging.
pub fn dump_tables(db: &Db) -> Result<String, JournalError> {
    let state = RegistryState::load(db)?;
    let mut out = String::new();
    for user in state.users.values() {
        out.push_str(&format!(
            "user {}\n",
            serde_json::to_string(user).unwrap_or_default()
        ));
    }
    for key in state.keys.values() {
        out.push_str(&format!(
            "key {}\n",
            serde_json::to_string(key).unwrap_or_default()
        ));
    }
    Ok(out)
}
