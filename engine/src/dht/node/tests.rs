use super::*;
use crate::dht::krpc::{Body, Message, Query};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn addr(n: u32) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + n), 6881)
}

fn id_of(n: u32) -> NodeId {
    let mut r = SplitMix64::new(u64::from(n) + 1000);
    let mut b = [0u8; 20];
    for c in b.chunks_mut(4) {
        c.copy_from_slice(&r.next_u32().to_be_bytes());
    }
    NodeId(b)
}

/// A tiny network with instant delivery: every datagram reaches its node 1 ms later.
struct Net {
    nodes: Vec<Node>,
    now: Duration,
}

impl Net {
    fn new(n: u32) -> Net {
        let nodes = (0..n)
            .map(|i| {
                let cfg = Config {
                    seed: u64::from(i),
                    ..Config::default()
                };
                Node::new(id_of(i), cfg, Duration::ZERO)
            })
            .collect();
        Net {
            nodes,
            now: Duration::ZERO,
        }
    }

    fn index(a: SocketAddr) -> Option<usize> {
        match a {
            SocketAddr::V4(a) => Some((u32::from(*a.ip()) - 0x0A00_0000) as usize),
            SocketAddr::V6(_) => None,
        }
    }

    /// Delivers until no datagram is left, then fires due timers; repeats `rounds` times.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(t) = self.nodes[i].poll_transmit() {
                    any = true;
                    if let Some(j) = Self::index(t.dest).filter(|j| *j < self.nodes.len()) {
                        self.now += ms(1);
                        let from = SocketAddr::V4(addr(i as u32));
                        self.nodes[j].handle_packet(self.now, from, &t.bytes);
                    }
                }
            }
            if !any {
                return;
            }
        }
        panic!("network never settled");
    }

    fn events(&mut self, i: usize) -> Vec<Event> {
        std::iter::from_fn(|| self.nodes[i].poll_event()).collect()
    }
}

fn join_all(net: &mut Net) {
    for i in 1..net.nodes.len() {
        let now = net.now;
        net.nodes[i]
            .bootstrap(now, &[SocketAddr::V4(addr(0))])
            .unwrap();
        net.settle();
    }
    // A second pass so the first joiners learn of the later ones.
    for i in 0..net.nodes.len() {
        let now = net.now;
        net.nodes[i]
            .bootstrap(now, &[SocketAddr::V4(addr(0))])
            .unwrap();
        net.settle();
    }
}

#[test]
fn lookups_converge_and_announced_peers_are_found() {
    let mut net = Net::new(40);
    join_all(&mut net);
    for n in &net.nodes {
        n.check_invariants();
        assert!(n.table().len() >= 8, "table of {} nodes", n.table().len());
    }
    let hash = InfoHash::from(id_of(9999));
    let now = net.now;
    net.nodes[5].announce(now, hash, Some(7000)).unwrap();
    net.settle();
    let done = net.events(5);
    let announced = done.iter().find_map(|e| match e {
        Event::LookupDone {
            kind: LookupKind::Announce { .. },
            stats,
            ..
        } => Some(stats.announced),
        _ => None,
    });
    assert_eq!(announced, Some(8));
    // The 8 nodes closest to the hash hold the peer.
    let mut by_distance: Vec<usize> = (0..40).collect();
    by_distance.sort_by_key(|&i| net.nodes[i].id().distance(&hash.into()));
    let holders = by_distance
        .iter()
        .take(8)
        .filter(|&&i| net.nodes[i].storage().peer_count(&hash.into()) == 1)
        .count();
    assert!(holders >= 7, "{holders} of the 8 closest hold the peer");

    let now = net.now;
    let lid = net.nodes[30].get_peers(now, hash).unwrap();
    net.settle();
    let events = net.events(30);
    let found: Vec<SocketAddrV4> = events
        .iter()
        .filter_map(|e| match e {
            Event::Peers { lookup, peers, .. } if *lookup == lid => Some(peers.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(found, vec![SocketAddrV4::new(*addr(5).ip(), 7000)]);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::LookupDone { lookup, .. } if *lookup == lid)));
}

fn query_bytes(tid: &[u8], q: Query) -> Vec<u8> {
    Message {
        tid: tid.to_vec(),
        body: Body::Query(q),
        ip: None,
        read_only: false,
    }
    .encode()
}

fn replies(node: &mut Node) -> Vec<Message> {
    std::iter::from_fn(|| node.poll_transmit())
        .map(|t| Message::decode(&t.bytes).unwrap())
        .collect()
}

#[test]
fn a_flood_from_one_address_is_cut_to_its_budget() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    let flooder = SocketAddr::V4(addr(66));
    let ping = query_bytes(b"aa", Query::Ping { id: id_of(66) });
    for i in 0..10_000u64 {
        node.handle_packet(Duration::from_micros(i * 100), flooder, &ping);
    }
    // One second of flood: burst (40) plus about 10/s.
    let answered = replies(&mut node).len();
    assert!((40..=52).contains(&answered), "{answered}");
    assert!(node.stats().rate_limited > 9_000);
    // Someone else is still served.
    node.handle_packet(ms(1000), SocketAddr::V4(addr(7)), &ping);
    assert_eq!(replies(&mut node).len(), 1);
    node.check_invariants();
}

#[test]
fn unknown_transactions_and_garbage_change_nothing() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    let from = SocketAddr::V4(addr(3));
    let stray = Message {
        tid: b"zz".to_vec(),
        body: Body::Response(Response {
            id: id_of(3),
            nodes: (0..50)
                .map(|i| CompactNode {
                    id: id_of(100 + i),
                    addr: addr(100 + i),
                })
                .collect(),
            ..Response::default()
        }),
        ip: None,
        read_only: false,
    };
    node.handle_packet(ms(1), from, &stray.encode());
    node.handle_packet(ms(1), from, b"d1:t2:zz1:y1:ee");
    node.handle_packet(ms(1), from, &[0xFF; 3000]);
    node.handle_packet(ms(1), from, b"i42e");
    node.handle_packet(ms(1), "[::1]:6881".parse().unwrap(), b"d1:t2:zz1:y1:ee");
    assert_eq!(node.stats().unknown_transaction, 2);
    assert_eq!(node.stats().malformed, 2);
    assert_eq!(node.stats().ipv6_ignored, 1);
    assert!(node.table().is_empty(), "a stray answer adds nobody");
    assert!(node.poll_transmit().is_none(), "garbage gets no reply");
}

#[test]
fn answers_from_the_wrong_address_or_node_are_refused() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    node.bootstrap(ms(0), &[SocketAddr::V4(addr(1))]).unwrap();
    let sent = node.poll_transmit().unwrap();
    let q = Message::decode(&sent.bytes).unwrap();
    let answer = Message {
        tid: q.tid.clone(),
        body: Body::Response(Response {
            id: id_of(1),
            ..Response::default()
        }),
        ip: None,
        read_only: false,
    }
    .encode();
    node.handle_packet(ms(5), SocketAddr::V4(addr(2)), &answer);
    assert_eq!(node.stats().unknown_transaction, 1);
    assert_eq!(node.transactions_outstanding(), 1);
    node.handle_packet(ms(6), SocketAddr::V4(addr(1)), &answer);
    assert_eq!(node.transactions_outstanding(), 0);
    assert_eq!(node.table().len(), 1);
}

#[test]
fn malformed_and_unknown_queries_get_krpc_errors() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    let from = SocketAddr::V4(addr(3));
    node.handle_packet(
        ms(1),
        from,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:xy1:y1:qe",
    );
    node.handle_packet(ms(1), from, b"d1:ad2:id2:abe1:q4:ping1:t2:xz1:y1:qe");
    let got = replies(&mut node);
    let codes: Vec<(Vec<u8>, i64)> = got
        .into_iter()
        .map(|m| match m.body {
            Body::Error(e) => (m.tid, e.code),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(codes, vec![(b"xy".to_vec(), 204), (b"xz".to_vec(), 203)]);
}

#[test]
fn announce_needs_the_token_given_to_that_address() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    let a = SocketAddr::V4(addr(3));
    let hash = id_of(500);
    node.handle_packet(
        ms(1),
        a,
        &query_bytes(
            b"g1",
            Query::GetPeers {
                id: id_of(3),
                info_hash: hash,
            },
        ),
    );
    let token = match replies(&mut node).remove(0).body {
        Body::Response(r) => r.token.unwrap(),
        other => panic!("{other:?}"),
    };
    let announce = |token: Vec<u8>, implied_port| {
        query_bytes(
            b"a1",
            Query::AnnouncePeer {
                id: id_of(3),
                info_hash: hash,
                port: 9000,
                implied_port,
                token,
            },
        )
    };
    // Another address with the same token is refused.
    node.handle_packet(
        ms(2),
        SocketAddr::V4(addr(4)),
        &announce(token.clone(), false),
    );
    assert!(matches!(replies(&mut node)[0].body, Body::Error(_)));
    assert_eq!(node.stats().bad_tokens, 1);
    // The right address, implied port: the packet's source port is stored.
    node.handle_packet(ms(3), a, &announce(token, true));
    assert!(matches!(replies(&mut node)[0].body, Body::Response(_)));
    let mut rng = SplitMix64::new(0);
    assert_eq!(
        node.storage().peers(ms(4), &hash, 10, &mut rng),
        vec![addr(3)]
    );
}

#[test]
fn lookups_beyond_the_cap_are_busy() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    assert_eq!(
        node.get_peers(ms(0), id_of(1).into()),
        Err(DhtError::NoNodes)
    );
    for i in 0..16 {
        node.bootstrap(ms(0), &[SocketAddr::V4(addr(i))]).unwrap();
    }
    assert_eq!(
        node.bootstrap(ms(0), &[SocketAddr::V4(addr(99))]),
        Err(DhtError::Busy { max: 16 })
    );
    // Every query times out; the lookups end and report.
    node.handle_timeout(ms(2000));
    let done = std::iter::from_fn(|| node.poll_event())
        .filter(|e| matches!(e, Event::LookupDone { .. }))
        .count();
    assert_eq!(done, 16);
    assert_eq!(node.lookups_running(), 0);
    assert_eq!(node.stats().timeouts, 16);
}

#[test]
fn snapshot_round_trips_and_bad_snapshots_are_refused() {
    let mut net = Net::new(20);
    join_all(&mut net);
    let snap = net.nodes[3].routing_table_snapshot();
    assert_eq!(Node::snapshot_id(&snap), Ok(net.nodes[3].id()));
    let mut fresh = Node::new(net.nodes[3].id(), Config::default(), net.now);
    let added = fresh.load_routing_table(net.now, &snap).unwrap();
    assert_eq!(added, net.nodes[3].table().len());
    assert_eq!(
        fresh.load_routing_table(net.now, b"nonsense"),
        Err(SnapshotError::BadMagic)
    );
    let mut cut = snap.clone();
    cut.pop();
    assert!(matches!(
        fresh.load_routing_table(net.now, &cut),
        Err(SnapshotError::BadLength(_))
    ));
}

#[test]
fn agreeing_answers_give_us_a_bep42_id() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    let external = Ipv4Addr::new(124, 31, 75, 21);
    for i in 1..=5u32 {
        let peer = SocketAddrV4::new(Ipv4Addr::new(80, 0, 0, i as u8), 6881);
        node.bootstrap(ms(0), &[SocketAddr::V4(peer)]).unwrap();
        let sent: Vec<Transmit> = std::iter::from_fn(|| node.poll_transmit()).collect();
        let to_peer = sent
            .iter()
            .find(|t| t.dest == SocketAddr::V4(peer))
            .unwrap();
        let q = Message::decode(&to_peer.bytes).unwrap();
        let answer = Message {
            tid: q.tid,
            body: Body::Response(Response {
                id: id_of(i),
                ..Response::default()
            }),
            ip: Some(SocketAddrV4::new(external, 6881)),
            read_only: false,
        };
        node.handle_packet(ms(1), SocketAddr::V4(peer), &answer.encode());
    }
    assert_eq!(node.external_ip(), Some(external));
    assert!(node.id().is_valid_for(external));
    assert!(std::iter::from_fn(|| node.poll_event()).any(|e| matches!(e, Event::IdChanged { .. })));
    assert_eq!(
        node.table().len(),
        5,
        "the table was rebuilt around the new id"
    );
    node.check_invariants();
}

#[test]
fn enforced_bep42_keeps_mismatched_public_nodes_out() {
    let cfg = Config {
        enforce_node_id: true,
        ..Config::default()
    };
    let mut node = Node::new(id_of(0), cfg, Duration::ZERO);
    let public = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(8, 8, 8, 8), 6881));
    node.handle_packet(
        ms(1),
        public,
        &query_bytes(b"p1", Query::Ping { id: id_of(5) }),
    );
    assert!(node.table().is_empty());
    assert_eq!(node.stats().bep42_rejected, 1);
    assert_eq!(replies(&mut node).len(), 1, "still answered");
    let good = NodeId::bep42(Ipv4Addr::new(8, 8, 8, 8), &id_of(5));
    node.handle_packet(ms(2), public, &query_bytes(b"p2", Query::Ping { id: good }));
    assert_eq!(node.table().len(), 1);
}

/// A node answering our query with thousands of nodes: the oversized packet is refused
/// whole; one that fits (70 nodes) adds at most `nodes_per_response_max` candidates.
#[test]
fn an_answer_with_thousands_of_nodes_is_bounded() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    let peer = SocketAddr::V4(addr(1));
    node.bootstrap(ms(0), &[peer]).unwrap();
    let q = Message::decode(&node.poll_transmit().unwrap().bytes).unwrap();
    let answer = |n: u32| {
        Message {
            tid: q.tid.clone(),
            body: Body::Response(Response {
                id: id_of(1),
                nodes: (0..n)
                    .map(|i| CompactNode {
                        id: id_of(100 + i),
                        addr: addr(100 + i),
                    })
                    .collect(),
                ..Response::default()
            }),
            ip: None,
            read_only: false,
        }
        .encode()
    };
    node.handle_packet(ms(1), peer, &answer(5000));
    assert_eq!(node.stats().malformed, 1);
    assert_eq!(
        node.transactions_outstanding(),
        1,
        "still waiting for a real answer"
    );
    let fits = answer(70);
    assert!(fits.len() <= krpc::PACKET_LEN_MAX);
    node.handle_packet(ms(2), peer, &fits);
    // alpha queries go out to the closest of at most 16 new candidates.
    let sent: Vec<Transmit> = std::iter::from_fn(|| node.poll_transmit()).collect();
    assert_eq!(sent.len(), 3);
    let allowed: HashSet<SocketAddr> = (100..116).map(|i| SocketAddr::V4(addr(i))).collect();
    assert!(
        sent.iter().all(|t| allowed.contains(&t.dest)),
        "only the first 16 nodes are used"
    );
    node.check_invariants();
}

/// After 15 minutes without change, maintenance refreshes buckets with `find_node` lookups
/// for targets inside them, and pings nodes that went questionable.
#[test]
fn idle_buckets_are_refreshed_and_questionable_nodes_pinged() {
    let mut net = Net::new(20);
    join_all(&mut net);
    let later = net.now + Duration::from_secs(15 * 60 + 10);
    let node = &mut net.nodes[3];
    let _ = std::iter::from_fn(|| node.poll_transmit()).count();
    node.handle_timeout(later);
    let sent: Vec<Message> = std::iter::from_fn(|| node.poll_transmit())
        .map(|t| Message::decode(&t.bytes).unwrap())
        .collect();
    let own = node.id();
    let refresh_targets: Vec<usize> = sent
        .iter()
        .filter_map(|m| match &m.body {
            Body::Query(Query::FindNode { target, .. }) => Some(own.common_prefix_bits(target)),
            _ => None,
        })
        .collect();
    let pings = sent
        .iter()
        .filter(|m| matches!(m.body, Body::Query(Query::Ping { .. })))
        .count();
    assert!(!refresh_targets.is_empty(), "{sent:?}");
    assert!(
        refresh_targets.iter().all(|&b| b <= 1),
        "buckets 0 and 1 first: {refresh_targets:?}"
    );
    assert_eq!(pings, 4, "PINGS_PER_TICK questionable nodes pinged");
    assert!(node.lookups_running() >= 1);
    node.check_invariants();
}

/// BEP 51: `sample_infohashes` answers with stored hashes, their count, an interval and
/// nodes near the target.
#[test]
fn sample_infohashes_reports_what_is_stored() {
    let mut node = Node::new(id_of(0), Config::default(), Duration::ZERO);
    let a = SocketAddr::V4(addr(3));
    let hashes: Vec<NodeId> = (0..30).map(|i| id_of(700 + i)).collect();
    for (i, h) in hashes.iter().enumerate() {
        // A second apart, within the per-address rate.
        let now = ms(1000 * i as u64);
        let tid = [b'g', i as u8];
        node.handle_packet(
            now,
            a,
            &query_bytes(
                &tid,
                Query::GetPeers {
                    id: id_of(3),
                    info_hash: *h,
                },
            ),
        );
        let token = match replies(&mut node).remove(0).body {
            Body::Response(r) => r.token.unwrap(),
            other => panic!("{other:?}"),
        };
        let q = Query::AnnouncePeer {
            id: id_of(3),
            info_hash: *h,
            port: 9000,
            implied_port: false,
            token,
        };
        node.handle_packet(now, a, &query_bytes(&[b'a', i as u8], q));
        assert!(matches!(replies(&mut node)[0].body, Body::Response(_)));
    }
    let q = Query::SampleInfohashes {
        id: id_of(4),
        target: id_of(5),
    };
    node.handle_packet(ms(30_000), SocketAddr::V4(addr(4)), &query_bytes(b"s1", q));
    match replies(&mut node).remove(0).body {
        Body::Response(r) => {
            assert_eq!(r.num, Some(30));
            assert_eq!(r.samples.len(), 20);
            assert!(r.samples.iter().all(|s| hashes.contains(s)));
            assert!(r.interval.is_some());
            assert_eq!(r.nodes.len(), 2, "the two nodes that queried us");
        }
        other => panic!("{other:?}"),
    }
}
