//! Wall-clock time as the wire contract wants it: unix milliseconds inside, RFC 3339 UTC with
//! milliseconds (`2026-12-04T09:20:51.123Z`) outside.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the unix epoch, now.
pub fn now_ms() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    (nanos / 1_000_000) as i64
}

/// Formats unix milliseconds as RFC 3339 UTC with exactly three fractional digits.
pub fn format_ms(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            millis
        ),
        // Out of the representable range: only reachable with corrupted input, never panic.
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: what [`format_ms`] can render.
const MIN_RFC3339_MS: i64 = -62_167_219_200_000;
const MAX_RFC3339_MS: i64 = 253_402_300_799_999;

/// Parses an RFC 3339 time (any offset) into unix milliseconds; `None` also when the instant
/// falls outside years 0000..=9999 in UTC (`9999-12-31T23:59:59-01:00`), which cannot be shown.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .filter(|ms| (MIN_RFC3339_MS..=MAX_RFC3339_MS).contains(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_in_utc() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_796_376_051_123), "2026-12-04T09:20:51.123Z");
    }

    #[test]
    fn parses_offsets_and_round_trips() {
        let ms = parse_rfc3339_ms("2026-12-04T10:20:51.123+01:00").unwrap();
        assert_eq!(format_ms(ms), "2026-12-04T09:20:51.123Z");
        assert_eq!(parse_rfc3339_ms("2026-12-04"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn parses_only_what_formats() {
        // Found by fuzzing: the offset moved these outside 0000..=9999 UTC, and the first was
        // shown as 1970-01-01T00:00:00.000Z, the second as year -001.
        assert_eq!(parse_rfc3339_ms("9999-12-31T23:59:59.999-23:59"), None);
        assert_eq!(parse_rfc3339_ms("0000-01-01T00:00:00+23:59"), None);
        for text in ["0000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"] {
            assert_eq!(format_ms(parse_rfc3339_ms(text).unwrap()), text);
        }
    }
}
