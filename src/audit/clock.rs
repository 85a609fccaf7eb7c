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
///
/// The writer stamps every record with it, so years 0 to 9999 are written digit by digit
/// (through the proleptic Gregorian calendar, as `time` counts); other times go the general
/// way, which gave a tenth of the writer's work per record when it was the only one.
pub fn format_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&year) {
        return format_time_general(micros);
    }
    let of_day = secs.rem_euclid(86_400);
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, of_day / 3600);
    put(14, 2, of_day / 60 % 60);
    put(17, 2, of_day % 60);
    put(20, 6, frac);
    out.iter().map(|&b| char::from(b)).collect()
}

/// Year, month and day of a day counted from 1970-01-01 (proleptic Gregorian): the
/// well-known era arithmetic, exact for every `i64` day that fits the intermediate sums.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era.saturating_mul(400) + i64::from(month <= 2);
    (year, month, day)
}

/// [`format_time`] through the `time` crate, for any time it can represent.
fn format_time_general(micros: i64) -> String {
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

    proptest::proptest! {
        #[test]
        fn digit_by_digit_matches_the_general_way(micros in proptest::prelude::any::<i64>()) {
            proptest::prop_assert_eq!(format_time(micros), format_time_general(micros));
        }

        #[test]
        fn digit_by_digit_matches_for_years_0_to_9999(
            micros in -62_167_219_200_000_000i64..253_402_300_800_000_000
        ) {
            proptest::prop_assert_eq!(format_time(micros), format_time_general(micros));
        }
    }

    #[test]
    fn calendar_edges_match_the_general_way() {
        let day = 86_400_000_000i64;
        for t in [
            0,
            -1,
            day - 1,
            951_782_400_000_000,     // 2000-02-29
            951_868_800_000_000,     // 2000-03-01
            4_107_542_400_000_000,   // 2100-03-01 (2100 is no leap year)
            -62_167_219_200_000_000, // 0000-01-01
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
            253_402_300_800_000_000, // 10000-01-01: the general way
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(format_time(t), format_time_general(t), "{t}");
        }
    }

    #[test]
    fn text_order_follows_time_order() {
        let a = format_time(1_714_564_800_000_001);
        let b = format_time(1_714_564_800_000_010);
        let c = format_time(1_714_564_801_000_000);
        assert!(a < b && b < c);
    }
}
