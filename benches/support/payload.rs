//! Event bodies of realistic size.

use bytes::Bytes;

/// Events per `POST /v1/events` when pre-loading (the API's maximum).
pub const INGEST_BATCH: usize = 1_000;

/// The `data` object of event `n`: a customer-like record of realistic size (~200 bytes), with
/// `id` `<prefix>_<n>` and a `notes` field naming the bench.
pub fn data_json(prefix: &str, n: u64, notes: &str) -> String {
    format!(
        concat!(
            r#"{{"id":"{prefix}_{n:010}","first_name":"Ada","last_name":"Lovelace","#,
            r#""email":"ada.{n:010}@example.com","phone_number":"+1555{p:07}","#,
            r#""city":"London","country":"GB","notes":"{notes}"}}"#
        ),
        prefix = prefix,
        n = n,
        p = n % 10_000_000,
        notes = notes
    )
}

/// Bodies of `count` events of `kind`, [`INGEST_BATCH`] per request, each with its own `data.id`
/// (`<prefix>_<i>`); each body with its number of events.
pub fn batch_bodies(kind: &str, prefix: &str, notes: &str, count: usize) -> Vec<(usize, Bytes)> {
    let mut out = Vec::new();
    let mut n = 0usize;
    while n < count {
        let len = INGEST_BATCH.min(count - n);
        let items: Vec<String> = (n..n + len)
            .map(|i| {
                format!(
                    r#"{{"type":"{kind}","data":{}}}"#,
                    data_json(prefix, i as u64, notes)
                )
            })
            .collect();
        out.push((len, Bytes::from(format!("[{}]", items.join(",")))));
        n += len;
    }
    out
}
