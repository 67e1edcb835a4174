//! How each value type is read from TOML or from text (environment
//! variables, flags) and printed back as TOML. One trait so every layer
//! accepts exactly the same spellings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml_edit::Value;

use crate::paths::Home;
use crate::schema::{ByteRate, Preallocate, ServeReads, ShareAction};
use crate::units;

/// A value as one layer supplies it.
#[derive(Clone, Copy)]
pub(crate) enum Raw<'a> {
    Toml(&'a Value),
    /// An environment variable: lists are comma-separated.
    Text(&'a str),
    /// Repeated flags: for lists, one element each; otherwise the last wins.
    Texts(&'a [String]),
}

pub(crate) trait Setting: Sized {
    /// What a valid value looks like, for "expected ..." messages.
    const EXPECTED: &'static str;

    fn from_toml(value: &Value, home: &Home) -> Result<Self, String>;
    fn from_text(text: &str, home: &Home) -> Result<Self, String>;
    fn to_toml(&self) -> String;

    fn from_texts(texts: &[String], home: &Home) -> Result<Self, String> {
        Self::from_text(texts.last().map_or("", String::as_str), home)
    }

    fn parse(raw: Raw<'_>, home: &Home) -> Result<Self, String> {
        match raw {
            Raw::Toml(value) => Self::from_toml(value, home),
            Raw::Text(text) => Self::from_text(text, home),
            Raw::Texts(texts) => Self::from_texts(texts, home),
        }
    }
}

fn found(value: &Value) -> String {
    let shown = value.clone().decorated("", "").to_string();
    format!("{} {shown}", value.type_name())
}

fn expected<T: Setting>(value: &Value) -> String {
    format!("expected {}, found {}", T::EXPECTED, found(value))
}

fn quote(text: &str) -> String {
    Value::from(text).to_string()
}

fn integer<T: Setting + TryFrom<i64>>(
    value: i64,
    shown: &dyn std::fmt::Display,
) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("expected {}, found {shown}", T::EXPECTED))
}

macro_rules! integer_setting {
    ($($ty:ty => $expected:literal),*) => {$(
        impl Setting for $ty {
            const EXPECTED: &'static str = $expected;
            fn from_toml(value: &Value, _: &Home) -> Result<Self, String> {
                match value.as_integer() {
                    Some(n) => integer(n, &n),
                    None => Err(expected::<Self>(value)),
                }
            }
            fn from_text(text: &str, _: &Home) -> Result<Self, String> {
                let n: i64 = text.trim().parse().map_err(|_| format!("expected {}, found {}", $expected, quote(text)))?;
                integer(n, &n)
            }
            fn to_toml(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

integer_setting!(u16 => "an integer from 0 to 65535", u32 => "an integer from 0 to 4294967295");

impl Setting for bool {
    const EXPECTED: &'static str = "true or false";
    fn from_toml(value: &Value, _: &Home) -> Result<Self, String> {
        value.as_bool().ok_or_else(|| expected::<Self>(value))
    }
    fn from_text(text: &str, _: &Home) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!(
                "expected {}, found {}",
                Self::EXPECTED,
                quote(text)
            )),
        }
    }
    fn to_toml(&self) -> String {
        self.to_string()
    }
}

impl Setting for String {
    const EXPECTED: &'static str = "a string";
    fn from_toml(value: &Value, _: &Home) -> Result<Self, String> {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| expected::<Self>(value))
    }
    fn from_text(text: &str, _: &Home) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn to_toml(&self) -> String {
        quote(self)
    }
}

fn path_to_toml(path: &std::path::Path) -> String {
    quote(&path.to_string_lossy())
}

impl Setting for PathBuf {
    const EXPECTED: &'static str = "a path string";
    fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
        let text = value.as_str().ok_or_else(|| expected::<Self>(value))?;
        Self::from_text(text, home)
    }
    fn from_text(text: &str, home: &Home) -> Result<Self, String> {
        if text.is_empty() {
            return Err("expected a path, found an empty string".to_string());
        }
        Ok(home.expand(text))
    }
    fn to_toml(&self) -> String {
        path_to_toml(self)
    }
}

/// An optional path: the empty string means "not set", so every layer can
/// also unset it.
impl Setting for Option<PathBuf> {
    const EXPECTED: &'static str = "a path string (\"\" for none)";
    fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
        let text = value.as_str().ok_or_else(|| expected::<Self>(value))?;
        Self::from_text(text, home)
    }
    fn from_text(text: &str, home: &Home) -> Result<Self, String> {
        Ok((!text.is_empty()).then(|| home.expand(text)))
    }
    fn to_toml(&self) -> String {
        self.as_deref()
            .map_or_else(|| "\"\"".to_string(), path_to_toml)
    }
}

impl Setting for Vec<PathBuf> {
    const EXPECTED: &'static str = "an array of path strings";
    fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
        let array = value.as_array().ok_or_else(|| expected::<Self>(value))?;
        array
            .iter()
            .map(|item| PathBuf::from_toml(item, home).map_err(|_| expected::<Self>(value)))
            .collect()
    }
    fn from_text(text: &str, home: &Home) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| PathBuf::from_text(part, home))
            .collect()
    }
    fn from_texts(texts: &[String], home: &Home) -> Result<Self, String> {
        texts
            .iter()
            .map(|text| PathBuf::from_text(text, home))
            .collect()
    }
    fn to_toml(&self) -> String {
        let items: Vec<String> = self.iter().map(|p| path_to_toml(p)).collect();
        format!("[{}]", items.join(", "))
    }
}

impl Setting for Vec<String> {
    const EXPECTED: &'static str = "an array of strings";
    fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
        let array = value.as_array().ok_or_else(|| expected::<Self>(value))?;
        array
            .iter()
            .map(|item| String::from_toml(item, home).map_err(|_| expected::<Self>(value)))
            .collect()
    }
    fn from_text(text: &str, _: &Home) -> Result<Self, String> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_string)
            .collect())
    }
    fn from_texts(texts: &[String], home: &Home) -> Result<Self, String> {
        let mut all = Vec::new();
        for text in texts {
            all.extend(Self::from_text(text, home)?);
        }
        Ok(all)
    }
    fn to_toml(&self) -> String {
        let items: Vec<String> = self.iter().map(|s| quote(s)).collect();
        format!("[{}]", items.join(", "))
    }
}

impl Setting for SocketAddr {
    const EXPECTED: &'static str = "an address like \"127.0.0.1:9091\" or \"[::1]:9091\"";
    fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
        let text = value.as_str().ok_or_else(|| expected::<Self>(value))?;
        Self::from_text(text, home)
    }
    fn from_text(text: &str, _: &Home) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("expected {}, found {}", Self::EXPECTED, quote(text)))
    }
    fn to_toml(&self) -> String {
        quote(&self.to_string())
    }
}

impl Setting for ByteRate {
    const EXPECTED: &'static str = "bytes per second as an integer or a string like \"10 MiB\"";
    fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
        match value {
            Value::Integer(n) => integer::<u64>(*n.value(), n.value())
                .map(ByteRate)
                .map_err(|_| expected::<Self>(value)),
            Value::String(text) => Self::from_text(text.value(), home),
            _ => Err(expected::<Self>(value)),
        }
    }
    fn from_text(text: &str, _: &Home) -> Result<Self, String> {
        units::parse_bytes(text)
            .map(ByteRate)
            .map_err(|e| e.to_string())
    }
    fn to_toml(&self) -> String {
        let text = units::format_bytes(self.0);
        if text.contains(' ') {
            quote(&text)
        } else {
            text
        }
    }
}

// Only for `ByteRate`'s integer branch.
impl Setting for u64 {
    const EXPECTED: &'static str = "a non-negative integer";
    fn from_toml(value: &Value, _: &Home) -> Result<Self, String> {
        value
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| expected::<Self>(value))
    }
    fn from_text(text: &str, _: &Home) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("expected {}", Self::EXPECTED))
    }
    fn to_toml(&self) -> String {
        self.to_string()
    }
}

const NONE: &str = "none";

/// A share ratio limit; `"none"` means no limit.
impl Setting for Option<f64> {
    const EXPECTED: &'static str = "a ratio >= 0 (like 2 or 1.5) or \"none\"";
    fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
        let ratio = match value {
            Value::Float(f) => *f.value(),
            Value::Integer(n) => *n.value() as f64,
            Value::String(s) => return Self::from_text(s.value(), home),
            _ => return Err(expected::<Self>(value)),
        };
        check_ratio(ratio).ok_or_else(|| expected::<Self>(value))
    }
    fn from_text(text: &str, _: &Home) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case(NONE) {
            return Ok(None);
        }
        let bad = || format!("expected {}, found {}", Self::EXPECTED, quote(text));
        check_ratio(text.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
    fn to_toml(&self) -> String {
        match self {
            Some(ratio) => Value::from(*ratio).to_string(),
            None => quote(NONE),
        }
    }
}

fn check_ratio(ratio: f64) -> Option<Option<f64>> {
    (ratio.is_finite() && ratio >= 0.0).then_some(Some(ratio))
}

/// A time limit; integers are minutes, strings durations or `"none"`.
impl Setting for Option<Duration> {
    const EXPECTED: &'static str = "minutes as an integer, a duration like \"2h\" or \"none\"";
    fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
        match value {
            Value::Integer(n) => integer::<u64>(*n.value(), n.value())
                .ok()
                .and_then(|minutes| minutes.checked_mul(60))
                .map(|secs| Some(Duration::from_secs(secs)))
                .ok_or_else(|| expected::<Self>(value)),
            Value::String(s) => Self::from_text(s.value(), home),
            _ => Err(expected::<Self>(value)),
        }
    }
    fn from_text(text: &str, _: &Home) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case(NONE) {
            return Ok(None);
        }
        units::parse_duration(text)
            .map(Some)
            .map_err(|e| e.to_string())
    }
    fn to_toml(&self) -> String {
        quote(&self.map_or_else(|| NONE.to_string(), units::format_duration))
    }
}

/// Enums spelled as lowercase strings.
macro_rules! word_setting {
    ($ty:ty { $($word:literal => $variant:path),* }) => {
        impl Setting for $ty {
            const EXPECTED: &'static str = concat!("one of", $(" \"", $word, "\""),*);
            fn from_toml(value: &Value, home: &Home) -> Result<Self, String> {
                let text = value.as_str().ok_or_else(|| expected::<Self>(value))?;
                Self::from_text(text, home)
            }
            fn from_text(text: &str, _: &Home) -> Result<Self, String> {
                match text.trim() {
                    $($word => Ok($variant),)*
                    _ => Err(format!("expected {}, found {}", Self::EXPECTED, quote(text))),
                }
            }
            fn to_toml(&self) -> String {
                let word = match self { $($variant => $word,)* };
                quote(word)
            }
        }
    };
}

word_setting!(ShareAction { "pause" => ShareAction::Pause, "remove" => ShareAction::Remove });
word_setting!(Preallocate { "sparse" => Preallocate::Sparse, "full" => Preallocate::Full });
word_setting!(ServeReads {
    "direct" => ServeReads::Direct,
    "buffered" => ServeReads::Buffered,
    "auto" => ServeReads::Auto
});
