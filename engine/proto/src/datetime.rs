//! The proleptic Gregorian calendar for Unix time, and XEP-0082 timestamps: the one calendar
//! of the workspace (the router's delay stamps, the TLS certificate dates, the results folder
//! names of the tools).
//!
//! The algorithms are Howard Hinnant's ("chrono-compatible low-level date algorithms"): count
//! 400-year eras of 146,097 days from 0000-03-01, so the leap day is the last day of an era's
//! year. What it does not do: time zones, leap seconds, clocks (callers pass the time).

/// Days from 0000-03-01 to 1970-01-01.
const EPOCH_SHIFT_DAYS: i64 = 719_468;
/// Days in 400 Gregorian years.
const ERA_DAYS: i64 = 146_097;

/// (year, month 1-12, day 1-31) of `days` since 1970-01-01 (negative: before it).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + EPOCH_SHIFT_DAYS;
    let era = shifted.div_euclid(ERA_DAYS);
    let day_of_era = shifted.rem_euclid(ERA_DAYS);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // Lossless: a day is 1..=31 and a month 1..=12.
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * ERA_DAYS + day_of_era - EPOCH_SHIFT_DAYS
}

/// Appends `YYYY-MM-DDThh:mm:ss.sssZ` for Unix milliseconds (XEP-0082 DateTime, UTC).
pub fn push_xep0082(unix_ms: u64, out: &mut Vec<u8>) {
    // Lossless: u64 milliseconds / 86,400,000 fits in i64.
    let (year, month, day) = civil_from_days((unix_ms / 86_400_000) as i64);
    let ms_of_day = unix_ms % 86_400_000;
    push_digits(out, year.max(0) as u64, 4);
    out.push(b'-');
    push_digits(out, u64::from(month), 2);
    out.push(b'-');
    push_digits(out, u64::from(day), 2);
    out.push(b'T');
    push_digits(out, ms_of_day / 3_600_000, 2);
    out.push(b':');
    push_digits(out, ms_of_day / 60_000 % 60, 2);
    out.push(b':');
    push_digits(out, ms_of_day / 1_000 % 60, 2);
    out.push(b'.');
    push_digits(out, ms_of_day % 1_000, 3);
    out.push(b'Z');
}

fn push_digits(out: &mut Vec<u8>, value: u64, width: u32) {
    for i in (0..width).rev() {
        // Lossless: a single decimal digit.
        out.push(b'0' + (value / 10u64.pow(i) % 10) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(unix_ms: u64) -> String {
        let mut out = Vec::new();
        push_xep0082(unix_ms, &mut out);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn timestamps_are_xep_0082_utc() {
        assert_eq!(stamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(stamp(1_795_888_800_000), "2026-11-28T18:00:00.000Z");
        assert_eq!(stamp(951_782_400_000 + 1), "2000-02-29T00:00:00.001Z");
        assert_eq!(stamp(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(stamp(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(stamp(1_704_067_199_123), "2023-12-31T23:59:59.123Z");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Days count up one by one: the date advances by exactly one day, and converts back.
        let mut last = civil_from_days(-1);
        for days in 0..ERA_DAYS {
            let now = civil_from_days(days);
            let next_day = (last.0, last.1, last.2 + 1);
            let next_month = (last.0, last.1 + 1, 1);
            let next_year = (last.0 + 1, 1, 1);
            assert!(
                now == next_day || now == next_month || now == next_year,
                "{last:?} -> {now:?}"
            );
            assert_eq!(days_from_civil(now.0, now.1, now.2), days);
            last = now;
        }
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(1600, 3, 1), -135_080);
    }
}
