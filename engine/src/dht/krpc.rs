//! KRPC (BEP 5): the DHT's bencoded query/response/error messages over UDP, with compact
//! node info (26 bytes: id, IPv4, port) and compact peers (6 bytes). BEP 51's
//! `sample_infohashes` and BEP 42's `ip` field are included; BEP 43's `ro` flag is read.
//!
//! Decoding is bounded: a packet larger than [`PACKET_LEN_MAX`] is refused before bencode
//! sees it, the bencode decoder runs with [`LIMITS`], and every field has a length rule, so a
//! hostile packet costs at most a few kilobytes of work and memory. Errors carry the
//! transaction id when one was readable, so the node can answer a malformed query with a
//! KRPC error instead of silence.

use std::net::{Ipv4Addr, SocketAddrV4};

use thiserror::Error;

use super::id::NodeId;
use crate::bencode::{self, Dict, Limits, Value};

/// Largest datagram decoded. Real KRPC packets fit in one Ethernet frame (about 1,500
/// bytes); anything larger is refused whole.
pub const PACKET_LEN_MAX: usize = 2048;

/// Bencode bounds for one packet: KRPC nests at most three levels (message, `a`/`r`,
/// `values`), and a 2 KiB packet holds at most a few hundred values.
pub const LIMITS: Limits = Limits {
    depth_max: 4,
    string_len_max: PACKET_LEN_MAX,
    input_len_max: PACKET_LEN_MAX,
    items_max: 600,
};

/// Longest transaction id accepted from a peer. Ours are 2 bytes; others use up to 4 or 8.
pub const TID_LEN_MAX: usize = 16;

/// Longest announce token accepted. Ours are 8 bytes; libtorrent's 4, others' up to 20.
pub const TOKEN_LEN_MAX: usize = 40;

/// Length of one compact node info entry.
pub const COMPACT_NODE_LEN: usize = 26;

/// KRPC error codes (BEP 5).
pub const ERROR_GENERIC: i64 = 201;
pub const ERROR_SERVER: i64 = 202;
pub const ERROR_PROTOCOL: i64 = 203;
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id, echoed by the responder; at most [`TID_LEN_MAX`] bytes.
    pub tid: Vec<u8>,
    pub body: Body,
    /// BEP 42: the address the responder saw the query come from.
    pub ip: Option<SocketAddrV4>,
    /// BEP 43: a read-only node, which must not be added to routing tables.
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Query(Query),
    Response(Response),
    Error(ErrorBody),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Ping {
        id: NodeId,
    },
    FindNode {
        id: NodeId,
        target: NodeId,
    },
    GetPeers {
        id: NodeId,
        info_hash: NodeId,
    },
    /// `port` is ignored by the receiver when `implied_port` is set (BEP 5: the source port
    /// of the packet is used, which is what a peer behind NAT wants).
    AnnouncePeer {
        id: NodeId,
        info_hash: NodeId,
        port: u16,
        implied_port: bool,
        token: Vec<u8>,
    },
    /// BEP 51.
    SampleInfohashes {
        id: NodeId,
        target: NodeId,
    },
}

impl Query {
    /// The querying node's id.
    pub fn sender(&self) -> NodeId {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. }
            | Query::SampleInfohashes { id, .. } => *id,
        }
    }

    fn method(&self) -> &'static [u8] {
        match self {
            Query::Ping { .. } => b"ping",
            Query::FindNode { .. } => b"find_node",
            Query::GetPeers { .. } => b"get_peers",
            Query::AnnouncePeer { .. } => b"announce_peer",
            Query::SampleInfohashes { .. } => b"sample_infohashes",
        }
    }
}

/// A response. KRPC responses do not say which query they answer (the transaction id
/// does), so this holds every field any response may carry; absent ones are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub id: NodeId,
    pub nodes: Vec<CompactNode>,
    pub values: Vec<SocketAddrV4>,
    pub token: Option<Vec<u8>>,
    /// BEP 51 fields.
    pub samples: Vec<NodeId>,
    pub num: Option<i64>,
    pub interval: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: i64,
    pub message: String,
}

/// Compact node info: an id and where to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompactNode {
    pub id: NodeId,
    pub addr: SocketAddrV4,
}

impl CompactNode {
    pub fn to_bytes(&self) -> [u8; COMPACT_NODE_LEN] {
        let mut out = [0u8; COMPACT_NODE_LEN];
        out[..20].copy_from_slice(&self.id.0);
        out[20..].copy_from_slice(&compact_addr(&self.addr));
        out
    }

    /// Parses one 26-byte entry.
    pub fn from_bytes(b: &[u8; COMPACT_NODE_LEN]) -> CompactNode {
        let mut id = [0u8; 20];
        id.copy_from_slice(&b[..20]);
        let addr = parse_compact_addr(b[20..].try_into().expect("6 bytes"));
        CompactNode {
            id: NodeId(id),
            addr,
        }
    }
}

/// A 6-byte compact IPv4 address and port.
pub fn compact_addr(addr: &SocketAddrV4) -> [u8; 6] {
    let mut out = [0u8; 6];
    out[..4].copy_from_slice(&addr.ip().octets());
    out[4..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

pub fn parse_compact_addr(b: &[u8; 6]) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(b[0], b[1], b[2], b[3]),
        u16::from_be_bytes([b[4], b[5]]),
    )
}

/// Why a packet is not an acceptable KRPC message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KrpcError {
    #[error("packet of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    #[error("message is not a dictionary")]
    NotDict,
    #[error("missing key {0:?}")]
    Missing(&'static str),
    #[error("key {0:?} has the wrong type or length")]
    Invalid(&'static str),
    #[error("transaction id of {len} bytes exceeds {max}")]
    TidTooLong { len: usize, max: usize },
    #[error("unknown message type")]
    UnknownType,
    #[error("unknown query method {0:?}")]
    UnknownMethod(String),
}

impl KrpcError {
    /// The KRPC error code a node answers this with, if it answers at all.
    pub fn reply_code(&self) -> i64 {
        match self {
            KrpcError::UnknownMethod(_) => ERROR_METHOD_UNKNOWN,
            _ => ERROR_PROTOCOL,
        }
    }
}

/// A packet that failed to decode, with what could be read of it: the transaction id and
/// whether it was a query (only malformed queries get an error reply).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error}")]
pub struct Malformed {
    pub tid: Option<Vec<u8>>,
    pub was_query: bool,
    pub error: KrpcError,
}

impl Message {
    /// Decodes one datagram.
    pub fn decode(packet: &[u8]) -> Result<Message, Malformed> {
        let bare = |error| Malformed {
            tid: None,
            was_query: false,
            error,
        };
        if packet.len() > PACKET_LEN_MAX {
            return Err(bare(KrpcError::TooLarge {
                len: packet.len(),
                max: PACKET_LEN_MAX,
            }));
        }
        let value = bencode::decode(packet, &LIMITS).map_err(|e| bare(e.into()))?;
        let dict = value.as_dict().ok_or(bare(KrpcError::NotDict))?;
        let tid = match dict.get(b"t").and_then(Value::as_bytes) {
            None => return Err(bare(KrpcError::Missing("t"))),
            Some(t) if t.len() > TID_LEN_MAX => {
                return Err(bare(KrpcError::TidTooLong {
                    len: t.len(),
                    max: TID_LEN_MAX,
                }))
            }
            Some(t) => t.to_vec(),
        };
        let kind = dict.get(b"y").and_then(Value::as_bytes);
        let was_query = kind == Some(b"q");
        let with_tid = |error| Malformed {
            tid: Some(tid.clone()),
            was_query,
            error,
        };
        let body = match kind {
            Some(b"q") => Body::Query(decode_query(dict).map_err(with_tid)?),
            Some(b"r") => Body::Response(decode_response(dict).map_err(with_tid)?),
            Some(b"e") => Body::Error(decode_error(dict)),
            _ => return Err(with_tid(KrpcError::UnknownType)),
        };
        let ip = dict
            .get(b"ip")
            .and_then(Value::as_bytes)
            .and_then(|b| <&[u8; 6]>::try_from(b).ok())
            .map(parse_compact_addr);
        let read_only = dict.get(b"ro").and_then(Value::as_int) == Some(1);
        Ok(Message {
            tid,
            body,
            ip,
            read_only,
        })
    }

    /// Encodes canonically (sorted keys).
    pub fn encode(&self) -> Vec<u8> {
        let ip = self.ip.as_ref().map(compact_addr);
        let mut top = Dict::new().with(b"t", Value::Bytes(&self.tid));
        if let Some(ip) = &ip {
            top.insert(b"ip", Value::Bytes(ip));
        }
        if self.read_only {
            top.insert(b"ro", Value::Int(1));
        }
        // Owned buffers the bencode values borrow from.
        let nodes: Vec<u8>;
        let values: Vec<[u8; 6]>;
        let samples: Vec<u8>;
        match &self.body {
            Body::Query(q) => {
                top.insert(b"y", Value::Bytes(b"q"));
                top.insert(b"q", Value::Bytes(q.method()));
                let mut a = Dict::new().with(b"id", Value::Bytes(&[]));
                match q {
                    Query::Ping { id } => a.insert(b"id", Value::Bytes(&id.0)),
                    Query::FindNode { id, target } | Query::SampleInfohashes { id, target } => {
                        a.insert(b"id", Value::Bytes(&id.0));
                        a.insert(b"target", Value::Bytes(&target.0));
                    }
                    Query::GetPeers { id, info_hash } => {
                        a.insert(b"id", Value::Bytes(&id.0));
                        a.insert(b"info_hash", Value::Bytes(&info_hash.0));
                    }
                    Query::AnnouncePeer {
                        id,
                        info_hash,
                        port,
                        implied_port,
                        token,
                    } => {
                        a.insert(b"id", Value::Bytes(&id.0));
                        a.insert(b"info_hash", Value::Bytes(&info_hash.0));
                        a.insert(b"port", Value::Int(i64::from(*port)));
                        a.insert(b"token", Value::Bytes(token));
                        if *implied_port {
                            a.insert(b"implied_port", Value::Int(1));
                        }
                    }
                }
                top.insert(b"a", Value::Dict(a));
                bencode::encode(&Value::Dict(top))
            }
            Body::Response(r) => {
                top.insert(b"y", Value::Bytes(b"r"));
                let mut d = Dict::new().with(b"id", Value::Bytes(&r.id.0));
                nodes = r.nodes.iter().flat_map(|n| n.to_bytes()).collect();
                if !nodes.is_empty() {
                    d.insert(b"nodes", Value::Bytes(&nodes));
                }
                values = r.values.iter().map(compact_addr).collect();
                if !values.is_empty() {
                    d.insert(
                        b"values",
                        Value::List(values.iter().map(|v| Value::Bytes(v)).collect()),
                    );
                }
                if let Some(t) = &r.token {
                    d.insert(b"token", Value::Bytes(t));
                }
                samples = r.samples.iter().flat_map(|s| s.0).collect();
                if !samples.is_empty() {
                    d.insert(b"samples", Value::Bytes(&samples));
                }
                if let Some(n) = r.num {
                    d.insert(b"num", Value::Int(n));
                }
                if let Some(i) = r.interval {
                    d.insert(b"interval", Value::Int(i));
                }
                top.insert(b"r", Value::Dict(d));
                bencode::encode(&Value::Dict(top))
            }
            Body::Error(e) => {
                top.insert(b"y", Value::Bytes(b"e"));
                top.insert(
                    b"e",
                    Value::List(vec![Value::Int(e.code), Value::Bytes(e.message.as_bytes())]),
                );
                bencode::encode(&Value::Dict(top))
            }
        }
    }
}

fn id_field(d: &Dict<'_>, key: &'static str) -> Result<NodeId, KrpcError> {
    let b = d
        .get(key.as_bytes())
        .ok_or(KrpcError::Missing(key))?
        .as_bytes()
        .ok_or(KrpcError::Invalid(key))?;
    <[u8; 20]>::try_from(b)
        .map(NodeId)
        .map_err(|_| KrpcError::Invalid(key))
}

fn decode_query(top: &Dict<'_>) -> Result<Query, KrpcError> {
    let method = top
        .get(b"q")
        .ok_or(KrpcError::Missing("q"))?
        .as_bytes()
        .ok_or(KrpcError::Invalid("q"))?;
    let a = top
        .get(b"a")
        .ok_or(KrpcError::Missing("a"))?
        .as_dict()
        .ok_or(KrpcError::Invalid("a"))?;
    let id = id_field(a, "id")?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: id_field(a, "target")?,
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: id_field(a, "info_hash")?,
        },
        b"sample_infohashes" => Query::SampleInfohashes {
            id,
            target: id_field(a, "target")?,
        },
        b"announce_peer" => {
            let implied_port = a
                .get(b"implied_port")
                .and_then(Value::as_int)
                .is_some_and(|v| v != 0);
            let port = a.get(b"port").and_then(Value::as_int);
            let port = match (port, implied_port) {
                (Some(p), _) if (1..=65535).contains(&p) => p as u16,
                (Some(p), true) if (0..=65535).contains(&p) => p as u16,
                (None, true) => 0,
                (None, false) => return Err(KrpcError::Missing("port")),
                _ => return Err(KrpcError::Invalid("port")),
            };
            let token = a
                .get(b"token")
                .ok_or(KrpcError::Missing("token"))?
                .as_bytes()
                .filter(|t| t.len() <= TOKEN_LEN_MAX)
                .ok_or(KrpcError::Invalid("token"))?
                .to_vec();
            Query::AnnouncePeer {
                id,
                info_hash: id_field(a, "info_hash")?,
                port,
                implied_port,
                token,
            }
        }
        other => {
            let shown: String = String::from_utf8_lossy(other).chars().take(32).collect();
            return Err(KrpcError::UnknownMethod(shown));
        }
    })
}

fn decode_response(top: &Dict<'_>) -> Result<Response, KrpcError> {
    let r = top
        .get(b"r")
        .ok_or(KrpcError::Missing("r"))?
        .as_dict()
        .ok_or(KrpcError::Invalid("r"))?;
    let id = id_field(r, "id")?;
    let nodes = match r.get(b"nodes") {
        None => Vec::new(),
        Some(v) => {
            let b = v
                .as_bytes()
                .filter(|b| b.len() % COMPACT_NODE_LEN == 0)
                .ok_or(KrpcError::Invalid("nodes"))?;
            b.chunks_exact(COMPACT_NODE_LEN)
                .map(|c| CompactNode::from_bytes(c.try_into().expect("26-byte chunk")))
                .collect()
        }
    };
    let values = match r.get(b"values") {
        None => Vec::new(),
        Some(v) => {
            let list = v.as_list().ok_or(KrpcError::Invalid("values"))?;
            let mut out = Vec::with_capacity(list.len());
            for item in list {
                match item.as_bytes() {
                    Some(b) if b.len() == 6 => {
                        out.push(parse_compact_addr(b.try_into().expect("6 bytes")))
                    }
                    // An IPv6 peer (BEP 32): not ours to use yet, but not an error.
                    Some(b) if b.len() == 18 => {}
                    _ => return Err(KrpcError::Invalid("values")),
                }
            }
            out
        }
    };
    let token = match r.get(b"token") {
        None => None,
        Some(v) => Some(
            v.as_bytes()
                .filter(|t| t.len() <= TOKEN_LEN_MAX)
                .ok_or(KrpcError::Invalid("token"))?
                .to_vec(),
        ),
    };
    let samples = match r.get(b"samples") {
        None => Vec::new(),
        Some(v) => v
            .as_bytes()
            .filter(|b| b.len() % 20 == 0)
            .ok_or(KrpcError::Invalid("samples"))?
            .chunks_exact(20)
            .map(|c| NodeId(c.try_into().expect("20-byte chunk")))
            .collect(),
    };
    Ok(Response {
        id,
        nodes,
        values,
        token,
        samples,
        num: r.get(b"num").and_then(Value::as_int),
        interval: r.get(b"interval").and_then(Value::as_int),
    })
}

/// Errors are read leniently: a missing code or message still ends the transaction.
fn decode_error(top: &Dict<'_>) -> ErrorBody {
    let list = top.get(b"e").and_then(Value::as_list).unwrap_or(&[]);
    let code = list
        .first()
        .and_then(Value::as_int)
        .unwrap_or(ERROR_GENERIC);
    let message = list
        .get(1)
        .and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(b).chars().take(200).collect())
        .unwrap_or_default();
    ErrorBody { code, message }
}

#[cfg(test)]
mod tests;
