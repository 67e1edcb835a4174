//! Connections as TCP gives them to the shards: reliable and ordered each way, bounded by
//! the socket buffers, slowed by the sender's uplink, its delay and its losses.

use std::time::Duration;

use ccbt_engine::session::PeerKey;

use crate::events::NodeId;

pub type ConnId = usize;
/// 0 is the end that dialled, 1 the end that accepted.
pub type Side = usize;

/// Retransmission timeout after a first loss; doubles while losses repeat.
pub const RTO_MIN: Duration = Duration::from_millis(200);
const RTO_MAX: Duration = Duration::from_secs(60);

/// One end of a connection.
#[derive(Debug)]
pub struct End {
    pub node: NodeId,
    /// The engine's key for the peer at the other end; `None` at a scripted node.
    pub key: Option<PeerKey>,
    /// Bytes this end wrote that the other has not read yet (at most the send buffer,
    /// plus what one write put over it).
    pub in_flight: u64,
    /// When the last byte this end wrote arrives: later writes arrive after it.
    pub last_arrival: Duration,
    pub rto: Duration,
    /// Since when this end has had something to write and no room to write it.
    pub blocked_since: Option<Duration>,
    /// A stall check is scheduled for this end.
    pub stall_check: bool,
    /// Bytes received but not yet a whole message.
    pub partial: Vec<u8>,
    /// This end is gone: what arrives for it is discarded.
    pub closed: bool,
}

impl End {
    /// Marks this end gone and frees its buffer; `false` if it already was.
    pub fn close(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        self.partial = Vec::new();
        true
    }

    pub fn new(node: NodeId, key: Option<PeerKey>) -> End {
        End {
            node,
            key,
            in_flight: 0,
            last_arrival: Duration::ZERO,
            rto: RTO_MIN,
            blocked_since: None,
            stall_check: false,
            partial: Vec::new(),
            closed: false,
        }
    }
}

#[derive(Debug)]
pub struct Conn {
    pub ends: [End; 2],
    /// One-way delay each way.
    pub delay: Duration,
}

impl Conn {
    pub fn is_open(&self) -> bool {
        !self.ends[0].closed && !self.ends[1].closed
    }

    /// When a segment of `len` bytes written now at `side` arrives, and the sender's
    /// uplink is busy until `uplink_free_at` (updated). `lost`: it must be sent again.
    pub fn schedule(
        &mut self,
        side: Side,
        now: Duration,
        len: u64,
        uplink: u64,
        uplink_free_at: &mut Duration,
        lost: bool,
    ) -> Duration {
        let start = now.max(*uplink_free_at);
        let sent = start + Duration::from_nanos(len * 1_000_000_000 / uplink.max(1));
        *uplink_free_at = sent;
        let end = &mut self.ends[side];
        let mut arrival = sent + self.delay;
        if lost {
            arrival += end.rto;
            end.rto = (end.rto * 2).min(RTO_MAX);
        } else {
            end.rto = RTO_MIN;
        }
        // Ordered: a segment sent again holds back everything after it.
        arrival = arrival.max(end.last_arrival);
        end.last_arrival = arrival;
        end.in_flight += len;
        arrival
    }
}
