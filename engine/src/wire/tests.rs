//! Message codec tests: golden bytes, framing limits, and round-trip properties.

use proptest::prelude::*;

use super::message::message_name;
use super::*;
use crate::{BlockRef, BLOCK_LEN};

const BLOCK: BlockRef = BlockRef {
    piece: 1,
    offset: 0x4000,
    len: 0x4000,
};

/// One of every kind.
fn samples() -> Vec<Message<'static>> {
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(5),
        Message::Bitfield(&[0b1010_0000, 0x01]),
        Message::Bitfield(&[]),
        Message::Request(BLOCK),
        Message::Piece {
            piece: 2,
            offset: 0,
            data: b"block bytes",
        },
        Message::Piece {
            piece: 2,
            offset: 0,
            data: b"",
        },
        Message::Cancel(BLOCK),
        Message::Port(6881),
        Message::SuggestPiece(9),
        Message::HaveAll,
        Message::HaveNone,
        Message::RejectRequest(BLOCK),
        Message::AllowedFast(3),
        Message::Extended {
            id: 0,
            payload: b"d1:md11:ut_metadatai1eee",
        },
        Message::Extended {
            id: 3,
            payload: b"",
        },
        Message::Unknown {
            id: 42,
            payload: b"?",
        },
    ]
}

fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    message.encode(&mut out);
    assert_eq!(out.len(), message.encoded_len(), "{message:?}");
    out
}

fn decode(bytes: &[u8]) -> Result<Option<(Message<'_>, usize)>, WireError> {
    decode_message(bytes, max_message_len(0))
}

#[test]
fn golden_bytes() {
    let cases: [(Message<'_>, &[u8]); 9] = [
        (Message::KeepAlive, &[0, 0, 0, 0]),
        (Message::Interested, &[0, 0, 0, 1, 2]),
        (Message::Have(5), &[0, 0, 0, 5, 4, 0, 0, 0, 5]),
        (
            Message::Bitfield(&[0xFF, 0x80]),
            &[0, 0, 0, 3, 5, 0xFF, 0x80],
        ),
        (
            Message::Request(BLOCK),
            &[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
        ),
        (
            Message::Piece {
                piece: 1,
                offset: 2,
                data: b"ab",
            },
            &[0, 0, 0, 11, 7, 0, 0, 0, 1, 0, 0, 0, 2, b'a', b'b'],
        ),
        (Message::Port(6881), &[0, 0, 0, 3, 9, 0x1A, 0xE1]),
        (Message::HaveNone, &[0, 0, 0, 1, 0x0F]),
        (
            Message::Extended {
                id: 2,
                payload: b"de",
            },
            &[0, 0, 0, 4, 20, 2, b'd', b'e'],
        ),
    ];
    for (message, bytes) in cases {
        assert_eq!(encode(&message), bytes, "{message:?}");
        assert_eq!(decode(bytes), Ok(Some((message, bytes.len()))));
    }
}

#[test]
fn every_kind_round_trips_with_its_own_id() {
    let mut ids = Vec::new();
    for message in samples() {
        let bytes = encode(&message);
        assert_eq!(decode(&bytes), Ok(Some((message.clone(), bytes.len()))));
        assert_eq!(bytes.get(4).copied(), message.id(), "{message:?}");
        ids.extend(message.id());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids,
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20, 42]
    );
}

#[test]
fn every_proper_prefix_is_incomplete() {
    for message in samples() {
        let bytes = encode(&message);
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n]), Ok(None), "{message:?} cut at {n}");
        }
    }
}

#[test]
fn trailing_bytes_are_not_consumed() {
    let mut bytes = encode(&Message::Have(7));
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(decode(&bytes), Ok(Some((Message::Have(7), 9))));
}

#[test]
fn too_long_is_caught_from_the_length_prefix_alone() {
    assert_eq!(
        decode_message(&[0, 0, 0x80, 0], 0x7FFF),
        Err(WireError::TooLong {
            len: 0x8000,
            max: 0x7FFF
        })
    );
    assert_eq!(
        decode_message(&[0xFF; 4], max_message_len(1_000)),
        Err(WireError::TooLong {
            len: u32::MAX,
            max: max_message_len(1_000)
        })
    );
    // Exactly at the limit is fine: it just waits for the body.
    assert_eq!(decode_message(&[0, 0, 0x80, 0], 0x8000), Ok(None));
    // A keep-alive fits any limit.
    assert_eq!(
        decode_message(&[0; 4], 0),
        Ok(Some((Message::KeepAlive, 4)))
    );
}

#[test]
fn fixed_size_messages_must_have_their_size() {
    // (id, the one valid length prefix)
    let fixed = [
        (0, 1),
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 5),
        (6, 13),
        (8, 13),
        (9, 3),
        (13, 5),
        (14, 1),
        (15, 1),
        (16, 13),
        (17, 5),
    ];
    for (id, good) in fixed {
        for len in 1u32..=20 {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.push(id);
            bytes.resize(4 + len as usize, 0);
            let got = decode(&bytes);
            if len == good {
                assert!(
                    matches!(got, Ok(Some((_, n))) if n == bytes.len()),
                    "{id} {len}"
                );
            } else {
                assert_eq!(got, Err(WireError::BadLength { id, len }), "{id} {len}");
            }
        }
    }
    // Variable-size messages have a floor.
    assert_eq!(
        decode(&[0, 0, 0, 8, 7, 0, 0, 0, 1, 0, 0, 0]),
        Err(WireError::BadLength { id: 7, len: 8 })
    );
    assert_eq!(
        decode(&[0, 0, 0, 1, 20]),
        Err(WireError::BadLength { id: 20, len: 1 })
    );
}

#[test]
fn unknown_ids_are_passed_up() {
    assert_eq!(
        decode(&[0, 0, 0, 3, 0xC8, 1, 2]),
        Ok(Some((
            Message::Unknown {
                id: 0xC8,
                payload: &[1, 2]
            },
            7
        )))
    );
    assert_eq!(
        decode(&[0, 0, 0, 1, 10]),
        Ok(Some((
            Message::Unknown {
                id: 10,
                payload: &[]
            },
            5
        )))
    );
}

#[test]
fn piece_header_is_the_front_of_a_piece_message() {
    let data = vec![0x5A; BLOCK_LEN as usize];
    let message = Message::Piece {
        piece: 77,
        offset: 3 * BLOCK_LEN,
        data: &data,
    };
    let bytes = encode(&message);
    let header = encode_piece_header(77, 3 * BLOCK_LEN, BLOCK_LEN);
    assert_eq!(&bytes[..13], header);
    assert_eq!(&bytes[13..], data);
}

#[test]
fn max_len_fits_real_messages_and_nothing_much_bigger() {
    let small = max_message_len(0);
    assert_eq!(small, 1 + BLOCK_LEN + 8 * 1024);
    assert_eq!(max_message_len(100_000), small);
    // Past ~196k pieces the bitfield is the largest message.
    assert_eq!(max_message_len(1 << 20), 1 + (1 << 17));
    assert_eq!(max_message_len(u32::MAX), 1 + u32::MAX.div_ceil(8));

    let block = vec![0; BLOCK_LEN as usize];
    let bitfield = vec![0; (1 << 20) / 8];
    for (pieces, message) in [
        (
            1,
            Message::Piece {
                piece: 0,
                offset: 0,
                data: &block,
            },
        ),
        (1 << 20, Message::Bitfield(&bitfield)),
    ] {
        let bytes = encode(&message);
        let max = max_message_len(pieces);
        assert!(matches!(decode_message(&bytes, max), Ok(Some(_))));
    }
}

#[test]
fn errors_read_well_in_a_log_line() {
    let line = |e: WireError| format!("peer 1.2.3.4:5 dropped: {e}");
    assert_eq!(
        line(WireError::BadLength { id: 4, len: 7 }),
        "peer 1.2.3.4:5 dropped: malformed `have` message (id 4): length 7, expected 5"
    );
    assert_eq!(
        line(WireError::BadLength { id: 7, len: 3 }),
        "peer 1.2.3.4:5 dropped: malformed `piece` message (id 7): length 3, expected at least 9"
    );
    assert_eq!(
        line(WireError::TooLong {
            len: 1 << 20,
            max: 24577
        }),
        "peer 1.2.3.4:5 dropped: message of 1048576 bytes exceeds this torrent's 24577-byte limit"
    );
    assert_eq!(
        line(WireError::NotBitTorrent),
        "peer 1.2.3.4:5 dropped: not a BitTorrent handshake (expected \\x13\"BitTorrent protocol\")"
    );
    assert_eq!(
        line(WireError::HandshakeTruncated { len: 20 }),
        "peer 1.2.3.4:5 dropped: handshake cut short: 20 of 68 bytes"
    );
}

/// The parts an arbitrary message is built from; `build` borrows the payload from it.
type Parts = (u8, [u32; 3], u16, u8, Vec<u8>);

fn parts() -> impl Strategy<Value = Parts> {
    (
        0u8..18,
        any::<[u32; 3]>(),
        any::<u16>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
}

fn build((kind, [a, b, c], port, id, payload): &Parts) -> Message<'_> {
    let block = BlockRef {
        piece: *a,
        offset: *b,
        len: *c,
    };
    match kind {
        0 => Message::KeepAlive,
        1 => Message::Choke,
        2 => Message::Unchoke,
        3 => Message::Interested,
        4 => Message::NotInterested,
        5 => Message::Have(*a),
        6 => Message::Bitfield(payload),
        7 => Message::Request(block),
        8 => Message::Piece {
            piece: *a,
            offset: *b,
            data: payload,
        },
        9 => Message::Cancel(block),
        10 => Message::Port(*port),
        11 => Message::SuggestPiece(*a),
        12 => Message::HaveAll,
        13 => Message::HaveNone,
        14 => Message::RejectRequest(block),
        15 => Message::AllowedFast(*a),
        16 => Message::Extended { id: *id, payload },
        _ => Message::Unknown {
            // Known ids would decode as their own kind; 0x80 | id is never known.
            id: if message_name(*id) == "unknown" {
                *id
            } else {
                0x80 | *id
            },
            payload,
        },
    }
}

proptest! {
    #[test]
    fn round_trip(parts in parts()) {
        let message = build(&parts);
        let bytes = encode(&message);
        prop_assert_eq!(decode(&bytes), Ok(Some((message, bytes.len()))));
    }

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96), max_len: u32) {
        let mut rest = &bytes[..];
        while let Ok(Some((_, used))) = decode_message(rest, max_len) {
            prop_assert!(used >= 4 && used <= rest.len());
            rest = &rest[used..];
        }
    }

    #[test]
    fn never_panics_on_plausible_frames(id in 0u8..24, body in proptest::collection::vec(any::<u8>(), 0..20)) {
        let mut bytes = (body.len() as u32 + 1).to_be_bytes().to_vec();
        bytes.push(id);
        bytes.extend_from_slice(&body);
        let _ = decode(&bytes);
    }

    #[test]
    fn concatenated_messages_decode_in_order(all in proptest::collection::vec(parts(), 0..8)) {
        let messages: Vec<_> = all.iter().map(build).collect();
        let mut stream = Vec::new();
        for message in &messages {
            message.encode(&mut stream);
        }
        let mut rest = &stream[..];
        let mut decoded = Vec::new();
        while let Some((message, used)) = decode(rest).unwrap() {
            decoded.push(message);
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(decoded, messages);
    }
}
