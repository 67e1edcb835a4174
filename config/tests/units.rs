//! Byte and duration spellings, and their round trips.

use std::time::Duration;

use ccbt_config::units::{format_bytes, format_duration, parse_bytes, parse_duration, UnitError};
use proptest::prelude::*;

#[test]
fn byte_spellings() {
    assert_eq!(parse_bytes("10 MiB"), Ok(10_485_760));
    assert_eq!(parse_bytes("500 KiB"), Ok(512_000));
    assert_eq!(parse_bytes("1.5 MB"), Ok(1_500_000));
    assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
    assert_eq!(parse_bytes("2 gib"), Ok(2 << 30));
    assert_eq!(parse_bytes("1048576"), Ok(1_048_576));
    assert_eq!(parse_bytes(" 7 B "), Ok(7));
    assert_eq!(parse_bytes("0"), Ok(0));
    assert_eq!(parse_bytes(".5 KB"), Ok(500));
}

#[test]
fn bad_byte_spellings() {
    assert_eq!(
        parse_bytes("10 MiBs"),
        Err(UnitError::UnknownByteUnit("MiBs".into()))
    );
    assert_eq!(
        parse_bytes("10 Mb/s"),
        Err(UnitError::UnknownByteUnit("Mb/s".into()))
    );
    assert_eq!(parse_bytes(""), Err(UnitError::Empty));
    assert!(matches!(parse_bytes("MiB"), Err(UnitError::NotANumber(_))));
    assert!(matches!(
        parse_bytes("1.2.3 MB"),
        Err(UnitError::NotANumber(_))
    ));
    assert!(matches!(
        parse_bytes("-1 MB"),
        Err(UnitError::NotANumber(_))
    ));
    assert!(matches!(parse_bytes("1.5 B"), Err(UnitError::NotWhole(_))));
    assert!(matches!(
        parse_bytes("16 EiB"),
        Err(UnitError::UnknownByteUnit(_))
    ));
    assert!(matches!(
        parse_bytes("20000000 TiB"),
        Err(UnitError::TooLarge(_))
    ));
}

#[test]
fn byte_printing() {
    assert_eq!(format_bytes(0), "0");
    assert_eq!(format_bytes(10_485_760), "10 MiB");
    assert_eq!(format_bytes(1_500_000), "1500 KB");
    assert_eq!(format_bytes(123_457), "123457");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90 * 60)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("1d 12h"), Ok(Duration::from_secs(129_600)));
    assert_eq!(parse_duration("1h30m15s"), Ok(Duration::from_secs(5415)));
    assert!(parse_duration("2 fortnights").is_err());
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("1.5h").is_err());
    assert_eq!(format_duration(Duration::from_secs(93_784)), "1d2h3m4s");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

const UNITS: &[(&str, u64)] = &[
    ("", 1),
    (" B", 1),
    (" KB", 1000),
    (" MB", 1_000_000),
    (" GB", 1_000_000_000),
    ("KiB", 1024),
    (" MiB", 1 << 20),
    (" GiB", 1 << 30),
    (" TiB", 1 << 40),
];

proptest! {
    #[test]
    fn printed_bytes_parse_back(n in any::<u64>()) {
        prop_assert_eq!(parse_bytes(&format_bytes(n)), Ok(n));
    }

    #[test]
    fn written_bytes_parse_exactly(whole in 0u64..100_000, tenths in 0u64..10, unit in 0..UNITS.len()) {
        let (name, size) = UNITS[unit];
        let text = format!("{whole}.{tenths}{name}");
        let tenths_of_bytes = (whole * 10 + tenths) as u128 * size as u128;
        let parsed = parse_bytes(&text);
        if tenths_of_bytes % 10 == 0 {
            prop_assert_eq!(parsed, Ok((tenths_of_bytes / 10) as u64));
        } else {
            prop_assert!(matches!(parsed, Err(UnitError::NotWhole(_))));
        }
    }

    #[test]
    fn printed_durations_parse_back(secs in 0u64..10_000_000_000) {
        let d = Duration::from_secs(secs);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
