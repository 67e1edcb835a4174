//! Byte counts and durations the way people write them: `"10 MiB"`,
//! `"1.5 MB"`, `"2h30m"`. Exact integer arithmetic, so `"1.5 KiB"` is 1536
//! and never 1535.99.

use std::time::Duration;

/// Unit names (matched case-insensitively) and their sizes in bytes.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// More decimals than this cannot name a whole number of bytes in practice.
const MAX_DECIMALS: usize = 20;

/// Why a size or duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("empty value")]
    Empty,
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("unknown unit `{0}`; expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")]
    UnknownByteUnit(String),
    #[error("`{0}` is not a whole number of bytes")]
    NotWhole(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
    #[error(
        "`{0}` is not a duration; write e.g. \"90m\", \"2h\", \"1d12h\" or minutes as an integer"
    )]
    BadDuration(String),
}

/// Parses a byte count: a bare integer (`"1048576"`) or a number with a
/// unit (`"10 MiB"`, `"1.5 MB"`; space optional, unit case-insensitive).
/// Decimal units are powers of 1000, binary (`KiB`...) powers of 1024.
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim());
    // `number` holds only digits and dots here.
    if number.matches('.').count() > 1 || !number.bytes().any(|b| b.is_ascii_digit()) {
        return Err(UnitError::NotANumber(text.to_string()));
    }
    let unit_bytes = if unit.is_empty() {
        1
    } else {
        BYTE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, bytes)| bytes)
            .ok_or_else(|| UnitError::UnknownByteUnit(unit.to_string()))?
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f.trim_end_matches('0')),
        None => (number, ""),
    };
    if fraction.len() > MAX_DECIMALS {
        return Err(UnitError::NotWhole(text.to_string()));
    }
    let too_large = || UnitError::TooLarge(text.to_string());
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| too_large())?
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let scaled = mantissa
        .checked_mul(u128::from(unit_bytes))
        .ok_or_else(too_large)?;
    if scaled % scale != 0 {
        return Err(UnitError::NotWhole(text.to_string()));
    }
    u64::try_from(scaled / scale).map_err(|_| too_large())
}

/// Prints a byte count with the largest unit that divides it exactly
/// (`10485760` → `"10 MiB"`, `1500000` → `"1500 KB"`), or bare digits when
/// none does. [`parse_bytes`] reads every output back to the same number.
pub fn format_bytes(bytes: u64) -> String {
    BYTE_UNITS
        .iter()
        .filter(|&&(_, size)| size > 1 && bytes % size == 0 && bytes > 0)
        .max_by_key(|&&(_, size)| size)
        .map(|&(name, size)| format!("{} {name}", bytes / size))
        .unwrap_or_else(|| bytes.to_string())
}

const DURATION_UNITS: &[(&str, u64)] = &[("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

/// Parses a duration: bare digits are minutes (`"90"`), otherwise one or
/// more number-unit pairs with units `d`, `h`, `m`, `s` (`"2h"`, `"1d12h"`,
/// `"1h 30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    let bad = || UnitError::BadDuration(text.to_string());
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let minutes: u64 = text.parse().map_err(|_| bad())?;
        return minutes
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(bad);
    }
    let mut rest = text;
    let mut seconds = 0u64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let count: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let &(_, size) = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(bad)?;
        seconds = count
            .checked_mul(size)
            .and_then(|s| seconds.checked_add(s))
            .ok_or_else(bad)?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(Duration::from_secs(seconds))
}

/// Prints whole seconds as `"1d2h3m4s"`, leaving out zero parts (`"0s"` for
/// zero). Sub-second parts are dropped: limits here are coarse.
pub fn format_duration(duration: Duration) -> String {
    let mut left = duration.as_secs();
    if left == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for &(name, size) in DURATION_UNITS {
        if left >= size {
            out.push_str(&format!("{}{name}", left / size));
            left %= size;
        }
    }
    out
}
