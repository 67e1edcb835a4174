//! UDP tracker protocol (BEP 15): datagram codecs and a state machine for one announce
//! or one scrape of up to [`SCRAPE_HASHES_MAX`] torrents.
//!
//! An announce is two round trips: `connect` yields a connection id (proof that our
//! address is not spoofed), then `announce` uses it. A connection id may be reused for one
//! minute, so a caller that caches it skips the first round trip.

use std::net::SocketAddr;
use std::time::Duration;

use super::announce::{clamp_interval, message, push_compact_peers};
use super::{Announce, AnnounceResponse, ScrapeStats, TrackerError};
use crate::hash::InfoHash;
use crate::rng::SplitMix64;

/// The magic constant a connect request starts with.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// How long a connection id stays valid after the tracker issued it.
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);

/// Most info hashes in one scrape request (BEP 15: the reply must fit a datagram).
pub const SCRAPE_HASHES_MAX: usize = 74;

/// Most tries BEP 15 allows: retransmissions wait 15 · 2ⁿ s for n = 0..=8.
pub const TRIES_MAX: u32 = 9;

/// The first retransmission timeout.
const RETRANSMIT_BASE: Duration = Duration::from_secs(15);

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// A decoded tracker datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpResponse {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        transaction_id: u32,
        /// Seconds, as sent (not yet clamped).
        interval: u32,
        leechers: u32,
        seeders: u32,
        /// At most [`PEERS_MAX`](super::PEERS_MAX); port-0 entries dropped.
        peers: Vec<SocketAddr>,
    },
    /// Counts in the order the request listed the info hashes.
    Scrape {
        transaction_id: u32,
        stats: Vec<ScrapeStats>,
    },
    Error {
        transaction_id: u32,
        message: String,
    },
}

impl UdpResponse {
    pub fn transaction_id(&self) -> u32 {
        match self {
            UdpResponse::Connect { transaction_id, .. }
            | UdpResponse::Announce { transaction_id, .. }
            | UdpResponse::Scrape { transaction_id, .. }
            | UdpResponse::Error { transaction_id, .. } => *transaction_id,
        }
    }
}

/// The 16-byte connect request.
pub fn connect_request(transaction_id: u32) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    out[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    out[12..].copy_from_slice(&transaction_id.to_be_bytes());
    out
}

/// The 98-byte announce request. The IP field is 0 (the tracker uses the sender's address);
/// `num_want` is -1 ("default") when unset.
pub fn announce_request(connection_id: u64, transaction_id: u32, a: &Announce) -> [u8; 98] {
    let num_want = a
        .num_want
        .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
    let mut out = [0; 98];
    let mut w = Writer::new(&mut out);
    w.put(&connection_id.to_be_bytes());
    w.put(&ACTION_ANNOUNCE.to_be_bytes());
    w.put(&transaction_id.to_be_bytes());
    w.put(a.info_hash.as_bytes());
    w.put(&a.peer_id);
    w.put(&a.downloaded.to_be_bytes());
    w.put(&a.left.to_be_bytes());
    w.put(&a.uploaded.to_be_bytes());
    w.put(&a.event.udp_code().to_be_bytes());
    w.put(&0u32.to_be_bytes());
    w.put(&a.key.to_be_bytes());
    w.put(&num_want.to_be_bytes());
    w.put(&a.port.to_be_bytes());
    out
}

/// A scrape request for up to [`SCRAPE_HASHES_MAX`] torrents; further hashes are left out
/// (the reply lists counts in request order, so the caller knows which were asked).
pub fn scrape_request(connection_id: u64, transaction_id: u32, hashes: &[InfoHash]) -> Vec<u8> {
    let hashes = &hashes[..hashes.len().min(SCRAPE_HASHES_MAX)];
    let mut out = Vec::with_capacity(16 + 20 * hashes.len());
    out.extend(connection_id.to_be_bytes());
    out.extend(ACTION_SCRAPE.to_be_bytes());
    out.extend(transaction_id.to_be_bytes());
    for h in hashes {
        out.extend(h.as_bytes());
    }
    out
}

/// Decodes a datagram from a tracker. `ipv6` says whether the tracker was reached over
/// IPv6, which makes announce peers 18-byte IPv6 entries instead of 6-byte IPv4 ones.
pub fn parse_response(bytes: &[u8], ipv6: bool) -> Result<UdpResponse, TrackerError> {
    let mut r = Reader(bytes);
    let (action, transaction_id) = (r.u32()?, r.u32()?);
    match action {
        ACTION_CONNECT => Ok(UdpResponse::Connect {
            transaction_id,
            connection_id: r.u64()?,
        }),
        ACTION_ANNOUNCE => {
            let (interval, leechers, seeders) = (r.u32()?, r.u32()?, r.u32()?);
            let mut peers = Vec::new();
            push_compact_peers(r.0, ipv6, &mut peers).map_err(TrackerError::UdpProtocol)?;
            Ok(UdpResponse::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            })
        }
        ACTION_SCRAPE => {
            if r.0.len() % 12 != 0 {
                return Err(protocol(
                    "scrape reply is not a whole number of 12-byte entries",
                ));
            }
            let stats =
                r.0.chunks_exact(12)
                    .map(|c| {
                        let mut c = Reader(c);
                        Ok(ScrapeStats {
                            complete: c.u32()?,
                            downloaded: c.u32()?,
                            incomplete: c.u32()?,
                        })
                    })
                    .collect::<Result<_, TrackerError>>()?;
            Ok(UdpResponse::Scrape {
                transaction_id,
                stats,
            })
        }
        ACTION_ERROR => Ok(UdpResponse::Error {
            transaction_id,
            message: message(r.0),
        }),
        other => Err(protocol(&format!("unknown action {other}"))),
    }
}

/// What the caller should do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpStep {
    /// Send this datagram to the tracker.
    Send(Vec<u8>),
    /// The announce succeeded.
    Done(AnnounceResponse),
    /// The scrape succeeded: counts in the order the hashes were asked (a tracker may
    /// answer for fewer; never more).
    Scraped(Vec<ScrapeStats>),
    /// The announce failed; nothing more will happen.
    Failed(TrackerError),
    /// Nothing to do (a stray datagram, an early timer).
    Ignore,
}

/// One announce to one UDP tracker, from the first datagram to an answer or giving up.
///
/// Retransmission follows one schedule for the whole exchange: the n-th timeout (counting
/// from 0) waits 15 · 2ⁿ s, and a reply to `connect` does not restart it, so an exchange
/// always ends after at most `max_tries` timeouts. A retransmitted announce whose
/// connection id has expired goes back to `connect`.
#[derive(Debug, Clone)]
pub struct UdpAnnouncer {
    ask: Ask,
    connection: Option<(u64, Duration)>,
    rng: SplitMix64,
    ipv6: bool,
    max_tries: u32,
    phase: Phase,
    transaction_id: u32,
    timeouts: u32,
    deadline: Duration,
}

/// What the exchange asks once connected.
#[derive(Debug, Clone)]
enum Ask {
    Announce(Announce),
    Scrape(Vec<InfoHash>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Connecting,
    Announcing,
    Finished,
}

impl UdpAnnouncer {
    /// `cached_connection` is a connection id and when it was obtained, from an earlier
    /// exchange with the same tracker; `seed` drives the transaction ids.
    pub fn new(announce: Announce, cached_connection: Option<(u64, Duration)>, seed: u64) -> Self {
        Self::asking(Ask::Announce(announce), cached_connection, seed)
    }

    /// A scrape of the first [`SCRAPE_HASHES_MAX`] of `hashes` instead of an announce;
    /// it ends in [`UdpStep::Scraped`].
    pub fn scrape(
        mut hashes: Vec<InfoHash>,
        cached_connection: Option<(u64, Duration)>,
        seed: u64,
    ) -> Self {
        hashes.truncate(SCRAPE_HASHES_MAX);
        Self::asking(Ask::Scrape(hashes), cached_connection, seed)
    }

    fn asking(ask: Ask, cached_connection: Option<(u64, Duration)>, seed: u64) -> Self {
        Self {
            ask,
            connection: cached_connection,
            rng: SplitMix64::new(seed),
            ipv6: false,
            max_tries: TRIES_MAX,
            phase: Phase::NotStarted,
            transaction_id: 0,
            timeouts: 0,
            deadline: Duration::MAX,
        }
    }

    /// Uses a connection id from an earlier exchange with the same tracker (and when it
    /// was obtained), before [`UdpAnnouncer::start`].
    pub fn set_connection(&mut self, cached_connection: Option<(u64, Duration)>) {
        self.connection = cached_connection;
    }

    /// Says the tracker is reached over IPv6, so announce replies carry IPv6 peers.
    pub fn set_ipv6(&mut self, ipv6: bool) {
        self.ipv6 = ipv6;
    }

    /// Gives up after `tries` unanswered datagrams instead of BEP 15's nine (clamped to
    /// 1..=[`TRIES_MAX`]).
    pub fn set_max_tries(&mut self, tries: u32) {
        self.max_tries = tries.clamp(1, TRIES_MAX);
    }

    /// The first datagram: `connect`, or `announce` straight away if the cached connection
    /// id is still valid.
    pub fn start(&mut self, now: Duration) -> Vec<u8> {
        self.timeouts = 0;
        self.request(now)
    }

    /// A datagram arrived from the tracker.
    pub fn on_datagram(&mut self, now: Duration, bytes: &[u8]) -> UdpStep {
        if !self.is_waiting() {
            return UdpStep::Ignore;
        }
        let ours = bytes
            .get(4..8)
            .is_some_and(|id| id == self.transaction_id.to_be_bytes());
        if !ours {
            return UdpStep::Ignore;
        }
        let step = match (self.phase, parse_response(bytes, self.ipv6)) {
            (_, Err(e)) => UdpStep::Failed(e),
            (Phase::Connecting, Ok(UdpResponse::Connect { connection_id, .. })) => {
                self.connection = Some((connection_id, now));
                return UdpStep::Send(self.request(now));
            }
            (
                Phase::Announcing,
                Ok(UdpResponse::Announce {
                    interval,
                    leechers,
                    seeders,
                    peers,
                    ..
                }),
            ) if matches!(self.ask, Ask::Announce(_)) => UdpStep::Done(AnnounceResponse {
                interval: clamp_interval(i64::from(interval)),
                min_interval: None,
                peers,
                seeders: Some(seeders),
                leechers: Some(leechers),
                warning: None,
                tracker_id: None,
            }),
            (Phase::Announcing, Ok(UdpResponse::Scrape { stats, .. })) => match &self.ask {
                Ask::Scrape(hashes) if stats.len() <= hashes.len() => UdpStep::Scraped(stats),
                Ask::Scrape(_) => {
                    UdpStep::Failed(protocol("the scrape reply has too many entries"))
                }
                Ask::Announce(_) => {
                    UdpStep::Failed(protocol("the reply does not match the request"))
                }
            },
            (_, Ok(UdpResponse::Error { message, .. })) => {
                UdpStep::Failed(TrackerError::Failure(message))
            }
            (_, Ok(_)) => UdpStep::Failed(protocol("the reply does not match the request")),
        };
        self.phase = Phase::Finished;
        step
    }

    /// When [`UdpAnnouncer::on_timeout`] should be called; `Duration::MAX` when not waiting.
    pub fn timeout(&self) -> Duration {
        if self.is_waiting() {
            self.deadline
        } else {
            Duration::MAX
        }
    }

    /// The timer fired: retransmit, or give up after `max_tries` datagrams went unanswered.
    pub fn on_timeout(&mut self, now: Duration) -> UdpStep {
        if !self.is_waiting() || now < self.deadline {
            return UdpStep::Ignore;
        }
        self.timeouts += 1;
        if self.timeouts >= self.max_tries {
            self.phase = Phase::Finished;
            return UdpStep::Failed(TrackerError::TimedOut {
                tries: self.timeouts,
            });
        }
        UdpStep::Send(self.request(now))
    }

    /// The connection id and when it was obtained, for the next exchange to reuse.
    pub fn connection(&self) -> Option<(u64, Duration)> {
        self.connection
    }

    fn is_waiting(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Announcing)
    }

    /// The datagram for the current step, with a fresh transaction id when the step
    /// changes (a retransmission keeps its id, so a late reply to it still counts).
    fn request(&mut self, now: Duration) -> Vec<u8> {
        let fresh = self
            .connection
            .filter(|&(_, at)| now.saturating_sub(at) < CONNECTION_ID_LIFETIME);
        let phase = if fresh.is_some() {
            Phase::Announcing
        } else {
            Phase::Connecting
        };
        if phase != self.phase {
            self.phase = phase;
            self.transaction_id = self.rng.next_u32();
        }
        let wait = RETRANSMIT_BASE.saturating_mul(1 << self.timeouts.min(TRIES_MAX - 1));
        self.deadline = now.saturating_add(wait);
        match fresh {
            Some((id, _)) => match &self.ask {
                Ask::Announce(a) => announce_request(id, self.transaction_id, a).to_vec(),
                Ask::Scrape(hashes) => scrape_request(id, self.transaction_id, hashes),
            },
            None => connect_request(self.transaction_id).to_vec(),
        }
    }
}

fn protocol(what: &str) -> TrackerError {
    TrackerError::UdpProtocol(what.to_string())
}

/// Big-endian reads that fail cleanly on short input.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], TrackerError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| protocol("datagram too short"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u32(&mut self) -> Result<u32, TrackerError> {
        self.take().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, TrackerError> {
        self.take().map(u64::from_be_bytes)
    }
}

/// Sequential writes into a fixed buffer whose size the caller computed.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Self { out, pos: 0 }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.out[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Sha1Digest;
    use crate::tracker::Event;
    use proptest::prelude::*;

    fn announce() -> Announce {
        Announce {
            info_hash: Sha1Digest([0xaa; 20]),
            peer_id: [0xbb; 20],
            port: 6881,
            uploaded: 3,
            downloaded: 1,
            left: 2,
            event: Event::Started,
            num_want: None,
            key: 0x0102_0304,
            tracker_id: None,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn connect_reply(tid: u32, cid: u64) -> Vec<u8> {
        [
            &0u32.to_be_bytes()[..],
            &tid.to_be_bytes(),
            &cid.to_be_bytes(),
        ]
        .concat()
    }

    fn announce_reply(tid: u32, peers: &[u8]) -> Vec<u8> {
        let head = [1u32, tid, 1800, 4, 5].map(u32::to_be_bytes).concat();
        [&head[..], peers].concat()
    }

    fn tid_of(datagram: &[u8]) -> u32 {
        u32::from_be_bytes(datagram[12..16].try_into().unwrap())
    }

    /// Test-only decoder for announce requests: the tracker's side of the codec.
    fn decode_announce_request(b: &[u8; 98]) -> (u64, u32, Announce) {
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap());
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        assert_eq!(u32_at(8), ACTION_ANNOUNCE);
        assert_eq!(u32_at(84), 0, "ip field");
        let event = match u32_at(80) {
            0 => Event::None,
            1 => Event::Completed,
            2 => Event::Started,
            3 => Event::Stopped,
            other => panic!("bad event {other}"),
        };
        let num_want = match u32_at(92) as i32 {
            -1 => None,
            n => Some(n as u32),
        };
        let announce = Announce {
            info_hash: Sha1Digest(b[16..36].try_into().unwrap()),
            peer_id: b[36..56].try_into().unwrap(),
            downloaded: u64_at(56),
            left: u64_at(64),
            uploaded: u64_at(72),
            event,
            key: u32_at(88),
            num_want,
            port: u16::from_be_bytes([b[96], b[97]]),
            tracker_id: None,
        };
        (u64_at(0), u32_at(12), announce)
    }

    #[test]
    fn connect_request_golden() {
        assert_eq!(
            connect_request(0x1234_5678),
            [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]
        );
    }

    #[test]
    fn announce_request_golden() {
        let got = announce_request(0x0102_0304_0506_0708, 0x0a0b_0c0d, &announce());
        let mut want = vec![1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d];
        want.extend([0xaa; 20]);
        want.extend([0xbb; 20]);
        want.extend([0, 0, 0, 0, 0, 0, 0, 1]); // downloaded
        want.extend([0, 0, 0, 0, 0, 0, 0, 2]); // left
        want.extend([0, 0, 0, 0, 0, 0, 0, 3]); // uploaded
        want.extend([0, 0, 0, 2]); // started
        want.extend([0, 0, 0, 0]); // ip
        want.extend([1, 2, 3, 4]); // key
        want.extend([0xff, 0xff, 0xff, 0xff]); // num_want -1
        want.extend([0x1a, 0xe1]); // 6881
        assert_eq!(got.to_vec(), want);
    }

    #[test]
    fn scrape_request_golden_and_capped() {
        let got = scrape_request(7, 9, &[Sha1Digest([1; 20]), Sha1Digest([2; 20])]);
        let mut want = vec![0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 9];
        want.extend([1; 20]);
        want.extend([2; 20]);
        assert_eq!(got, want);
        let many = vec![Sha1Digest([0; 20]); 100];
        assert_eq!(
            scrape_request(7, 9, &many).len(),
            16 + 20 * SCRAPE_HASHES_MAX
        );
    }

    #[test]
    fn responses_golden() {
        assert_eq!(
            parse_response(&connect_reply(5, 0x1122_3344_5566_7788), false),
            Ok(UdpResponse::Connect {
                transaction_id: 5,
                connection_id: 0x1122_3344_5566_7788
            })
        );
        assert_eq!(
            parse_response(&announce_reply(6, &[10, 0, 0, 1, 0x1a, 0xe1]), false),
            Ok(UdpResponse::Announce {
                transaction_id: 6,
                interval: 1800,
                leechers: 4,
                seeders: 5,
                peers: vec!["10.0.0.1:6881".parse().unwrap()],
            })
        );
        let mut v6 = vec![0; 15];
        v6.extend([1, 0, 80]);
        assert_eq!(
            parse_response(&announce_reply(6, &v6), true).map(|r| match r {
                UdpResponse::Announce { peers, .. } => peers,
                _ => vec![],
            }),
            Ok(vec!["[::1]:80".parse().unwrap()])
        );
        let scrape = [2u32, 7, 10, 20, 30].map(u32::to_be_bytes).concat();
        assert_eq!(
            parse_response(&scrape, false),
            Ok(UdpResponse::Scrape {
                transaction_id: 7,
                stats: vec![ScrapeStats {
                    complete: 10,
                    downloaded: 20,
                    incomplete: 30
                }],
            })
        );
        let error = [&3u32.to_be_bytes()[..], &8u32.to_be_bytes(), b"go away"].concat();
        assert_eq!(
            parse_response(&error, false),
            Ok(UdpResponse::Error {
                transaction_id: 8,
                message: "go away".into()
            })
        );
    }

    #[test]
    fn bad_responses() {
        assert!(parse_response(&[0; 7], false).is_err());
        assert!(parse_response(&connect_reply(1, 2)[..12], false).is_err());
        assert!(parse_response(&announce_reply(1, &[0; 5]), false).is_err());
        assert!(parse_response(&announce_reply(1, &[0; 6]), true).is_err());
        assert!(parse_response(&[0, 0, 0, 9, 0, 0, 0, 0], false).is_err());
    }

    #[test]
    fn full_exchange() {
        let mut a = UdpAnnouncer::new(announce(), None, 1);
        let connect = a.start(secs(0));
        assert_eq!(connect.len(), 16);
        assert_eq!(a.timeout(), secs(15));
        let tid = tid_of(&connect);
        // A stray reply with another transaction id changes nothing.
        assert_eq!(
            a.on_datagram(secs(1), &connect_reply(tid ^ 1, 99)),
            UdpStep::Ignore
        );
        let UdpStep::Send(req) = a.on_datagram(secs(1), &connect_reply(tid, 99)) else {
            panic!("expected an announce");
        };
        let (cid, tid, sent) = decode_announce_request(&req[..].try_into().unwrap());
        assert_eq!((cid, &sent), (99, &announce()));
        assert_eq!(a.connection(), Some((99, secs(1))));
        assert_eq!(
            a.on_datagram(secs(2), &announce_reply(tid ^ 1, &[])),
            UdpStep::Ignore
        );
        let step = a.on_datagram(secs(2), &announce_reply(tid, &[1, 2, 3, 4, 0, 80]));
        let UdpStep::Done(resp) = step else {
            panic!("expected done, got {step:?}");
        };
        assert_eq!(resp.interval, 1800);
        assert_eq!((resp.seeders, resp.leechers), (Some(5), Some(4)));
        assert_eq!(resp.peers, ["1.2.3.4:80".parse().unwrap()]);
        assert_eq!(a.timeout(), Duration::MAX);
        assert_eq!(
            a.on_datagram(secs(3), &announce_reply(tid, &[])),
            UdpStep::Ignore
        );
    }

    #[test]
    fn cached_connection_skips_connect_only_while_fresh() {
        let mut a = UdpAnnouncer::new(announce(), Some((42, secs(100))), 1);
        let req = a.start(secs(159));
        assert_eq!(decode_announce_request(&req[..].try_into().unwrap()).0, 42);
        let mut a = UdpAnnouncer::new(announce(), Some((42, secs(100))), 1);
        assert_eq!(a.start(secs(160)).len(), 16);
    }

    #[test]
    fn error_action_fails() {
        let mut a = UdpAnnouncer::new(announce(), None, 2);
        let tid = tid_of(&a.start(secs(0)));
        let error = [&3u32.to_be_bytes()[..], &tid.to_be_bytes(), b"bad\ninfo"].concat();
        assert_eq!(
            a.on_datagram(secs(1), &error),
            UdpStep::Failed(TrackerError::Failure("bad info".into()))
        );
        assert_eq!(a.on_timeout(secs(100)), UdpStep::Ignore);
    }

    #[test]
    fn wrong_action_for_the_step_fails() {
        let mut a = UdpAnnouncer::new(announce(), None, 3);
        let tid = tid_of(&a.start(secs(0)));
        assert!(matches!(
            a.on_datagram(secs(1), &announce_reply(tid, &[])),
            UdpStep::Failed(TrackerError::UdpProtocol(_))
        ));
    }

    #[test]
    fn retransmit_timeline_and_give_up() {
        let mut a = UdpAnnouncer::new(announce(), None, 4);
        let first = a.start(secs(0));
        let mut deadlines = vec![a.timeout()];
        assert_eq!(a.on_timeout(secs(14)), UdpStep::Ignore, "early timer");
        loop {
            match a.on_timeout(a.timeout()) {
                UdpStep::Send(again) => {
                    assert_eq!(again, first, "a retransmission repeats the datagram");
                    deadlines.push(a.timeout());
                }
                UdpStep::Failed(e) => {
                    assert_eq!(e, TrackerError::TimedOut { tries: TRIES_MAX });
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let expected: Vec<Duration> = (1..=TRIES_MAX).map(|n| secs(15 * ((1 << n) - 1))).collect();
        assert_eq!(deadlines, expected);
        assert_eq!(*deadlines.last().unwrap(), secs(7665));
        assert_eq!(a.timeout(), Duration::MAX);
    }

    #[test]
    fn max_tries_gives_up_sooner() {
        let mut a = UdpAnnouncer::new(announce(), None, 5);
        a.set_max_tries(2);
        a.start(secs(0));
        assert!(matches!(a.on_timeout(secs(15)), UdpStep::Send(_)));
        assert_eq!(
            a.on_timeout(secs(45)),
            UdpStep::Failed(TrackerError::TimedOut { tries: 2 })
        );
    }

    #[test]
    fn stale_connection_reconnects_on_retransmit() {
        let mut a = UdpAnnouncer::new(announce(), Some((42, secs(0))), 6);
        assert_eq!(a.start(secs(0)).len(), 98);
        let UdpStep::Send(again) = a.on_timeout(secs(15)) else {
            panic!()
        };
        assert_eq!(again.len(), 98);
        let UdpStep::Send(again) = a.on_timeout(secs(45)) else {
            panic!()
        };
        assert_eq!(again.len(), 98);
        let UdpStep::Send(again) = a.on_timeout(secs(105)) else {
            panic!()
        };
        assert_eq!(again.len(), 16, "the connection id expired at 60 s");
    }

    #[test]
    fn a_scrape_connects_then_asks_for_the_hashes_and_reads_the_counts() {
        let hashes: Vec<InfoHash> = (0..100u8).map(|i| Sha1Digest([i; 20])).collect();
        let mut a = UdpAnnouncer::scrape(hashes.clone(), None, 3);
        let connect = a.start(secs(0));
        let tid = tid_of(&connect);
        let UdpStep::Send(req) = a.on_datagram(secs(1), &connect_reply(tid, 42)) else {
            panic!("scrape request expected");
        };
        assert_eq!(
            req.len(),
            16 + 20 * SCRAPE_HASHES_MAX,
            "capped at 74 hashes"
        );
        assert_eq!(&req[..8], &42u64.to_be_bytes());
        assert_eq!(&req[8..12], &2u32.to_be_bytes());
        assert_eq!(&req[16..36], hashes[0].as_bytes());
        let tid = tid_of(&req);
        let reply = [2u32, tid, 5, 6, 7, 8, 9, 10]
            .map(u32::to_be_bytes)
            .concat();
        assert_eq!(
            a.on_datagram(secs(2), &reply),
            UdpStep::Scraped(vec![
                ScrapeStats {
                    complete: 5,
                    downloaded: 6,
                    incomplete: 7
                },
                ScrapeStats {
                    complete: 8,
                    downloaded: 9,
                    incomplete: 10
                },
            ])
        );
        // An announce reply to a scrape is a protocol error, and vice versa.
        let mut a = UdpAnnouncer::scrape(hashes[..1].to_vec(), Some((1, secs(0))), 4);
        let tid = tid_of(&a.start(secs(0)));
        let announce_reply = [1u32, tid, 60, 0, 0].map(u32::to_be_bytes).concat();
        assert!(matches!(
            a.on_datagram(secs(1), &announce_reply),
            UdpStep::Failed(_)
        ));
        let mut a = UdpAnnouncer::scrape(hashes[..1].to_vec(), Some((1, secs(0))), 4);
        let tid = tid_of(&a.start(secs(0)));
        let too_many = [2u32, tid, 1, 2, 3, 4, 5, 6].map(u32::to_be_bytes).concat();
        assert!(matches!(
            a.on_datagram(secs(1), &too_many),
            UdpStep::Failed(_)
        ));
    }

    proptest! {
        /// Junk (with our transaction id) fed to a scrape never panics, and a success
        /// never has more counts than hashes asked.
        #[test]
        fn scraper_never_panics_on_junk(
            n in 0usize..100,
            datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..128), 0..8),
        ) {
            let hashes: Vec<InfoHash> = (0..n).map(|i| Sha1Digest([i as u8; 20])).collect();
            let mut a = UdpAnnouncer::scrape(hashes, Some((9, secs(0))), 7);
            let tid = tid_of(&a.start(secs(0)));
            for mut d in datagrams {
                if d.len() >= 8 {
                    d[4..8].copy_from_slice(&tid.to_be_bytes());
                }
                if let UdpStep::Scraped(stats) = a.on_datagram(secs(1), &d) {
                    prop_assert!(stats.len() <= n.min(SCRAPE_HASHES_MAX));
                }
            }
        }

        #[test]
        fn parse_response_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            ipv6 in any::<bool>(),
        ) {
            let _ = parse_response(&bytes, ipv6);
        }

        #[test]
        fn announcer_never_panics_on_junk(
            datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        ) {
            let mut a = UdpAnnouncer::new(announce(), None, 7);
            let tid = tid_of(&a.start(secs(0)));
            for mut d in datagrams {
                if d.len() >= 8 {
                    d[4..8].copy_from_slice(&tid.to_be_bytes());
                }
                let _ = a.on_datagram(secs(1), &d);
            }
        }

        #[test]
        fn announce_request_round_trips(
            cid in any::<u64>(),
            tid in any::<u32>(),
            hash in any::<[u8; 20]>(),
            peer_id in any::<[u8; 20]>(),
            port in any::<u16>(),
            counters in any::<(u64, u64, u64)>(),
            event in 0u8..4,
            num_want in proptest::option::of(0u32..=i32::MAX as u32),
            key in any::<u32>(),
        ) {
            let a = Announce {
                info_hash: Sha1Digest(hash),
                peer_id,
                port,
                uploaded: counters.0,
                downloaded: counters.1,
                left: counters.2,
                event: [Event::None, Event::Started, Event::Completed, Event::Stopped][usize::from(event)],
                num_want,
                key,
                tracker_id: None,
            };
            let bytes = announce_request(cid, tid, &a);
            prop_assert_eq!(decode_announce_request(&bytes), (cid, tid, a));
        }
    }
}
