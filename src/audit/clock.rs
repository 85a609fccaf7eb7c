//! Record times: microseconds since the Unix epoch, written as RFC 3339 UTC with six decimals
//! (`2024-05-01T12:00:00.123456Z`) so the text sorts like the number.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Now, in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    (nanos / 1_000) as i64
}

/// `2024-05-01T12:00:00.123456Z` for a time in microseconds since the epoch.
pub fn format_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    match OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            frac
        ),
        // Out of the representable range: keep the number rather than lose it.
        Err(_) => format!("@{micros}"),
    }
}

/// Parses an RFC 3339 time (any offset, any precision) into microseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_microseconds_and_parses_back() {
        let t = 1_714_564_800_123_456; // 2024-05-01T12:00:00.123456Z
        let s = format_time(t);
        assert_eq!(s, "2024-05-01T12:00:00.123456Z");
        assert_eq!(parse_time(&s), Some(t));
    }

    #[test]
    fn parses_offsets_and_rejects_garbage() {
        assert_eq!(
            parse_time("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800_000_000)
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn text_order_follows_time_order() {
        let a = format_time(1_714_564_800_000_001);
        let b = format_time(1_714_564_800_000_010);
        let c = format_time(1_714_564_801_000_000);
        assert!(a < b && b < c);
    }
}
