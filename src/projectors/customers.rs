//! The customer view (SPEC §9): a projection of every `customer.created` / `customer.updated`
//! event in the journal, whatever its origin (`POST /v1/customers`, `POST /v1/events`). A
//! `created` sets the customer's fields; an `updated` merges its fields in (`null` clears one).
//! Indexes by normalized email, phone digits and external id serve `GET /v1/customers?...`.
//!
//! The projector keeps no copy of the customers in memory: it buffers a chunk's events and
//! merges them into the tables inside the commit transaction (reading each row there), so
//! memory stays bounded by the chunk whatever the number of customers, and state and
//! checkpoint are committed together like every projector's.

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Projector;
use crate::domain::customer::{self, index_keys};
use crate::journal::{Db, Envelope, JournalError, WriteFn};

pub const NAME: &str = "customers";
/// `customer id → JSON CustomerRow`.
pub const CUSTOMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("customers");
/// `(normalized email, customer id)`.
pub const BY_EMAIL: TableDefinition<(&str, &str), ()> = TableDefinition::new("customers_by_email");
/// `(phone digits, customer id)`.
pub const BY_PHONE: TableDefinition<(&str, &str), ()> = TableDefinition::new("customers_by_phone");
/// `(external id, customer id)`.
pub const BY_EXTERNAL: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("customers_by_external_id");

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CustomerRow {
    /// The customer's fields, `id` included.
    pub data: Map<String, Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The journal offset of the last event applied.
    pub offset: u64,
}

struct Pending {
    created: bool,
    id: String,
    fields: Map<String, Value>,
    timestamp_ms: i64,
    offset: u64,
}

#[derive(Default)]
pub struct CustomersProjector {
    pending: Vec<Pending>,
}

impl Projector for CustomersProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(&mut self, entry: &Envelope) {
        let created = match entry.kind.as_str() {
            customer::CREATED => true,
            customer::UPDATED => false,
            _ => return,
        };
        let Some(id) = entry.entity_id.clone() else {
            return;
        };
        match serde_json::from_slice::<Map<String, Value>>(&entry.payload) {
            Ok(fields) => self.pending.push(Pending {
                created,
                id,
                fields,
                timestamp_ms: entry.timestamp_ms,
                offset: entry.offset,
            }),
            // Ingest validated `data` as an object; anything else is not a customer.
            Err(e) => {
                tracing::warn!(offset = entry.offset, error = %e, "customer event without an object")
            }
        }
    }

    fn take_writes(&mut self) -> Option<WriteFn> {
        if self.pending.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut self.pending);
        Some(Box::new(move |txn: &WriteTransaction| {
            let mut tables = Tables {
                rows: txn.open_table(CUSTOMERS)?,
                email: txn.open_table(BY_EMAIL)?,
                phone: txn.open_table(BY_PHONE)?,
                external: txn.open_table(BY_EXTERNAL)?,
            };
            for p in pending {
                tables.apply(p)?;
            }
            Ok(())
        }))
    }

    fn on_durable(&mut self) {}

    fn reload(&mut self, _db: &Db) -> Result<(), JournalError> {
        self.pending.clear();
        Ok(())
    }
}

struct Tables<'t> {
    rows: Table<'t, &'static str, &'static [u8]>,
    email: Table<'t, (&'static str, &'static str), ()>,
    phone: Table<'t, (&'static str, &'static str), ()>,
    external: Table<'t, (&'static str, &'static str), ()>,
}

impl Tables<'_> {
    fn apply(&mut self, p: Pending) -> Result<(), redb::Error> {
        let old: Option<CustomerRow> = self
            .rows
            .get(p.id.as_str())?
            .and_then(|v| serde_json::from_slice(v.value()).ok());
        let mut row = match (&old, p.created) {
            (Some(old), false) => old.clone(),
            _ => CustomerRow {
                data: Map::new(),
                created_at_ms: old.as_ref().map_or(p.timestamp_ms, |o| o.created_at_ms),
                updated_at_ms: p.timestamp_ms,
                offset: p.offset,
            },
        };
        for (k, v) in p.fields {
            if v.is_null() {
                row.data.remove(&k);
            } else {
                row.data.insert(k, v);
            }
        }
        row.data.insert("id".into(), Value::String(p.id.clone()));
        row.updated_at_ms = p.timestamp_ms;
        row.offset = p.offset;
        let id = p.id.as_str();
        if let Some(old) = &old {
            let (e, ph, x) = index_keys(&old.data);
            if let Some(e) = e {
                self.email.remove((e.as_str(), id))?;
            }
            if let Some(ph) = ph {
                self.phone.remove((ph.as_str(), id))?;
            }
            if let Some(x) = x {
                self.external.remove((x.as_str(), id))?;
            }
        }
        let (e, ph, x) = index_keys(&row.data);
        if let Some(e) = e {
            self.email.insert((e.as_str(), id), ())?;
        }
        if let Some(ph) = ph {
            self.phone.insert((ph.as_str(), id), ())?;
        }
        if let Some(x) = x {
            self.external.insert((x.as_str(), id), ())?;
        }
        let bytes = serde_json::to_vec(&row).expect("customer rows serialise");
        self.rows.insert(id, bytes.as_slice())?;
        Ok(())
    }
}

/// One customer, as of the projection's checkpoint.
pub fn get(db: &Db, id: &str) -> Result<Option<CustomerRow>, JournalError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(CUSTOMERS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let row = table.get(id)?.map(|v| v.value().to_vec());
    row.map(|bytes| {
        serde_json::from_slice(&bytes)
            .map_err(|e| JournalError::Corrupt(format!("customer row {id}: {e}")))
    })
    .transpose()
}

/// Which index a search uses.
#[derive(Clone, Copy, Debug)]
pub enum Index {
    Email,
    Phone,
    ExternalId,
}

/// Ids of customers whose normalized `key` equals `value`, at most `max`.
pub fn find(db: &Db, index: Index, value: &str, max: usize) -> Result<Vec<String>, JournalError> {
    let definition = match index {
        Index::Email => BY_EMAIL,
        Index::Phone => BY_PHONE,
        Index::ExternalId => BY_EXTERNAL,
    };
    let txn = db.begin_read()?;
    let table = match txn.open_table(definition) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for item in table.range((value, "")..)? {
        let (k, _) = item?;
        let (key, id) = k.value();
        if key != value || out.len() >= max {
            break;
        }
        out.push(id.to_string());
    }
    Ok(out)
}

/// Removes the projection's tables (for a rebuild).
pub fn wipe(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.delete_table(CUSTOMERS)?;
    txn.delete_table(BY_EMAIL)?;
    txn.delete_table(BY_PHONE)?;
    txn.delete_table(BY_EXTERNAL)?;
    Ok(())
}
