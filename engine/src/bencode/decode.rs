use super::value::{Dict, Value};
use thiserror::Error;

/// Bounds on what the decoder accepts. Each bound has its own error so a caller can tell a
/// hostile input from a merely large one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dicts. Guards the stack against `llll…` bombs.
    pub depth_max: usize,
    /// Longest single byte string.
    pub string_len_max: usize,
    /// Largest whole input.
    pub input_len_max: usize,
    /// Most values (integers, strings, lists, dicts) in one input. Guards memory: every
    /// decoded value costs a few dozen bytes, so `lelelele…` would otherwise amplify.
    pub items_max: usize,
}

impl Limits {
    /// Limits for `.torrent` files, close to libtorrent's `load_torrent_limits`.
    pub const TORRENT: Limits = Limits {
        depth_max: 64,
        string_len_max: 48 << 20,
        input_len_max: 64 << 20,
        items_max: 3_000_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::TORRENT
    }
}

/// Why an input is not acceptable bencode. Offsets are byte positions in the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("input ends early at byte {offset}")]
    UnexpectedEof { offset: usize },
    #[error("unexpected byte 0x{byte:02x} at byte {offset}: expected a bencoded value")]
    UnexpectedByte { offset: usize, byte: u8 },
    #[error("malformed integer at byte {offset}")]
    InvalidInteger { offset: usize },
    #[error("integer at byte {offset} does not fit in 64 bits")]
    IntegerOverflow { offset: usize },
    #[error("malformed string length at byte {offset}")]
    InvalidLength { offset: usize },
    #[error("string of {len} bytes at byte {offset} exceeds the limit of {max} bytes")]
    StringTooLong { offset: usize, len: u64, max: usize },
    #[error("nesting deeper than {max} levels at byte {offset}")]
    DepthExceeded { offset: usize, max: usize },
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    InputTooLarge { len: usize, max: usize },
    #[error("more than {max} values in one input")]
    TooManyItems { max: usize },
    #[error("dictionary key at byte {offset} is not a byte string")]
    KeyNotString { offset: usize },
    #[error("duplicate dictionary key {key:?} at byte {offset}")]
    DuplicateKey { offset: usize, key: String },
    #[error("{len} bytes of trailing data after the value, starting at byte {offset}")]
    TrailingData { offset: usize, len: usize },
}

/// Decodes exactly one value that must span the whole input.
pub fn decode<'a>(input: &'a [u8], limits: &Limits) -> Result<Value<'a>, DecodeError> {
    let (value, used) = decode_prefix(input, limits)?;
    if used != input.len() {
        return Err(DecodeError::TrailingData {
            offset: used,
            len: input.len() - used,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of the input and returns it with the number of bytes it
/// used. For messages that carry raw data after a bencoded header (BEP 9 metadata pieces).
pub fn decode_prefix<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<(Value<'a>, usize), DecodeError> {
    if input.len() > limits.input_len_max {
        return Err(DecodeError::InputTooLarge {
            len: input.len(),
            max: limits.input_len_max,
        });
    }
    let mut decoder = Decoder {
        input,
        pos: 0,
        items: 0,
        limits,
    };
    let value = decoder.value(0)?;
    Ok((value, decoder.pos))
}

struct Decoder<'a, 'l> {
    input: &'a [u8],
    pos: usize,
    items: usize,
    limits: &'l Limits,
}

impl<'a> Decoder<'a, '_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEof { offset: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        self.items += 1;
        if self.items > self.limits.items_max {
            return Err(DecodeError::TooManyItems {
                max: self.limits.items_max,
            });
        }
        match self.peek()? {
            b'i' => self.integer().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                self.enter(depth)?;
                let mut list = Vec::new();
                while self.peek()? != b'e' {
                    list.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(list))
            }
            b'd' => self.dict(depth).map(Value::Dict),
            byte => Err(DecodeError::UnexpectedByte {
                offset: self.pos,
                byte,
            }),
        }
    }

    /// Steps over the `l`/`d` marker, enforcing the depth limit. Returns the marker's offset.
    fn enter(&mut self, depth: usize) -> Result<usize, DecodeError> {
        if depth >= self.limits.depth_max {
            return Err(DecodeError::DepthExceeded {
                offset: self.pos,
                max: self.limits.depth_max,
            });
        }
        let start = self.pos;
        self.pos += 1;
        Ok(start)
    }

    fn dict(&mut self, depth: usize) -> Result<Dict<'a>, DecodeError> {
        let start = self.enter(depth)?;
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        let mut sorted = true;
        while self.peek()? != b'e' {
            let key_offset = self.pos;
            if !self.peek()?.is_ascii_digit() {
                return Err(DecodeError::KeyNotString { offset: key_offset });
            }
            let key = self.bytes()?;
            if let Some((last, _)) = entries.last() {
                if *last == key {
                    return Err(duplicate(key_offset, key));
                }
                sorted &= *last < key;
            }
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        self.pos += 1;
        if !sorted {
            // Real torrents sometimes have unsorted keys; accept them, but a repeated key
            // would let two readers see two different values, so it is still refused.
            let mut keys: Vec<&[u8]> = entries.iter().map(|(k, _)| *k).collect();
            keys.sort_unstable();
            if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                return Err(duplicate(start, w[0]));
            }
        }
        Ok(Dict::from_decoded(entries, &self.input[start..self.pos]))
    }

    fn integer(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let end = self.input[self.pos..]
            .iter()
            .position(|&b| b == b'e')
            .map(|n| self.pos + n)
            .ok_or(DecodeError::UnexpectedEof {
                offset: self.input.len(),
            })?;
        let text = &self.input[self.pos..end];
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits == b"0" || digits[0] != b'0')
            && text != b"-0";
        if !canonical {
            return Err(DecodeError::InvalidInteger { offset: start });
        }
        // Digits only, so this is valid UTF-8 and the only failure left is overflow.
        let value = std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(DecodeError::IntegerOverflow { offset: start })?;
        self.pos = end + 1;
        Ok(value)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let colon = self.input[self.pos..]
            .iter()
            .take(21) // 20 digits hold any u64, plus the colon
            .position(|&b| b == b':')
            .map(|n| self.pos + n);
        let Some(colon) = colon else {
            return Err(if self.input.len() - self.pos < 21 {
                DecodeError::UnexpectedEof {
                    offset: self.input.len(),
                }
            } else {
                DecodeError::InvalidLength { offset: start }
            });
        };
        let digits = &self.input[self.pos..colon];
        if digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits.len() > 1 && digits[0] == b'0')
        {
            return Err(DecodeError::InvalidLength { offset: start });
        }
        let len = digits
            .iter()
            .try_fold(0u64, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or(DecodeError::InvalidLength { offset: start })?;
        if len > self.limits.string_len_max as u64 {
            return Err(DecodeError::StringTooLong {
                offset: start,
                len,
                max: self.limits.string_len_max,
            });
        }
        let body = colon + 1;
        let end = body + len as usize;
        if end > self.input.len() {
            return Err(DecodeError::UnexpectedEof {
                offset: self.input.len(),
            });
        }
        self.pos = end;
        Ok(&self.input[body..end])
    }
}

fn duplicate(offset: usize, key: &[u8]) -> DecodeError {
    DecodeError::DuplicateKey {
        offset,
        key: String::from_utf8_lossy(key).into_owned(),
    }
}
