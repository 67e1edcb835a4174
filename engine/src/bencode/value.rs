use std::fmt;

/// One bencoded value. Byte strings and dict keys borrow from the decoded input (or from
/// whatever the caller built the value out of).
#[derive(Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Dict<'a>),
}

/// A bencoded dictionary: entries in the order they were decoded or built, plus the exact
/// bytes it was decoded from.
///
/// Keys are unique (the decoder rejects duplicates; [`Dict::insert`] replaces). Equality
/// compares entries only, not the raw span.
#[derive(Clone, Default)]
pub struct Dict<'a> {
    entries: Vec<(&'a [u8], Value<'a>)>,
    raw: &'a [u8],
}

impl<'a> Dict<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn from_decoded(entries: Vec<(&'a [u8], Value<'a>)>, raw: &'a [u8]) -> Self {
        Self { entries, raw }
    }

    /// Adds or replaces `key`. Order does not matter: the encoder sorts keys.
    pub fn insert(&mut self, key: &'a [u8], value: Value<'a>) {
        self.raw = &[];
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Builder form of [`Dict::insert`].
    pub fn with(mut self, key: &'a [u8], value: Value<'a>) -> Self {
        self.insert(key, value);
        self
    }

    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn entries(&self) -> &[(&'a [u8], Value<'a>)] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The exact bytes this dict was decoded from; `None` for a dict built or changed in code.
    pub fn raw(&self) -> Option<&'a [u8]> {
        (!self.raw.is_empty()).then_some(self.raw)
    }
}

impl PartialEq for Dict<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Dict<'_> {}

impl<'a> Value<'a> {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The kind of value, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::List(_) => "list",
            Value::Dict(_) => "dictionary",
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) if b.len() <= 64 => write!(f, "{s:?}"),
                _ => write!(f, "<{} bytes>", b.len()),
            },
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => d.fmt(f),
        }
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), v)),
            )
            .finish()
    }
}
