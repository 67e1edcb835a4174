//! Targets for decoders that take one buffer: each decodes, and checks what it got back.

use std::path::Path;

use ccbt_engine::bencode::{self, Limits, Value};
use ccbt_engine::extension::TheirHandshake;
use ccbt_engine::magnet::Magnet;
use ccbt_engine::metadata::MetadataMessage;
use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::tracker::{UdpResponse, PEERS_MAX};
use ccbt_engine::wire::{decode_message, max_message_len, Handshake, Message, HANDSHAKE_LEN};
use ccbt_engine::Bitfield;

/// Tighter than `.torrent` limits, so the fuzzer spends its time on structure, not size.
const BENCODE_LIMITS: Limits = Limits {
    depth_max: 64,
    string_len_max: 1 << 20,
    input_len_max: 1 << 20,
    items_max: 100_000,
};

/// Bencode: a decoded value encodes to bytes that decode to the same value, and encoding is
/// a fixed point (the encoder sorts keys, so its output is canonical).
pub fn bencode(data: &[u8]) {
    if let Ok((value, used)) = bencode::decode_prefix(data, &BENCODE_LIMITS) {
        assert!(used <= data.len());
        let full = bencode::decode(data, &BENCODE_LIMITS);
        assert_eq!(full.is_ok(), used == data.len());
        let encoded = bencode::encode(&value);
        let again = bencode::decode(&encoded, &BENCODE_LIMITS).expect("our own encoding decodes");
        assert!(same(&again, &value), "re-decoded value differs");
        assert_eq!(bencode::encode(&again), encoded);
    }
}

/// Equal as bencode means: dicts compare as maps (the decoder keeps keys in arrival
/// order, which need not be sorted; the encoder sorts them).
fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.entries()
                    .iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

/// A `.torrent`: what parses is self-consistent (one hash per piece, files fill the
/// layout, the info hash is the SHA-1 of the info bytes kept).
pub fn metainfo(data: &[u8]) {
    let Ok(meta) = Metainfo::parse(data) else {
        return;
    };
    let layout = &meta.info.layout;
    assert_eq!(
        meta.info.pieces.len() as u64,
        u64::from(layout.piece_count())
    );
    let total: u64 = layout.files().iter().map(|f| f.length).sum();
    assert_eq!(total, layout.total_length());
    let mut offset = 0;
    for f in layout.files() {
        assert_eq!(f.offset, offset);
        offset += f.length;
    }
    let mut pieces_len = 0u64;
    for piece in layout.pieces() {
        let len = layout.piece_len(piece);
        assert!(len > 0 && len <= layout.piece_length());
        pieces_len += u64::from(len);
    }
    assert_eq!(pieces_len, layout.total_length());
    assert!(meta.info_hash == ccbt_engine::hash::Sha1::digest(&meta.info_bytes));
    let _ = meta.trackers();
    stored_paths_are_apart(layout);
}

/// No two stored files land on one path, and none on a path another needs as its
/// directory, even on a file system that folds case or Unicode form (what the sanitizer
/// promises, so a torrent cannot make one file overwrite another).
fn stored_paths_are_apart(layout: &ccbt_engine::metainfo::Layout) {
    use std::collections::HashSet;
    use unicode_normalization::UnicodeNormalization;
    let fold = |c: &[u8]| -> String {
        String::from_utf8_lossy(c)
            .nfc()
            .collect::<String>()
            .to_lowercase()
    };
    let stored: Vec<Vec<String>> = layout
        .files()
        .iter()
        .filter(|f| !f.pad)
        .map(|f| f.path.components().map(fold).collect())
        .collect();
    let mut files = HashSet::new();
    for key in &stored {
        assert!(files.insert(key.clone()), "two files stored at {key:?}");
    }
    for key in &stored {
        for n in 1..key.len() {
            assert!(
                !files.contains(&key[..n]),
                "a file is stored where {key:?} needs a directory"
            );
        }
    }
}

/// A magnet link, from whatever UTF-8 the bytes hold.
pub fn magnet(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Magnet::parse(&text);
}

/// The 68-byte handshake: what parses encodes back to the bytes it came from.
pub fn handshake(data: &[u8]) {
    let peeked = Handshake::peek_info_hash(data);
    if let Ok(hs) = Handshake::parse(data) {
        assert_eq!(&hs.encode()[..], &data[..HANDSHAKE_LEN]);
        assert_eq!(peeked, Ok(Some(hs.info_hash)));
    }
}

/// A stream of peer-wire messages, decoded one after another as a connection's reader
/// does: each message re-encodes to exactly the bytes it was read from.
pub fn wire_message(data: &[u8]) {
    let Some((&pieces_byte, mut buf)) = data.split_first() else {
        return;
    };
    // The piece count decides the bitfield's length and the frame bound.
    let pieces = u32::from(pieces_byte) * 37 + 1;
    let max = max_message_len(pieces);
    let mut out = Vec::new();
    while let Ok(Some((msg, used))) = decode_message(buf, max) {
        assert!(used >= 4 && used <= buf.len() && used - 4 <= max as usize);
        out.clear();
        msg.encode(&mut out);
        assert_eq!(out, &buf[..used], "{msg:?} re-encodes differently");
        assert_eq!(msg.encoded_len(), used);
        if let Message::Bitfield(bits) = msg {
            if let Ok(field) = Bitfield::from_wire(bits, pieces) {
                assert_eq!(field.as_bytes(), bits);
                assert!(field.count() <= pieces);
            }
        }
        buf = &buf[used..];
    }
}

/// A BEP 10 extension handshake, and a second one folded into it.
pub fn extension_handshake(data: &[u8]) {
    let split = data.len() / 2;
    let (first, second) = data.split_at(split);
    for payload in [data, first, second] {
        if let Ok(theirs) = TheirHandshake::parse(payload) {
            if let Some(reqq) = theirs.reqq {
                assert!((1..=65_536).contains(&reqq));
            }
            assert_ne!(theirs.listen_port, Some(0));
        }
    }
    if let (Ok(mut a), Ok(b)) = (TheirHandshake::parse(first), TheirHandshake::parse(second)) {
        a.update(b, second);
    }
}

/// A ut_metadata message: what decodes encodes to bytes that decode to the same message.
pub fn ut_metadata(data: &[u8]) {
    if let Ok(msg) = MetadataMessage::decode(data) {
        let encoded = msg.encode();
        assert_eq!(MetadataMessage::decode(&encoded), Ok(msg));
    }
}

/// A ut_pex payload (BEP 11): the decoder's bounds hold, and what it kept round-trips.
pub fn ut_pex(data: &[u8]) {
    use ccbt_engine::pex::{PexMessage, DECODE_ADDED_MAX, DECODE_DROPPED_MAX};
    if let Ok(msg) = PexMessage::decode(data) {
        assert!(msg.added.len() <= DECODE_ADDED_MAX);
        assert!(msg.dropped.len() <= DECODE_DROPPED_MAX);
        assert_eq!(PexMessage::decode(&msg.encode()), Ok(msg));
    }
}

/// A DHT datagram (BEP 5 KRPC): what decodes encodes to something that decodes the same.
pub fn krpc(data: &[u8]) {
    use ccbt_engine::dht::krpc::Message as Krpc;
    if let Ok(msg) = Krpc::decode(data) {
        let encoded = msg.encode();
        assert_eq!(Krpc::decode(&encoded).ok(), Some(msg));
    }
}

/// An LSD datagram (BEP 14), as the shard reads one off the multicast group: what parses
/// keeps its bounds and re-encodes, in datagrams within the size BEP 14 asks, to the same
/// announce; the service passes on at most one peer per info hash read.
pub fn lsd(data: &[u8]) {
    use ccbt_engine::lsd::{encode, Announce, Lsd, DATAGRAM_MAX, READ_HASHES_MAX};
    if let Ok(announce) = Announce::parse(data) {
        assert!(announce.port != 0);
        assert!(!announce.info_hashes.is_empty() && announce.info_hashes.len() <= READ_HASHES_MAX);
        let cookie = announce.cookie.clone().unwrap_or_default();
        let datagrams = encode(announce.port, &cookie, &announce.info_hashes);
        let mut again = Vec::new();
        for datagram in &datagrams {
            assert!(datagram.len() <= DATAGRAM_MAX, "{} bytes", datagram.len());
            let read = Announce::parse(datagram).expect("what we encode parses");
            assert_eq!(read.port, announce.port);
            assert_eq!(read.cookie.as_deref(), Some(cookie.as_str()));
            again.extend(read.info_hashes);
        }
        assert_eq!(again, announce.info_hashes);
    }
    let mut lsd = Lsd::new(6881, 1, Default::default());
    let from = std::net::SocketAddr::from(([10, 0, 0, 2], 6771));
    let found = lsd.handle_datagram(std::time::Duration::ZERO, from, data);
    assert!(found.len() <= READ_HASHES_MAX);
    assert!(found
        .iter()
        .all(|f| f.peer.ip() == from.ip() && f.peer.port() != 0));
}

/// A UDP tracker datagram, read as from an IPv4 and from an IPv6 tracker.
pub fn udp_tracker(data: &[u8]) {
    for ipv6 in [false, true] {
        if let Ok(UdpResponse::Announce { peers, .. }) =
            ccbt_engine::tracker::udp::parse_response(data, ipv6)
        {
            assert!(peers.len() <= PEERS_MAX);
            assert!(peers.iter().all(|p| p.port() != 0));
        }
    }
}

/// The `state` crate's records decoded from their stored bytes: file stamps round-trip,
/// tags parse, a stored bitfield is checked against a piece count.
pub fn state_records(data: &[u8]) {
    use ccbt_state::{bitfield_problem, decode_files, decode_tags, encode_files, encode_tags};
    if let Some(files) = decode_files(data) {
        assert_eq!(encode_files(&files), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(tags) = decode_tags(text) {
            let again = decode_tags(&encode_tags(&tags));
            assert_eq!(again.as_ref(), Some(&tags));
        }
    }
    if let Some((count, have)) = data.split_first_chunk::<2>() {
        let pieces = u32::from(u16::from_le_bytes(*count));
        if bitfield_problem(pieces, have).is_none() {
            let field = Bitfield::from_wire(have, pieces).expect("a stored bitfield that fits");
            assert!(field.count() <= pieces);
        }
    }
}

/// A `ccbt.toml`: checked as the daemon checks one, errors as diagnostics.
pub fn config_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = ccbt_config::check_str(&text, Path::new("fuzz.toml"));
}

/// A blocklist file (P2P, DAT or CIDR lines).
pub fn blocklist(data: &[u8]) {
    let limits = ccbt_engine::blocklist::Limits {
        ranges_max: 10_000,
        bad_lines_listed_max: 20,
    };
    if let Ok((list, report)) = ccbt_engine::blocklist::Blocklist::parse(data, &limits) {
        let _ = report;
        for range in list.ranges() {
            let _ = range;
        }
        let _ = list.contains(std::net::IpAddr::from([127, 0, 0, 1]));
    }
}
