//! `--since` / `--until` values: a duration back from now (`90s`, `15m`, `1h`, `2d`, `1w`,
//! combinations such as `1d12h`), an RFC 3339 time, a date (`2024-05-01`, midnight UTC), or
//! `now`.

use crate::audit::parse_time;

/// Resolves a time spec to microseconds since the epoch, relative to `now_us`.
pub fn parse_when(text: &str, now_us: i64) -> Result<i64, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now_us);
    }
    if let Some(t) = parse_time(text) {
        return Ok(t);
    }
    if let Some(t) = parse_date(text) {
        return Ok(t);
    }
    let ago = parse_duration(text).ok_or_else(|| {
        format!("`{text}` is not a time: use 30m, 1h, 2d, 1w, 2024-05-01 or an RFC 3339 time")
    })?;
    Ok(now_us.saturating_sub(ago))
}

/// `1h30m` → microseconds.
fn parse_duration(text: &str) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?.checked_mul(1_000_000)?)?;
    }
    // A trailing number without a unit is ambiguous: refuse it.
    digits.is_empty().then_some(total)
}

fn parse_date(text: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format).ok()?;
    let t = date.midnight().assume_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_564_800_000_000; // 2024-05-01T12:00:00Z

    #[test]
    fn relative_durations() {
        assert_eq!(parse_when("1h", NOW), Ok(NOW - 3_600_000_000));
        assert_eq!(parse_when("2d", NOW), Ok(NOW - 2 * 86_400_000_000));
        assert_eq!(parse_when("90s", NOW), Ok(NOW - 90_000_000));
        assert_eq!(parse_when("1w", NOW), Ok(NOW - 604_800_000_000));
        assert_eq!(parse_when("1h30m", NOW), Ok(NOW - 5_400_000_000));
        assert_eq!(parse_when("now", NOW), Ok(NOW));
    }

    #[test]
    fn absolute_times() {
        assert_eq!(parse_when("2024-05-01T12:00:00Z", 0), Ok(NOW));
        assert_eq!(parse_when("2024-05-01T14:00:00+02:00", 0), Ok(NOW));
        assert_eq!(parse_when("2024-05-01", 0), Ok(NOW - 12 * 3_600_000_000));
    }

    #[test]
    fn rejects_nonsense_with_a_hint() {
        for bad in [
            "",
            "5",
            "1y",
            "h",
            "yesterday",
            "-1h",
            "99999999999999999999d",
        ] {
            let err = parse_when(bad, NOW).unwrap_err();
            assert!(err.contains("30m"), "{bad}: {err}");
        }
    }
}
