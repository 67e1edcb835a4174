//! The BEP 10 extension protocol's registry: which extension messages we offer, under which
//! ids, and what a peer's extension handshake says about its own.
//!
//! Every extension we speak is a variant of [`Extension`] with a fixed local id (the id a
//! peer puts on the messages it sends us). A peer's ids are kept only for the names we know
//! ([`TheirExtensions`]): a handshake naming thousands of extensions costs a scan, never
//! memory. Adding one is a new variant, its name and its id.

use std::net::IpAddr;

use thiserror::Error;

use crate::bencode::{self, Dict, Limits, Value};

/// What a peer's extension handshake may weigh in structure; its size is already bounded by
/// the wire's message limit.
const LIMITS: Limits = Limits {
    depth_max: 8,
    string_len_max: 64 << 10,
    input_len_max: 1 << 20,
    items_max: 4096,
};

/// The longest client name (`v`) we keep; longer ones are cut.
pub const CLIENT_NAME_LEN_MAX: usize = 64;

/// An extension message we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Extension {
    /// BEP 9, metadata exchange.
    UtMetadata,
    /// BEP 11, peer exchange. Not offered for private torrents (BEP 27) or with PEX off.
    UtPex,
}

impl Extension {
    /// Every extension we offer, in the order of their local ids.
    pub const ALL: [Extension; 2] = [Extension::UtMetadata, Extension::UtPex];

    /// Its name in `m`.
    pub fn name(self) -> &'static [u8] {
        match self {
            Extension::UtMetadata => b"ut_metadata",
            Extension::UtPex => b"ut_pex",
        }
    }

    /// The id peers send this extension's messages to us under (never 0: that is the
    /// handshake itself).
    pub fn local_id(self) -> u8 {
        match self {
            Extension::UtMetadata => 1,
            Extension::UtPex => 2,
        }
    }

    /// Which of ours a message with extended id `id` is for.
    pub fn from_local_id(id: u8) -> Option<Extension> {
        Self::ALL.into_iter().find(|e| e.local_id() == id)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What our extension handshake says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OurHandshake {
    /// Requests we queue for a peer (`reqq`).
    pub reqq: usize,
    /// The size of the info dict, when we have it (BEP 9's `metadata_size`).
    pub metadata_size: Option<u32>,
    /// Offer ut_pex (false for private torrents and with PEX turned off).
    pub pex: bool,
}

impl OurHandshake {
    /// The payload of the extended message with id 0.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Dict::new();
        for ext in Extension::ALL {
            if ext == Extension::UtPex && !self.pex {
                continue;
            }
            m.insert(ext.name(), Value::Int(i64::from(ext.local_id())));
        }
        let mut dict = Dict::new()
            .with(b"m", Value::Dict(m))
            .with(b"reqq", Value::Int(self.reqq as i64))
            .with(
                b"v",
                Value::Bytes(concat!("ccbt-uring ", env!("CARGO_PKG_VERSION")).as_bytes()),
            );
        if let Some(size) = self.metadata_size {
            dict.insert(b"metadata_size", Value::Int(i64::from(size)));
        }
        bencode::encode(&Value::Dict(dict))
    }
}

/// A peer's extension ids for the extensions we know: 0 means it does not offer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TheirExtensions {
    ids: [u8; Extension::ALL.len()],
}

impl TheirExtensions {
    /// The id to send `ext`'s messages to this peer under, if it offers it.
    pub fn id(&self, ext: Extension) -> Option<u8> {
        Some(self.ids[ext.index()]).filter(|&id| id != 0)
    }

    /// A peer offering `ext` under `id` (0 takes it back, as BEP 10 says).
    pub fn with(mut self, ext: Extension, id: u8) -> Self {
        self.ids[ext.index()] = id;
        self
    }
}

/// What a peer's extension handshake told us. Everything is optional: a field that is
/// missing or out of range reads as not given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TheirHandshake {
    pub extensions: TheirExtensions,
    /// `reqq`, if in 1..=65,536.
    pub reqq: Option<usize>,
    /// `metadata_size`, if a non-negative integer (the fetcher applies its own limit).
    pub metadata_size: Option<u64>,
    /// `v`, cut to [`CLIENT_NAME_LEN_MAX`] bytes, lossily as UTF-8.
    pub client: Option<String>,
    /// `yourip`: the address the peer sees us at.
    pub your_ip: Option<IpAddr>,
    /// `p`: the port it listens on.
    pub listen_port: Option<u16>,
}

/// Why an extension handshake was not read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtensionError {
    #[error("extension handshake is not bencode: {0}")]
    NotBencode(#[from] bencode::DecodeError),
    #[error("extension handshake is not a dictionary")]
    NotDict,
}

impl TheirHandshake {
    /// Reads the payload of a peer's extended message 0. A later one updates an earlier one
    /// (BEP 10): merge with [`TheirHandshake::update`].
    pub fn parse(payload: &[u8]) -> Result<TheirHandshake, ExtensionError> {
        let value = bencode::decode(payload, &LIMITS)?;
        let dict = value.as_dict().ok_or(ExtensionError::NotDict)?;
        let mut theirs = TheirHandshake::default();
        if let Some(m) = dict.get(b"m").and_then(Value::as_dict) {
            for (name, id) in m.entries() {
                let Some(ext) = Extension::ALL.into_iter().find(|e| e.name() == *name) else {
                    continue;
                };
                if let Some(id) = id.as_int().and_then(|i| u8::try_from(i).ok()) {
                    theirs.extensions.ids[ext.index()] = id;
                }
            }
        }
        theirs.reqq = dict
            .get(b"reqq")
            .and_then(Value::as_int)
            .filter(|r| (1..=65_536).contains(r))
            .map(|r| r as usize);
        theirs.metadata_size = dict
            .get(b"metadata_size")
            .and_then(Value::as_int)
            .and_then(|s| u64::try_from(s).ok());
        theirs.client = dict.get(b"v").and_then(Value::as_bytes).map(|v| {
            let v = &v[..v.len().min(CLIENT_NAME_LEN_MAX)];
            String::from_utf8_lossy(v).into_owned()
        });
        theirs.your_ip =
            dict.get(b"yourip")
                .and_then(Value::as_bytes)
                .and_then(|b| match b.len() {
                    4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
                    16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
                    _ => None,
                });
        theirs.listen_port = dict
            .get(b"p")
            .and_then(Value::as_int)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0);
        Ok(theirs)
    }

    /// Folds a later handshake into this one: the extensions it names replace ours (0
    /// disables), and fields it gives replace those it does not.
    pub fn update(&mut self, later: TheirHandshake, payload: &[u8]) {
        let named = |ext: Extension| {
            bencode::decode(payload, &LIMITS).ok().is_some_and(|v| {
                v.as_dict()
                    .and_then(|d| d.get(b"m"))
                    .and_then(Value::as_dict)
                    .is_some_and(|m| m.get(ext.name()).is_some())
            })
        };
        for ext in Extension::ALL {
            if named(ext) {
                self.extensions.ids[ext.index()] = later.extensions.ids[ext.index()];
            }
        }
        self.reqq = later.reqq.or(self.reqq);
        self.metadata_size = later.metadata_size.or(self.metadata_size);
        self.client = later.client.or(self.client.take());
        self.your_ip = later.your_ip.or(self.your_ip);
        self.listen_port = later.listen_port.or(self.listen_port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_handshake_reads_back() {
        let ours = OurHandshake {
            reqq: 500,
            metadata_size: Some(31_337),
            pex: true,
        };
        let theirs = TheirHandshake::parse(&ours.encode()).unwrap();
        assert_eq!(theirs.reqq, Some(500));
        assert_eq!(theirs.metadata_size, Some(31_337));
        assert_eq!(theirs.extensions.id(Extension::UtMetadata), Some(1));
        assert_eq!(theirs.extensions.id(Extension::UtPex), Some(2));
        assert!(theirs.client.unwrap().starts_with("ccbt-uring "));
        let without = OurHandshake {
            reqq: 3,
            metadata_size: None,
            pex: false,
        };
        let theirs = TheirHandshake::parse(&without.encode()).unwrap();
        assert_eq!(theirs.metadata_size, None);
        assert_eq!(
            theirs.extensions.id(Extension::UtPex),
            None,
            "no ut_pex offered"
        );
    }

    #[test]
    fn local_ids_are_unique_and_not_zero() {
        for ext in Extension::ALL {
            assert_ne!(ext.local_id(), 0);
            assert_eq!(Extension::from_local_id(ext.local_id()), Some(ext));
        }
        assert_eq!(Extension::from_local_id(0), None);
        assert_eq!(Extension::from_local_id(200), None);
    }

    #[test]
    fn junk_fields_read_as_not_given() {
        let t = TheirHandshake::parse(
            b"d1:md11:ut_metadatai300e6:ut_pexi1ee13:metadata_sizei-5e1:pi70000e\
              4:reqqi0e6:yourip3:abce",
        )
        .unwrap();
        assert_eq!(t.extensions.id(Extension::UtMetadata), None);
        assert_eq!(t.metadata_size, None);
        assert_eq!(t.listen_port, None);
        assert_eq!(t.reqq, None);
        assert_eq!(t.your_ip, None);
        assert!(TheirHandshake::parse(b"le").is_err());
        assert!(TheirHandshake::parse(b"\xff\x00").is_err());
    }

    #[test]
    fn yourip_and_port_and_a_long_client_name() {
        let long = "x".repeat(500);
        let payload = format!("d1:pi6881e1:v500:{long}6:yourip4:\x7f\x00\x00\x01e");
        let t = TheirHandshake::parse(payload.as_bytes()).unwrap();
        assert_eq!(t.listen_port, Some(6881));
        assert_eq!(t.your_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(t.client.unwrap().len(), CLIENT_NAME_LEN_MAX);
    }

    #[test]
    fn a_later_handshake_updates_and_zero_disables() {
        let first = b"d1:md11:ut_metadatai3ee13:metadata_sizei100ee";
        let mut t = TheirHandshake::parse(first).unwrap();
        let later = b"d4:reqqi9ee";
        t.update(TheirHandshake::parse(later).unwrap(), later);
        assert_eq!(t.extensions.id(Extension::UtMetadata), Some(3));
        assert_eq!(t.metadata_size, Some(100));
        assert_eq!(t.reqq, Some(9));
        let off = b"d1:md11:ut_metadatai0eee";
        t.update(TheirHandshake::parse(off).unwrap(), off);
        assert_eq!(t.extensions.id(Extension::UtMetadata), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = TheirHandshake::parse(&bytes);
        }
    }
}
