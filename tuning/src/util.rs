//! Small helpers shared by the modules: thousands separators for operator-facing numbers and a
//! UTC timestamp for result folder names (no date crate is declared for this crate).
//!
//! Not here: anything that touches the OS beyond reading the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// `1234567` -> `"1,234,567"`; `u64::MAX` -> `"unlimited"` (how "no cap" is shown).
pub fn thousands(n: u64) -> String {
    if n == u64::MAX {
        return "unlimited".to_string();
    }
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as a short human figure: `4.3 GiB`, `512 MiB`, `900 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Current UTC time as `YYYYMMDD-HHMMSS` (the results/ folder convention).
pub fn utc_stamp() -> String {
    utc_stamp_at(SystemTime::now())
}

/// `time` as `YYYYMMDD-HHMMSS`, UTC: how the tools that write results/ name their folders
/// (rookery-load uses it too).
pub fn utc_stamp_at(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = rookery_proto::datetime::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(19_936), "19,936");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(u64::MAX), "unlimited");
    }

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(
            human_bytes(4 * 1024 * 1024 * 1024 + 300 * 1024 * 1024),
            "4.3 GiB"
        );
    }

    #[test]
    fn stamp_matches_known_dates() {
        let at = |secs| utc_stamp_at(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "19700101-000000");
        // 2026-11-28 19:57:14 UTC
        assert_eq!(at(1_795_895_834), "20261128-195714");
        // leap day 2024-02-29 12:00:00
        assert_eq!(at(1_709_208_000), "20240229-120000");
    }
}
