use super::*;
use proptest::prelude::*;

fn id(s: &[u8; 20]) -> NodeId {
    NodeId(*s)
}

/// BEP 5's example packets decode to what they say and re-encode byte for byte.
#[test]
fn bep5_examples_round_trip_exactly() {
    let cases: Vec<(&[u8], Message)> = vec![
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
            Message {
                tid: b"aa".to_vec(),
                body: Body::Query(Query::Ping {
                    id: id(b"abcdefghij0123456789"),
                }),
                ip: None,
                read_only: false,
            },
        ),
        (
            b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
            Message {
                tid: b"aa".to_vec(),
                body: Body::Response(Response {
                    id: id(b"mnopqrstuvwxyz123456"),
                    ..Response::default()
                }),
                ip: None,
                read_only: false,
            },
        ),
        (
            b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
            Message {
                tid: b"aa".to_vec(),
                body: Body::Error(ErrorBody {
                    code: 201,
                    message: "A Generic Error Ocurred".into(),
                }),
                ip: None,
                read_only: false,
            },
        ),
        (
            b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
            Message {
                tid: b"aa".to_vec(),
                body: Body::Query(Query::AnnouncePeer {
                    id: id(b"abcdefghij0123456789"),
                    info_hash: id(b"mnopqrstuvwxyz123456"),
                    port: 6881,
                    implied_port: true,
                    token: b"aoeusnth".to_vec(),
                }),
                ip: None,
                read_only: false,
            },
        ),
        (
            b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
            Message {
                tid: b"aa".to_vec(),
                body: Body::Response(Response {
                    id: id(b"abcdefghij0123456789"),
                    token: Some(b"aoeusnth".to_vec()),
                    values: vec![
                        parse_compact_addr(b"axje.u"),
                        parse_compact_addr(b"idhtnm"),
                    ],
                    ..Response::default()
                }),
                ip: None,
                read_only: false,
            },
        ),
    ];
    for (bytes, msg) in cases {
        assert_eq!(Message::decode(bytes).as_ref(), Ok(&msg));
        assert_eq!(msg.encode(), bytes, "{msg:?}");
    }
}

#[test]
fn oversized_packet_is_refused_before_parsing() {
    let mut big = b"d1:t2:aa1:y1:r1:rd2:id20:abcdefghij01234567895:nodes".to_vec();
    big.extend_from_slice(format!("{}:", 26 * 4000).as_bytes());
    big.resize(big.len() + 26 * 4000, 0);
    big.extend_from_slice(b"ee");
    let err = Message::decode(&big).unwrap_err();
    assert!(matches!(err.error, KrpcError::TooLarge { .. }), "{err}");
}

#[test]
fn malformed_queries_keep_their_tid_for_the_error_reply() {
    let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:xy1:y1:qe";
    let err = Message::decode(unknown).unwrap_err();
    assert_eq!(err.tid.as_deref(), Some(&b"xy"[..]));
    assert!(err.was_query);
    assert_eq!(err.error.reply_code(), ERROR_METHOD_UNKNOWN);

    let short_id = b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe";
    let err = Message::decode(short_id).unwrap_err();
    assert_eq!(err.error, KrpcError::Invalid("id"));
    assert_eq!(err.error.reply_code(), ERROR_PROTOCOL);

    let bad_port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    assert_eq!(
        Message::decode(bad_port).unwrap_err().error,
        KrpcError::Invalid("port")
    );
}

#[test]
fn field_length_rules() {
    let long_tid = format!(
        "d1:rd2:id20:abcdefghij0123456789e1:t17:{}1:y1:re",
        "x".repeat(17)
    );
    assert!(matches!(
        Message::decode(long_tid.as_bytes()).unwrap_err().error,
        KrpcError::TidTooLong { len: 17, .. }
    ));
    let ragged_nodes = b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(ragged_nodes).unwrap_err().error,
        KrpcError::Invalid("nodes")
    );
    let bad_value = b"d1:rd2:id20:abcdefghij01234567896:valuesl3:abcee1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(bad_value).unwrap_err().error,
        KrpcError::Invalid("values")
    );
    // IPv6 values are skipped, not errors.
    let v6 = format!(
        "d1:rd2:id20:abcdefghij01234567896:valuesl18:{}ee1:t2:aa1:y1:re",
        "z".repeat(18)
    );
    match Message::decode(v6.as_bytes()).unwrap().body {
        Body::Response(r) => assert!(r.values.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(Message::decode(b"li1ee").is_err());
    assert!(Message::decode(b"").is_err());
    assert!(Message::decode(b"d1:t2:aa1:y1:ze").is_err());
}

fn arb_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId)
}

fn arb_addr() -> impl Strategy<Value = SocketAddrV4> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(ip.into(), port))
}

fn arb_query() -> impl Strategy<Value = Query> {
    prop_oneof![
        arb_id().prop_map(|id| Query::Ping { id }),
        (arb_id(), arb_id()).prop_map(|(id, target)| Query::FindNode { id, target }),
        (arb_id(), arb_id()).prop_map(|(id, info_hash)| Query::GetPeers { id, info_hash }),
        (arb_id(), arb_id()).prop_map(|(id, target)| Query::SampleInfohashes { id, target }),
        (
            arb_id(),
            arb_id(),
            1u16..,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..=TOKEN_LEN_MAX)
        )
            .prop_map(|(id, info_hash, port, implied_port, token)| {
                Query::AnnouncePeer {
                    id,
                    info_hash,
                    port,
                    implied_port,
                    token,
                }
            }),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    (
        arb_id(),
        proptest::collection::vec(
            (arb_id(), arb_addr()).prop_map(|(id, addr)| CompactNode { id, addr }),
            0..16,
        ),
        proptest::collection::vec(arb_addr(), 0..50),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        proptest::collection::vec(arb_id(), 0..10),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(
            |(id, nodes, values, token, samples, num, interval)| Response {
                id,
                nodes,
                values,
                token,
                samples,
                num,
                interval,
            },
        )
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        proptest::collection::vec(any::<u8>(), 0..=TID_LEN_MAX),
        prop_oneof![
            arb_query().prop_map(Body::Query),
            arb_response().prop_map(Body::Response),
            (any::<i64>(), "[a-zA-Z ]{0,40}")
                .prop_map(|(code, message)| Body::Error(ErrorBody { code, message })),
        ],
        proptest::option::of(arb_addr()),
        any::<bool>(),
    )
        .prop_map(|(tid, body, ip, read_only)| Message {
            tid,
            body,
            ip,
            read_only,
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(msg in arb_message()) {
        let bytes = msg.encode();
        prop_assert!(bytes.len() <= PACKET_LEN_MAX);
        prop_assert_eq!(Message::decode(&bytes), Ok(msg));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = Message::decode(&bytes);
    }

    /// Mutating a valid packet (the likelier hostile input) never panics either.
    #[test]
    fn mutated_packets_never_panic(msg in arb_message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = msg.encode();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        let _ = Message::decode(&bytes);
    }
}
