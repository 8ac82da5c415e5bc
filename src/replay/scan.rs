//! Which offsets of a journal range a hook would receive now.

use crate::journal::Db;

use crate::domain::internal::HookRecord;
use crate::journal::{reader, JournalError};
use crate::projectors::registry::RegistryState;
use crate::sender::access::{self, Access};

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub offsets: Vec<u64>,
    pub matched: u64,
    /// The range is scanned up to here (inclusive).
    pub scanned_through: u64,
}

/// Scans `from..=to`, at most `max_scan` entries, collecting up to `keep_max` matching offsets
/// (and counting all matches; with `keep_max == 0` it only counts).
pub fn scan(
    db: &Db,
    registry: &RegistryState,
    hook: &HookRecord,
    from: u64,
    to: u64,
    max_scan: usize,
    keep_max: usize,
) -> Result<Scan, JournalError> {
    let mut out = Scan {
        scanned_through: from.saturating_sub(1),
        ..Scan::default()
    };
    if from > to {
        return Ok(out);
    }
    let span = usize::try_from(to - from + 1)
        .unwrap_or(usize::MAX)
        .min(max_scan);
    reader::scan_from(db, from, span, |e| {
        if e.offset > to {
            return false;
        }
        if matches!(access::check(registry, hook, &e), Access::Deliver { .. }) {
            out.matched += 1;
            if out.offsets.len() < keep_max {
                out.offsets.push(e.offset);
            } else if keep_max > 0 {
                // Batch full: stop before this one so the next scan starts here.
                out.matched -= 1;
                return false;
            }
        }
        out.scanned_through = e.offset;
        true
    })?;
    Ok(out)
}
