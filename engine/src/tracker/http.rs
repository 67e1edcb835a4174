//! HTTP tracker protocol: announce URLs (BEP 3), response bodies with compact (BEP 23),
//! dict and IPv6 (BEP 7) peers, and scrape (BEP 48).

use std::net::{IpAddr, SocketAddr};

use url::Url;

use super::announce::{clamp_interval, count, message, push_compact_peers, push_peer};
use super::{Announce, AnnounceResponse, HttpResponse, ScrapeStats, TrackerError};
use crate::bencode::{decode, Dict, Limits, Value};
use crate::hash::InfoHash;

/// Bounds for tracker response bodies: small, shallow documents. A peer list of
/// [`PEERS_MAX`](super::PEERS_MAX) dicts is ~10 000 values; the item bound leaves headroom.
const RESPONSE_LIMITS: Limits = Limits {
    depth_max: 8,
    string_len_max: 1 << 20,
    input_len_max: 2 << 20,
    items_max: 50_000,
};

/// Longest `tracker id` we keep and echo back; real ones are short tokens.
const TRACKER_ID_LEN_MAX: usize = 256;

/// Builds the announce URL: `base` plus the BEP 3 query. A query already in `base` (a
/// private tracker's passkey, say) is kept, and ours is appended after it.
pub fn announce_url(base: &str, a: &Announce) -> Result<String, TrackerError> {
    let mut url = http_url(base)?;
    let mut query = String::with_capacity(256);
    push_param(
        &mut query,
        "info_hash",
        &percent_encode(a.info_hash.as_bytes()),
    );
    push_param(&mut query, "peer_id", &percent_encode(&a.peer_id));
    push_param(&mut query, "port", &a.port.to_string());
    push_param(&mut query, "uploaded", &a.uploaded.to_string());
    push_param(&mut query, "downloaded", &a.downloaded.to_string());
    push_param(&mut query, "left", &a.left.to_string());
    push_param(&mut query, "compact", "1");
    if let Some(event) = a.event.http_name() {
        push_param(&mut query, "event", event);
    }
    if let Some(n) = a.num_want {
        push_param(&mut query, "numwant", &n.to_string());
    }
    push_param(&mut query, "key", &format!("{:08X}", a.key));
    if let Some(id) = &a.tracker_id {
        push_param(&mut query, "trackerid", &percent_encode(id));
    }
    set_query_after_existing(&mut url, &query);
    Ok(url.into())
}

/// Most info hashes in one HTTP scrape. Each costs ~70 bytes of URL (`&info_hash=` and up
/// to 60 of percent-encoding): 64 keep the request line under ~5 KB, which common
/// trackers and proxies accept (many cap request lines at 8 KB).
pub const HTTP_SCRAPE_HASHES_MAX: usize = 64;

/// Most torrents we read from one scrape answer; more is a tracker listing everything (or
/// an attack) and the rest are dropped.
pub const SCRAPE_FILES_MAX: usize = 4096;

/// The scrape URL for an announce URL, by the BEP 48 convention: the last path component
/// must start with `announce`, which becomes `scrape`. `None` when the tracker does not
/// follow the convention (it then has no scrape URL we can know) or is not HTTP.
pub fn scrape_url(announce: &str, info_hash: &InfoHash) -> Option<String> {
    scrape_url_many(announce, std::slice::from_ref(info_hash))
}

/// One scrape URL for several torrents (one `info_hash` parameter each, BEP 48), the first
/// [`HTTP_SCRAPE_HASHES_MAX`] of `hashes`; the caller sends the rest in further requests.
pub fn scrape_url_many(announce: &str, hashes: &[InfoHash]) -> Option<String> {
    let mut url = Url::parse(announce).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let path = url.path();
    let slash = path.rfind('/')?;
    let rest = path[slash + 1..].strip_prefix("announce")?;
    let path = format!("{}scrape{rest}", &path[..=slash]);
    url.set_path(&path);
    let mut query = String::new();
    for h in &hashes[..hashes.len().min(HTTP_SCRAPE_HASHES_MAX)] {
        push_param(&mut query, "info_hash", &percent_encode(h.as_bytes()));
    }
    set_query_after_existing(&mut url, &query);
    Some(url.into())
}

/// Parses an announce response body.
pub fn parse_announce(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    let value = decode(body, &RESPONSE_LIMITS)?;
    let dict = top_dict(&value)?;
    let interval = int(dict, b"interval")?.ok_or_else(|| malformed("it has no `interval`"))?;
    let mut peers = Vec::new();
    match dict.get(b"peers") {
        None => {}
        Some(Value::Bytes(compact)) => {
            push_compact_peers(compact, false, &mut peers).map_err(TrackerError::Malformed)?
        }
        Some(Value::List(list)) => list.iter().for_each(|p| push_dict_peer(p, &mut peers)),
        Some(other) => return Err(wrong_kind("peers", "byte string or list", other)),
    }
    match dict.get(b"peers6") {
        None => {}
        Some(Value::Bytes(compact)) => {
            push_compact_peers(compact, true, &mut peers).map_err(TrackerError::Malformed)?
        }
        Some(other) => return Err(wrong_kind("peers6", "byte string", other)),
    }
    Ok(AnnounceResponse {
        interval: clamp_interval(interval),
        min_interval: int(dict, b"min interval")?.map(clamp_interval),
        peers,
        seeders: int(dict, b"complete")?.and_then(count),
        leechers: int(dict, b"incomplete")?.and_then(count),
        warning: bytes(dict, b"warning message")?.map(message),
        tracker_id: bytes(dict, b"tracker id")?
            .filter(|id| !id.is_empty() && id.len() <= TRACKER_ID_LEN_MAX)
            .map(<[u8]>::to_vec),
    })
}

/// Parses a whole HTTP announce response. Trackers often put a bencoded `failure reason`
/// in a 4xx body; that reason is more useful than the bare status, so it wins.
pub fn announce_from_http(response: &HttpResponse) -> Result<AnnounceResponse, TrackerError> {
    match (response.status, parse_announce(&response.body)) {
        (200, result) => result,
        (_, Err(TrackerError::Failure(reason))) => Err(TrackerError::Failure(reason)),
        (status, _) => Err(TrackerError::HttpStatus(status)),
    }
}

/// Parses a scrape response body and returns the counts for `info_hash`.
pub fn parse_scrape(body: &[u8], info_hash: &InfoHash) -> Result<ScrapeStats, TrackerError> {
    parse_scrape_all(body)?
        .into_iter()
        .find(|(h, _)| h == info_hash)
        .map(|(_, stats)| stats)
        .ok_or_else(|| malformed("it has no entry for this torrent"))
}

/// Parses a scrape response body: every torrent it lists (at most [`SCRAPE_FILES_MAX`])
/// with its counts. Keys that are not 20 bytes, and entries that are not dictionaries,
/// are skipped: one bad entry should not cost the counts of the other 63.
pub fn parse_scrape_all(body: &[u8]) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerError> {
    let value = decode(body, &RESPONSE_LIMITS)?;
    let dict = top_dict(&value)?;
    let files = match dict.get(b"files") {
        Some(Value::Dict(files)) => files,
        Some(other) => return Err(wrong_kind("files", "dictionary", other)),
        None => return Err(malformed("it has no `files`")),
    };
    let mut out = Vec::new();
    for (key, entry) in files.entries() {
        if out.len() >= SCRAPE_FILES_MAX {
            break;
        }
        let (Ok(hash), Value::Dict(entry)) = (<[u8; 20]>::try_from(*key), entry) else {
            continue;
        };
        // Counts are advisory: a missing or nonsensical one reads as zero.
        let stat = |key: &'static [u8]| int(entry, key).ok().flatten().and_then(count).unwrap_or(0);
        out.push((
            crate::hash::Sha1Digest(hash),
            ScrapeStats {
                complete: stat(b"complete"),
                incomplete: stat(b"incomplete"),
                downloaded: stat(b"downloaded"),
            },
        ));
    }
    Ok(out)
}

/// Percent-encodes raw bytes for a query value: RFC 3986 unreserved characters stay,
/// everything else becomes `%XX`.
pub fn percent_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// Parses and checks an HTTP tracker URL.
fn http_url(base: &str) -> Result<Url, TrackerError> {
    let mut url = Url::parse(base).map_err(|e| TrackerError::BadUrl {
        url: base.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(TrackerError::UnsupportedScheme(other.to_string())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TrackerError::BadUrl {
            url: base.to_string(),
            reason: "it has no host".to_string(),
        });
    }
    url.set_fragment(None);
    Ok(url)
}

fn push_param(query: &mut String, name: &str, value: &str) {
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(name);
    query.push('=');
    query.push_str(value);
}

/// Appends an already-encoded query to whatever query `url` has.
fn set_query_after_existing(url: &mut Url, ours: &str) {
    let query = match url.query() {
        Some(existing) if !existing.is_empty() && !existing.ends_with('&') => {
            format!("{existing}&{ours}")
        }
        Some(existing) => format!("{existing}{ours}"),
        None => ours.to_string(),
    };
    url.set_query(Some(&query));
}

/// The top-level dict, or the tracker's refusal if it sent one.
fn top_dict<'v, 'a>(value: &'v Value<'a>) -> Result<&'v Dict<'a>, TrackerError> {
    let dict = value
        .as_dict()
        .ok_or_else(|| wrong_kind("response", "dictionary", value))?;
    if let Some(reason) = bytes(dict, b"failure reason")? {
        return Err(TrackerError::Failure(message(reason)));
    }
    Ok(dict)
}

/// One BEP 3 dict peer (`ip`, `port`). Unusable entries (host names we cannot resolve here,
/// bad ports, wrong types) are skipped: one bad entry should not cost the whole list.
fn push_dict_peer(peer: &Value<'_>, out: &mut Vec<SocketAddr>) {
    let Some(peer) = peer.as_dict() else { return };
    let ip = peer
        .get(b"ip")
        .and_then(Value::as_bytes)
        .and_then(|ip| std::str::from_utf8(ip).ok())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let port = peer
        .get(b"port")
        .and_then(Value::as_int)
        .and_then(|p| u16::try_from(p).ok());
    if let (Some(ip), Some(port)) = (ip, port) {
        push_peer(SocketAddr::new(ip, port), out);
    }
}

fn int(dict: &Dict<'_>, key: &'static [u8]) -> Result<Option<i64>, TrackerError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(other) => Err(wrong_kind(&String::from_utf8_lossy(key), "integer", other)),
    }
}

fn bytes<'a>(dict: &Dict<'a>, key: &'static [u8]) -> Result<Option<&'a [u8]>, TrackerError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(other) => Err(wrong_kind(
            &String::from_utf8_lossy(key),
            "byte string",
            other,
        )),
    }
}

fn malformed(what: &str) -> TrackerError {
    TrackerError::Malformed(what.to_string())
}

fn wrong_kind(field: &str, expected: &str, got: &Value<'_>) -> TrackerError {
    TrackerError::Malformed(format!(
        "`{field}` is a {}, expected a {expected}",
        got.kind()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Sha1Digest;
    use crate::tracker::{Event, INTERVAL_MAX, INTERVAL_MIN};
    use proptest::prelude::*;

    fn hash_0_to_19() -> InfoHash {
        Sha1Digest(std::array::from_fn(|i| i as u8))
    }

    fn announce() -> Announce {
        Announce {
            info_hash: hash_0_to_19(),
            peer_id: *b"-CC0001-abcdefghijkl",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Started,
            num_want: Some(50),
            key: 0xdead_beef,
            tracker_id: None,
        }
    }

    const ENCODED_HASH: &str = "%00%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13";

    #[test]
    fn announce_url_encodes_binary_bytes() {
        let url = announce_url("http://tracker.example:8080/announce", &announce()).unwrap();
        assert_eq!(
            url,
            format!(
                "http://tracker.example:8080/announce?info_hash={ENCODED_HASH}\
                 &peer_id=-CC0001-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3\
                 &compact=1&event=started&numwant=50&key=DEADBEEF"
            )
        );
    }

    #[test]
    fn announce_url_keeps_an_existing_query() {
        let mut a = announce();
        a.event = Event::None;
        a.num_want = None;
        a.tracker_id = Some(b"id 1".to_vec());
        let url = announce_url("http://t.example/announce?passkey=abc#frag", &a).unwrap();
        assert!(
            url.starts_with(&format!(
                "http://t.example/announce?passkey=abc&info_hash={ENCODED_HASH}&"
            )),
            "{url}"
        );
        assert!(url.ends_with("&key=DEADBEEF&trackerid=id%201"), "{url}");
        assert!(!url.contains("event="));
        let url = announce_url("http://t.example/announce?", &a).unwrap();
        assert!(
            url.starts_with("http://t.example/announce?info_hash="),
            "{url}"
        );
    }

    #[test]
    fn announce_url_takes_http_and_https_only() {
        let a = announce();
        assert!(announce_url("https://t.example/announce", &a)
            .unwrap()
            .starts_with("https://t.example/announce?"));
        assert_eq!(
            announce_url("udp://t.example:80", &a),
            Err(TrackerError::UnsupportedScheme("udp".into()))
        );
        assert!(matches!(
            announce_url("not a url", &a),
            Err(TrackerError::BadUrl { .. })
        ));
    }

    #[test]
    fn scrape_url_follows_bep_48() {
        let h = hash_0_to_19();
        assert_eq!(
            scrape_url("http://t.example/x/announce", &h).unwrap(),
            format!("http://t.example/x/scrape?info_hash={ENCODED_HASH}")
        );
        assert_eq!(
            scrape_url("http://t.example/announce.php?pk=1", &h).unwrap(),
            format!("http://t.example/scrape.php?pk=1&info_hash={ENCODED_HASH}")
        );
        assert_eq!(scrape_url("http://t.example/a", &h), None);
        assert_eq!(scrape_url("http://announce.example", &h), None);
        assert_eq!(scrape_url("http://t.example/announce/x", &h), None);
        assert_eq!(scrape_url("udp://t.example:80/announce", &h), None);
    }

    #[test]
    fn compact_peers_and_peers6() {
        let mut body =
            b"d8:completei5e10:incompletei7e8:intervali1800e12:min intervali60e5:peers12:".to_vec();
        body.extend([10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0, 80]);
        body.extend(b"6:peers618:");
        body.extend([
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1,
        ]);
        body.extend(b"10:tracker id3:abce");
        let r = parse_announce(&body).unwrap();
        assert_eq!(r.interval, 1800);
        assert_eq!(r.min_interval, Some(60));
        assert_eq!(r.seeders, Some(5));
        assert_eq!(r.leechers, Some(7));
        assert_eq!(r.tracker_id.as_deref(), Some(&b"abc"[..]));
        let expected: Vec<SocketAddr> = ["10.0.0.1:6881", "192.168.1.2:80", "[2001:db8::1]:6881"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(r.peers, expected);
    }

    #[test]
    fn dict_peers_skip_bad_entries() {
        let body = b"d8:intervali5e5:peersld2:ip8:10.0.0.14:porti6881eed2:ip4:host4:porti1eei3ed2:ip3:::14:porti70000eed2:ip3:::14:porti443eeee";
        let r = parse_announce(body).unwrap();
        assert_eq!(r.interval, INTERVAL_MIN);
        assert_eq!(
            r.peers,
            [
                "10.0.0.1:6881".parse().unwrap(),
                "[::1]:443".parse().unwrap()
            ]
        );
    }

    #[test]
    fn failure_and_warning() {
        assert_eq!(
            parse_announce(b"d14:failure reason12:unregisterede"),
            Err(TrackerError::Failure("unregistered".into()))
        );
        let r = parse_announce(b"d8:intervali99999999e15:warning message4:slowe").unwrap();
        assert_eq!(r.interval, INTERVAL_MAX);
        assert_eq!(r.warning.as_deref(), Some("slow"));
        assert!(r.peers.is_empty());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let bad_len = b"d8:intervali60e5:peers7:abcdefge";
        assert!(
            matches!(parse_announce(bad_len), Err(TrackerError::Malformed(m)) if m.contains("7 bytes"))
        );
        assert!(matches!(
            parse_announce(b"d5:peers0:e"),
            Err(TrackerError::Malformed(_))
        ));
        assert!(matches!(
            parse_announce(b"le"),
            Err(TrackerError::Malformed(_))
        ));
        assert!(matches!(
            parse_announce(b"d8:interval2:60e"),
            Err(TrackerError::Malformed(_))
        ));
        assert!(matches!(
            parse_announce(b"<html>"),
            Err(TrackerError::Bencode(_))
        ));
    }

    #[test]
    fn http_status_and_failure_body() {
        let resp = |status, body: &[u8]| HttpResponse {
            status,
            body: body.to_vec(),
            keep_alive: true,
        };
        assert_eq!(
            announce_from_http(&resp(403, b"d14:failure reason6:bannede")),
            Err(TrackerError::Failure("banned".into()))
        );
        assert_eq!(
            announce_from_http(&resp(502, b"Bad Gateway")),
            Err(TrackerError::HttpStatus(502))
        );
        assert_eq!(
            announce_from_http(&resp(200, b"d8:intervali60ee"))
                .unwrap()
                .interval,
            60
        );
    }

    #[test]
    fn scrape_finds_our_torrent() {
        let h = hash_0_to_19();
        let mut body = b"d5:filesd20:".to_vec();
        body.extend(h.as_bytes());
        body.extend(b"d8:completei3e10:downloadedi9e10:incompletei-1eeee");
        assert_eq!(
            parse_scrape(&body, &h),
            Ok(ScrapeStats {
                complete: 3,
                incomplete: 0,
                downloaded: 9
            })
        );
        assert!(matches!(
            parse_scrape(b"d5:filesdee", &h),
            Err(TrackerError::Malformed(_))
        ));
        assert_eq!(
            parse_scrape(b"d14:failure reason2:noe", &h),
            Err(TrackerError::Failure("no".into()))
        );
    }

    #[test]
    fn scrape_many_lists_every_hash_and_reads_every_entry() {
        let hashes: Vec<InfoHash> = (0..100u8)
            .map(|i| crate::hash::Sha1Digest([i; 20]))
            .collect();
        let url = scrape_url_many("http://t.example/announce?pk=7", &hashes).unwrap();
        assert!(
            url.starts_with("http://t.example/scrape?pk=7&info_hash="),
            "{url}"
        );
        assert_eq!(url.matches("info_hash=").count(), HTTP_SCRAPE_HASHES_MAX);
        assert!(url.len() < 8 * 1024);
        let mut body = b"d5:filesd".to_vec();
        for (i, h) in hashes.iter().take(3).enumerate() {
            body.extend(b"20:");
            body.extend(h.as_bytes());
            body.extend(
                format!("d8:completei{i}e10:downloadedi7e10:incompletei{}ee", i + 1).as_bytes(),
            );
        }
        // A short key and a non-dict entry are skipped, not fatal.
        body.extend(b"3:abcd8:completei1ee20:");
        body.extend([9u8; 20]);
        body.extend(b"i5eee");
        let all = parse_scrape_all(&body).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[2],
            (
                hashes[2],
                ScrapeStats {
                    complete: 2,
                    incomplete: 3,
                    downloaded: 7
                }
            )
        );
        assert!(parse_scrape_all(b"d14:failure reason2:noe").is_err());
    }

    /// Undoes [`percent_encode`], byte-exact.
    fn percent_decode(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn parse_announce_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_announce(&body);
            let _ = parse_scrape(&body, &hash_0_to_19());
            let _ = parse_scrape_all(&body);
        }

        /// Near-valid scrape bodies (a files dict with arbitrary keys and values) parse
        /// without panicking, and only 20-byte keys come back.
        #[test]
        fn parse_scrape_all_takes_only_well_formed_entries(
            entries in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..24), proptest::collection::vec(any::<u8>(), 0..40)),
                0..20,
            ),
        ) {
            let mut body = b"d5:filesd".to_vec();
            for (k, v) in &entries {
                body.extend(format!("{}:", k.len()).as_bytes());
                body.extend(k);
                body.extend(v);
            }
            body.extend(b"ee");
            if let Ok(all) = parse_scrape_all(&body) {
                prop_assert!(all.len() <= entries.len());
            }
        }

        #[test]
        fn scrape_url_many_round_trips_the_hashes(
            hashes in proptest::collection::vec(any::<[u8; 20]>(), 0..100),
        ) {
            let hashes: Vec<InfoHash> = hashes.into_iter().map(crate::hash::Sha1Digest).collect();
            let url = scrape_url_many("http://t.example:81/x/announce", &hashes).unwrap();
            let query = url.split_once('?').map_or("", |(_, q)| q);
            let got: Vec<Vec<u8>> = query
                .split('&')
                .filter_map(|kv| kv.strip_prefix("info_hash="))
                .map(percent_decode)
                .collect();
            let want: Vec<Vec<u8>> = hashes.iter().take(HTTP_SCRAPE_HASHES_MAX).map(|h| h.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn parse_announce_never_panics_on_near_valid(
            peers in proptest::collection::vec(any::<u8>(), 0..64),
            interval in any::<i64>(),
        ) {
            let mut body = format!("d8:intervali{interval}e5:peers{}:", peers.len()).into_bytes();
            body.extend(&peers);
            body.push(b'e');
            if let Ok(r) = parse_announce(&body) {
                prop_assert!((INTERVAL_MIN..=INTERVAL_MAX).contains(&r.interval));
                prop_assert_eq!(peers.len() % 6, 0);
            }
        }

        #[test]
        fn percent_encoding_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let encoded = percent_encode(&bytes);
            let decoded: Vec<u8> = url::form_urlencoded::parse(format!("x={encoded}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned().into_bytes())
                .unwrap_or_default();
            // form_urlencoded decodes to UTF-8 lossily, so compare only when that is exact.
            if let Ok(s) = std::str::from_utf8(&bytes) {
                prop_assert_eq!(decoded, s.as_bytes().to_vec());
            }
        }
    }
}
