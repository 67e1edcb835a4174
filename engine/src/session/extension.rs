//! The BEP 10 extension handshake, for what it says about request queues: we tell peers how
//! many requests we queue (`reqq`, so Transmission does not pile up more than we take), and
//! read theirs to cap how many we keep in flight to them. We offer no extension messages
//! yet (`m` is empty).

use crate::bencode::{self, Dict, Limits, Value};

/// What a peer's extension handshake may weigh in structure; its size is already bounded by
/// the wire's message limit.
const LIMITS: Limits = Limits {
    depth_max: 8,
    string_len_max: 64 << 10,
    input_len_max: 1 << 20,
    items_max: 4096,
};

/// Requests to keep in flight to a peer that did not say (BEP 10's suggested default).
pub const DEFAULT_REQQ: usize = 250;

/// The queue length we tell peers: libtorrent's default. We take more (see
/// `max_queued_requests`), but peers size their pipelines from this, and a much larger one
/// only makes them queue seconds of requests that time out and are sent again (measured:
/// telling libtorrent 2000 halved its download rate from our seeders).
pub const ADVERTISED_REQQ: usize = 500;

/// Our handshake's payload (the message's extended id is 0).
pub fn our_handshake(reqq: usize) -> Vec<u8> {
    let dict = Dict::new()
        .with(b"m", Value::Dict(Dict::new()))
        .with(b"reqq", Value::Int(reqq as i64))
        .with(
            b"v",
            Value::Bytes(concat!("ccbt-uring ", env!("CARGO_PKG_VERSION")).as_bytes()),
        );
    bencode::encode(&Value::Dict(dict))
}

/// The `reqq` of a peer's handshake, if it gives a sane one.
pub fn their_reqq(payload: &[u8]) -> Option<usize> {
    let value = bencode::decode(payload, &LIMITS).ok()?;
    let reqq = value.as_dict()?.get(b"reqq")?.as_int()?;
    (1..=65_536).contains(&reqq).then_some(reqq as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_reqq_reads_back_and_junk_gives_none() {
        assert_eq!(their_reqq(&our_handshake(2000)), Some(2000));
        assert_eq!(their_reqq(b"d4:reqqi0ee"), None);
        assert_eq!(their_reqq(b"d4:reqqi-5ee"), None);
        assert_eq!(their_reqq(b"de"), None);
        assert_eq!(their_reqq(b"\\xff\\x00"), None);
    }
}
