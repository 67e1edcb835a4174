//! The BEP 10 extension protocol on a running torrent: our handshake (`reqq`, so
//! Transmission does not pile up more than we take; ut_metadata with `metadata_size` when
//! we have the info dict), reading theirs, and answering ut_metadata requests (BEP 9) for
//! the info dict we serve.
//!
//! Serving is bounded per connection: a peer gets at most [`metadata_answers_max`] answers
//! (every piece twice and a few more); past it each request is rejected, so a peer asking
//! the same pieces in a loop costs a reject each, and the outbox bound drops one that stops
//! reading.

use crate::extension::{Extension, OurHandshake, TheirHandshake};
use crate::metadata::{self, MetadataError, MetadataMessage};
use crate::wire::Message;

/// Requests to keep in flight to a peer that did not say (BEP 10's suggested default).
pub const DEFAULT_REQQ: usize = 250;

/// The queue length we tell peers: libtorrent's default. We take more (see
/// `max_queued_requests`), but peers size their pipelines from this, and a much larger one
/// only makes them queue seconds of requests that time out and are sent again (measured:
/// telling libtorrent 2000 halved its download rate from our seeders).
pub const ADVERTISED_REQQ: usize = 500;

/// Our handshake's payload (the message's extended id is 0). `pex`: offer ut_pex.
pub fn our_handshake(reqq: usize, metadata_size: Option<u32>, pex: bool) -> Vec<u8> {
    OurHandshake {
        reqq,
        metadata_size,
        pex,
    }
    .encode()
}

/// Reads a peer's handshake into what we keep of it (a later one updates it). Junk reads as
/// an empty handshake: an extension handshake is advisory.
pub fn read_handshake(known: &mut Option<TheirHandshake>, payload: &[u8]) {
    let Ok(later) = TheirHandshake::parse(payload) else {
        return;
    };
    match known {
        Some(theirs) => theirs.update(later, payload),
        None => *known = Some(later),
    }
}

/// Answers a peer may get per connection for metadata of `size` bytes.
pub fn metadata_answers_max(size: usize) -> u32 {
    2 * metadata::piece_count(size as u32) + 8
}

/// A ut_metadata message a peer sent us: a request gets piece data (or a reject) written
/// to `outbox` under the peer's id for ut_metadata; data and rejects are not ours to take
/// on a running torrent. `answered` counts this connection's answers.
pub fn on_metadata_message(
    info: Option<&[u8]>,
    theirs: Option<&TheirHandshake>,
    answered: &mut u32,
    payload: &[u8],
    outbox: &mut Vec<u8>,
) -> Result<(), MetadataError> {
    let msg = MetadataMessage::decode(payload)?;
    let MetadataMessage::Request { piece } = msg else {
        return Ok(());
    };
    // A peer that did not say where ut_metadata goes cannot be answered.
    let Some(id) = theirs.and_then(|t| t.extensions.id(Extension::UtMetadata)) else {
        return Ok(());
    };
    let answer = match info {
        Some(info) if *answered < metadata_answers_max(info.len()) => {
            *answered += 1;
            metadata::answer(info, piece)
        }
        _ => MetadataMessage::Reject { piece }.encode(),
    };
    Message::Extended {
        id,
        payload: &answer,
    }
    .encode(outbox);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_reqq_reads_back_and_junk_gives_none() {
        let mut t = None;
        read_handshake(&mut t, &our_handshake(2000, None, true));
        assert_eq!(t.as_ref().unwrap().reqq, Some(2000));
        for junk in [&b"d4:reqqi0ee"[..], b"d4:reqqi-5ee", b"de"] {
            let mut t = None;
            read_handshake(&mut t, junk);
            assert_eq!(t.unwrap().reqq, None);
        }
        let mut t = None;
        read_handshake(&mut t, b"\xff\x00");
        assert_eq!(t, None);
    }
}
