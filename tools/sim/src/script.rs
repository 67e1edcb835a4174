//! Scripted peers: not engines, but what a hostile or broken client sends. Each writes valid
//! wire messages (the decoders have their own fuzz targets); the harm is in what they say
//! and what they never do.

use ccbt_engine::metainfo::Layout;
use ccbt_engine::wire::Message;
use ccbt_engine::{BlockRef, BLOCK_LEN};

use crate::scenario::Script;

/// Whether this script reads what it is sent (a never-reader lets it pile up).
pub fn reads(script: Script) -> bool {
    script != Script::NeverReads
}

/// What the script writes once connected.
pub fn on_connect(script: Script, layout: &Layout, rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = Vec::new();
    match script {
        Script::LyingBitfield => {
            Message::HaveAll.encode(&mut out);
            Message::Unchoke.encode(&mut out);
        }
        Script::NeverReads => {
            Message::HaveNone.encode(&mut out);
            Message::Interested.encode(&mut out);
            // Under the choked allowance: these are queued until it is unchoked, and then
            // served into a socket nobody reads.
            for _ in 0..24 {
                Message::Request(random_block(layout, rng)).encode(&mut out);
            }
        }
        Script::RequestSpam => {
            Message::HaveNone.encode(&mut out);
            Message::Interested.encode(&mut out);
        }
        Script::HaveSpam => {
            Message::Bitfield(&vec![0; layout.piece_count().div_ceil(8) as usize]).encode(&mut out);
        }
    }
    out
}

/// What the script writes at each of its ticks.
pub fn on_tick(script: Script, layout: &Layout, rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = Vec::new();
    match script {
        Script::LyingBitfield | Script::NeverReads => Message::KeepAlive.encode(&mut out),
        Script::RequestSpam => {
            for _ in 0..rng.usize(50..400) {
                let block = random_block(layout, rng);
                Message::Request(block).encode(&mut out);
                if rng.u8(..8) == 0 {
                    Message::Cancel(block).encode(&mut out);
                }
            }
        }
        Script::HaveSpam => {
            for _ in 0..rng.usize(50..400) {
                match rng.u8(..16) {
                    0 => Message::HaveAll.encode(&mut out),
                    1 => Message::HaveNone.encode(&mut out),
                    2 => Message::Interested.encode(&mut out),
                    3 => Message::NotInterested.encode(&mut out),
                    _ => Message::Have(rng.u32(..layout.piece_count())).encode(&mut out),
                }
            }
        }
    }
    out
}

/// A valid request: a block inside some piece.
fn random_block(layout: &Layout, rng: &mut fastrand::Rng) -> BlockRef {
    let piece = rng.u32(..layout.piece_count());
    let len = layout.piece_len(layout.piece(piece).expect("in range"));
    let offset = rng.u32(..len.div_ceil(BLOCK_LEN)) * BLOCK_LEN;
    BlockRef {
        piece,
        offset,
        len: BLOCK_LEN.min(len - offset),
    }
}
