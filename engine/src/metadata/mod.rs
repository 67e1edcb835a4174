//! Metadata exchange (BEP 9, ut_metadata): the message codec, answering peers' requests
//! for an info dict we have, and fetching one for a magnet link.
//!
//! What it does not do: sockets and the extension handshake's transport (the caller's),
//! or parsing the info dict once fetched (`metainfo`'s).

mod fetcher;
mod message;
#[cfg(test)]
mod tests;

pub use fetcher::{
    FetchConfig, FetchEvent, FetchKey, FetchProgress, MetadataFetcher, PeerFault, Transmit,
    METADATA_SIZE_MAX_DEFAULT,
};
pub use message::{
    piece_count, piece_len, MetadataError, MetadataMessage, METADATA_PIECE_LEN,
    METADATA_SIZE_HARD_MAX,
};

/// The answer to a peer's request for piece `piece` of `info` (the info dict's bytes), or
/// a reject when there is no such piece.
pub fn answer(info: &[u8], piece: u32) -> Vec<u8> {
    let size = info.len() as u32;
    let len = piece_len(size, piece);
    if len == 0 || info.len() as u64 > METADATA_SIZE_HARD_MAX {
        return MetadataMessage::Reject { piece }.encode();
    }
    let start = (piece * METADATA_PIECE_LEN) as usize;
    MetadataMessage::Data {
        piece,
        total_size: size,
        data: &info[start..start + len as usize],
    }
    .encode()
}

/// Wraps a fetched info dict into a `.torrent` file's bytes: `info` as it came (so the
/// info hash stays), with the magnet's trackers (`tr`) as `announce` and `announce-list`
/// and its web seeds (`ws`) as `url-list`, as libtorrent does.
pub fn torrent_file(info: &[u8], trackers: &[String], web_seeds: &[String]) -> Vec<u8> {
    // Keys in sorted order, written by hand: the info dict must be copied byte for byte,
    // never re-encoded.
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(b.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(b);
    }
    let mut out = b"d".to_vec();
    if let Some(first) = trackers.first() {
        bytes(&mut out, b"announce");
        bytes(&mut out, first.as_bytes());
        bytes(&mut out, b"announce-list");
        out.push(b'l');
        for t in trackers {
            out.push(b'l');
            bytes(&mut out, t.as_bytes());
            out.push(b'e');
        }
        out.push(b'e');
    }
    bytes(&mut out, b"info");
    out.extend_from_slice(info);
    if !web_seeds.is_empty() {
        bytes(&mut out, b"url-list");
        out.push(b'l');
        for w in web_seeds {
            bytes(&mut out, w.as_bytes());
        }
        out.push(b'e');
    }
    out.push(b'e');
    out
}
