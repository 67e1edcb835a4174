//! torrent-get's fields: each name Transmission 4.0 defines that Sonarr/Radarr,
//! transmission-remote 3.00 and the 3.00 web UI ask for, computed from a catalog row.
//! A name not known here is left out of the answer, as Transmission does.
//!
//! Units are Transmission's: sizes in bytes, rates in bytes per second, limits in kB/s
//! (1000 bytes), times in Unix seconds, share limits in minutes.
//!
//! What ccbt-uring does not track is reported as Transmission reports "nothing": no
//! per-peer list (`peers` is empty; the counts are the connected peers), no corrupt-byte
//! total (`corruptEver` 0), no web seed traffic.

use std::time::Instant;

use ccbt_config::Config;
use ccbt_engine::Bitfield;
use ccbt_shards::swarm::{PeerInfo, PeerOrigin, TorrentState};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

use crate::daemon::catalog::Row;
use crate::daemon::core::Override;

use super::file_stats;
use super::trackers::{magnet_link, scrape_url, site_name, tracker_stats, trackers};

/// Transmission's default seed idle limit, minutes (reported when none is set).
const IDLE_MINUTES_DEFAULT: u64 = 30;
/// Transmission's default seed ratio (reported when none is set).
const RATIO_DEFAULT: f64 = 2.0;
/// Transmission's "no limit" limit values (kB/s), reported with `*Limited: false`.
const SPEED_LIMIT_DEFAULT_KBPS: u64 = 100;

/// What every field of one listing shares.
pub struct Context<'a> {
    pub now: Instant,
    pub config: &'a Config,
}

/// One torrent as the fields see it: its row and, when asked for, its pieces.
pub struct Torrent<'a> {
    pub row: &'a Row,
    pub have: Option<&'a Bitfield>,
    /// Its connected peers, when `peers` was asked for and its shard answered in time.
    pub peers: Option<&'a [PeerInfo]>,
}

/// Transmission's status numbers, which Sonarr/Radarr map.
pub mod status {
    pub const STOPPED: i64 = 0;
    pub const CHECK_WAIT: i64 = 1;
    pub const CHECK: i64 = 2;
    pub const DOWNLOAD_WAIT: i64 = 3;
    pub const DOWNLOAD: i64 = 4;
    pub const SEED_WAIT: i64 = 5;
    pub const SEED: i64 = 6;
}

pub fn status_of(row: &Row) -> i64 {
    let waiting = || {
        if row.live.done {
            status::SEED_WAIT
        } else {
            status::DOWNLOAD_WAIT
        }
    };
    match row.live.state {
        TorrentState::Queued if row.fixed.queued => waiting(),
        TorrentState::Queued => status::CHECK_WAIT,
        TorrentState::Checking => status::CHECK,
        TorrentState::Downloading | TorrentState::FetchingMetadata => status::DOWNLOAD,
        TorrentState::Seeding => status::SEED,
        TorrentState::Paused | TorrentState::Stopped | TorrentState::Failed => {
            if row.fixed.queued && !row.fixed.user_paused && row.live.error.is_none() {
                waiting()
            } else {
                status::STOPPED
            }
        }
    }
}

/// Bytes of wanted data still missing.
pub fn left_until_done(row: &Row) -> u64 {
    let wanted = row.wanted_size();
    if row.fixed.settings.priorities.is_empty() {
        return row.total_size().saturating_sub(row.have_bytes());
    }
    let started = !matches!(
        row.live.state,
        TorrentState::Queued | TorrentState::Checking
    );
    if started {
        let piece = u64::from(row.fixed.meta.info.layout.piece_length());
        (row.live.wanted_left * piece).min(wanted)
    } else {
        wanted.saturating_sub(row.have_bytes())
    }
}

/// The ratio limit that applies (its own, its category's or the global one).
fn ratio_limit(ctx: &Context, row: &Row) -> Option<f64> {
    let configured = ctx
        .config
        .share
        .for_category(row.fixed.category.as_deref())
        .ratio_limit;
    row.fixed.settings.share.ratio.resolve(configured)
}

fn seeding_minutes_limit(ctx: &Context, row: &Row) -> Option<u64> {
    let configured = ctx
        .config
        .share
        .for_category(row.fixed.category.as_deref())
        .seeding_time_limit
        .map(|d| d.as_secs() / 60);
    row.fixed.settings.share.seeding_minutes.resolve(configured)
}

/// Stopped because a share limit was reached (what Sonarr takes for "done seeding").
pub fn is_finished(ctx: &Context, row: &Row) -> bool {
    let stopped = matches!(row.live.state, TorrentState::Paused | TorrentState::Stopped);
    if !(stopped && row.live.done && row.fixed.user_paused) {
        return false;
    }
    let by_ratio = ratio_limit(ctx, row).is_some_and(|r| row.ratio() >= r);
    let by_time = seeding_minutes_limit(ctx, row)
        .is_some_and(|m| row.live.seeding.seconds(ctx.now) >= m.saturating_mul(60));
    by_ratio || by_time
}

/// Seconds until done downloading (or, seeding, until the ratio limit): -1 unknown, -2
/// never (seeding without a limit).
pub fn eta(ctx: &Context, row: &Row) -> i64 {
    const UNKNOWN: i64 = -1;
    const INFINITE: i64 = -2;
    let live = &row.live;
    match live.state {
        TorrentState::Downloading if live.download_rate > 0 => {
            (left_until_done(row) / live.download_rate) as i64
        }
        TorrentState::Seeding => match ratio_limit(ctx, row) {
            None => INFINITE,
            Some(_) if live.upload_rate == 0 => UNKNOWN,
            Some(limit) => {
                let base = if live.downloaded > 0 {
                    live.downloaded
                } else {
                    row.have_bytes()
                };
                let goal = (limit * base as f64) as u64;
                (goal.saturating_sub(live.uploaded) / live.upload_rate) as i64
            }
        },
        _ => UNKNOWN,
    }
}

fn mode<T>(o: Override<T>) -> i64 {
    match o {
        Override::Global => 0,
        Override::Limit(_) => 1,
        Override::Unlimited => 2,
    }
}

fn speed_limit(bytes_per_s: u64) -> (u64, bool) {
    if bytes_per_s == 0 {
        (SPEED_LIMIT_DEFAULT_KBPS, false)
    } else {
        (bytes_per_s.div_ceil(1000), true)
    }
}

/// A field of torrent-get, resolved from its name once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    HashString,
    Name,
    DownloadDir,
    TotalSize,
    SizeWhenDone,
    LeftUntilDone,
    DesiredAvailable,
    HaveValid,
    HaveUnchecked,
    PercentDone,
    PercentComplete,
    MetadataPercentComplete,
    RecheckProgress,
    Status,
    IsFinished,
    IsStalled,
    IsPrivate,
    Eta,
    EtaIdle,
    Error,
    ErrorString,
    UploadedEver,
    DownloadedEver,
    CorruptEver,
    UploadRatio,
    RateDownload,
    RateUpload,
    PeersConnected,
    PeersGettingFromUs,
    PeersSendingToUs,
    WebseedsSendingToUs,
    PeerLimit,
    Peers,
    PeersFrom,
    SecondsSeeding,
    SecondsDownloading,
    AddedDate,
    StartDate,
    ActivityDate,
    DoneDate,
    DateCreated,
    EditDate,
    ManualAnnounceTime,
    Comment,
    Creator,
    MagnetLink,
    PieceCount,
    PieceSize,
    Pieces,
    FileCount,
    Files,
    FileStats,
    Priorities,
    Wanted,
    BandwidthPriority,
    HonorsSessionLimits,
    DownloadLimit,
    DownloadLimited,
    UploadLimit,
    UploadLimited,
    SeedRatioMode,
    SeedRatioLimit,
    SeedIdleMode,
    SeedIdleLimit,
    Labels,
    Group,
    QueuePosition,
    SequentialDownload,
    Trackers,
    TrackerList,
    TrackerStats,
    Webseeds,
    PrimaryMimeType,
}

impl Field {
    /// The field a name stands for, `None` for a name this does not know. Some fields
    /// have two names (Transmission renamed them and still answers to both).
    pub fn parse(name: &str) -> Option<Field> {
        use Field::*;
        Some(match name {
            "id" => Id,
            "hashString" => HashString,
            "name" => Name,
            "downloadDir" => DownloadDir,
            "totalSize" => TotalSize,
            "sizeWhenDone" => SizeWhenDone,
            "leftUntilDone" => LeftUntilDone,
            "desiredAvailable" => DesiredAvailable,
            "haveValid" => HaveValid,
            "haveUnchecked" => HaveUnchecked,
            "percentDone" => PercentDone,
            "percentComplete" => PercentComplete,
            "metadataPercentComplete" => MetadataPercentComplete,
            "recheckProgress" => RecheckProgress,
            "status" => Status,
            "isFinished" => IsFinished,
            "isStalled" => IsStalled,
            "isPrivate" => IsPrivate,
            "eta" => Eta,
            "etaIdle" => EtaIdle,
            "error" => Error,
            "errorString" => ErrorString,
            "uploadedEver" => UploadedEver,
            "downloadedEver" => DownloadedEver,
            "corruptEver" => CorruptEver,
            "uploadRatio" => UploadRatio,
            "rateDownload" => RateDownload,
            "rateUpload" => RateUpload,
            "peersConnected" => PeersConnected,
            "peersGettingFromUs" => PeersGettingFromUs,
            "peersSendingToUs" => PeersSendingToUs,
            "webseedsSendingToUs" => WebseedsSendingToUs,
            "peer-limit" | "maxConnectedPeers" => PeerLimit,
            "peers" => Peers,
            "peersFrom" => PeersFrom,
            "secondsSeeding" => SecondsSeeding,
            "secondsDownloading" => SecondsDownloading,
            "addedDate" => AddedDate,
            "startDate" => StartDate,
            "activityDate" => ActivityDate,
            "doneDate" => DoneDate,
            "dateCreated" => DateCreated,
            "editDate" => EditDate,
            "manualAnnounceTime" => ManualAnnounceTime,
            "comment" => Comment,
            "creator" => Creator,
            "magnetLink" => MagnetLink,
            "pieceCount" => PieceCount,
            "pieceSize" => PieceSize,
            "pieces" => Pieces,
            "fileCount" | "file-count" => FileCount,
            "files" => Files,
            "fileStats" => FileStats,
            "priorities" => Priorities,
            "wanted" => Wanted,
            "bandwidthPriority" => BandwidthPriority,
            "honorsSessionLimits" => HonorsSessionLimits,
            "downloadLimit" => DownloadLimit,
            "downloadLimited" => DownloadLimited,
            "uploadLimit" => UploadLimit,
            "uploadLimited" => UploadLimited,
            "seedRatioMode" => SeedRatioMode,
            "seedRatioLimit" => SeedRatioLimit,
            "seedIdleMode" => SeedIdleMode,
            "seedIdleLimit" => SeedIdleLimit,
            "labels" => Labels,
            "group" => Group,
            "queuePosition" => QueuePosition,
            "sequentialDownload" => SequentialDownload,
            "trackers" => Trackers,
            "trackerList" => TrackerList,
            "trackerStats" => TrackerStats,
            "webseeds" => Webseeds,
            "primary-mime-type" => PrimaryMimeType,
            _ => return None,
        })
    }

    /// Fields that need the torrent's have-bitfield from its shard.
    pub fn needs_pieces(self) -> bool {
        matches!(self, Field::Files | Field::FileStats | Field::Pieces)
    }
}

/// One field's value, written straight into the answer: the scalars and the row's own
/// text without building a `serde_json::Value` or a `String` for each (a full listing of
/// 100,000 torrents writes two million of them); only the nested fields build a `Value`.
pub enum Out<'a> {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    Str(&'a str),
    Text(String),
    /// A torrent path: as it is when it is one UTF-8 component (the usual name), else
    /// through its lossy `Display`.
    Name(&'a ccbt_engine::metainfo::TorrentPath),
    Path(&'a std::path::Path),
    Hash(&'a ccbt_engine::InfoHash),
    Strings(&'a [String]),
    Json(Value),
    /// Not known now: left out of an object, null in a table.
    Absent,
}

impl Serialize for Out<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::U(v) => s.serialize_u64(*v),
            Out::I(v) => s.serialize_i64(*v),
            Out::F(v) => s.serialize_f64(*v),
            Out::B(v) => s.serialize_bool(*v),
            Out::Str(v) => s.serialize_str(v),
            Out::Text(v) => s.serialize_str(v),
            Out::Name(path) => {
                let mut parts = path.components();
                match (parts.next().map(std::str::from_utf8), parts.next()) {
                    (Some(Ok(one)), None) => s.serialize_str(one),
                    _ => s.collect_str(path),
                }
            }
            Out::Path(p) => s.collect_str(&p.display()),
            Out::Hash(h) => {
                let mut hex = [0u8; 40];
                data_encoding::HEXLOWER.encode_mut(h.as_bytes(), &mut hex);
                s.serialize_str(std::str::from_utf8(&hex).expect("hex is ASCII"))
            }
            Out::Strings(v) => v.serialize(s),
            Out::Json(v) => v.serialize(s),
            Out::Absent => s.serialize_unit(),
        }
    }
}

/// The value of `field` for `t`.
pub fn value<'a>(ctx: &Context, t: &Torrent<'a>, field: Field) -> Out<'a> {
    use Field::*;
    let row = t.row;
    let fixed = &row.fixed;
    let live = &row.live;
    let meta = &fixed.meta;
    let layout = &meta.info.layout;
    let settings = &fixed.settings;
    let percent = |done: u64, of: u64| {
        Out::F(if of == 0 {
            0.0
        } else {
            done as f64 / of as f64
        })
    };
    match field {
        Id => Out::U(u64::from(row.id)),
        HashString => Out::Hash(&row.info_hash),
        Name => Out::Name(&meta.info.name),
        DownloadDir => Out::Path(&fixed.save_dir),
        TotalSize => Out::U(row.total_size()),
        SizeWhenDone => Out::U(row.wanted_size()),
        LeftUntilDone => Out::U(left_until_done(row)),
        DesiredAvailable | HaveUnchecked | CorruptEver | WebseedsSendingToUs
        | BandwidthPriority => Out::U(0),
        HaveValid => Out::U(row.have_bytes()),
        PercentDone => {
            let size_when_done = row.wanted_size();
            percent(
                size_when_done.saturating_sub(left_until_done(row)),
                size_when_done,
            )
        }
        PercentComplete => percent(row.have_bytes(), row.total_size()),
        MetadataPercentComplete => Out::F(live.metadata_fraction),
        RecheckProgress => Out::F(if live.state == TorrentState::Checking {
            live.checked_pieces as f64 / f64::from(layout.piece_count().max(1))
        } else {
            0.0
        }),
        Status => Out::I(status_of(row)),
        IsFinished => Out::B(is_finished(ctx, row)),
        IsStalled => Out::B(
            live.state == TorrentState::Downloading && live.download_rate == 0 && live.peers == 0,
        ),
        IsPrivate => Out::B(meta.info.private),
        Eta => Out::I(eta(ctx, row)),
        EtaIdle | ManualAnnounceTime => Out::I(-1),
        Error => Out::I(if live.error.is_some() { 3 } else { 0 }),
        ErrorString => match &live.error {
            None => Out::Str(""),
            Some(e) => Out::Text(e.to_string()),
        },
        UploadedEver => Out::U(live.uploaded),
        DownloadedEver => Out::U(live.downloaded),
        UploadRatio => Out::F(if live.downloaded == 0 && row.have_bytes() == 0 {
            -1.0
        } else {
            row.ratio()
        }),
        RateDownload => Out::U(live.download_rate),
        RateUpload => Out::U(live.upload_rate),
        PeersConnected => Out::U(live.peers),
        PeersGettingFromUs => Out::U(if live.upload_rate > 0 { live.peers } else { 0 }),
        PeersSendingToUs => Out::U(if live.download_rate > 0 {
            live.peers
        } else {
            0
        }),
        PeerLimit => Out::U(ctx.config.limits.max_peers_per_torrent as u64),
        Peers => Out::Json(Value::Array(
            t.peers.unwrap_or_default().iter().map(peer_json).collect(),
        )),
        // Transmission's categories; a peer the user named (`--peer`, a magnet link's
        // `x.pe`) is in none of them. We keep no peer cache and take no peers from an
        // LTEP handshake.
        PeersFrom => {
            let from = |o: PeerOrigin| live.peers_from[o.index()];
            Out::Json(json!({
                "fromCache": 0, "fromDht": from(PeerOrigin::Dht),
                "fromIncoming": from(PeerOrigin::Incoming),
                "fromLpd": from(PeerOrigin::Lsd), "fromLtep": 0,
                "fromPex": from(PeerOrigin::Pex), "fromTracker": from(PeerOrigin::Tracker)
            }))
        }
        SecondsSeeding => Out::U(live.seeding.seconds(ctx.now)),
        SecondsDownloading => Out::U(live.downloading.seconds(ctx.now)),
        AddedDate | StartDate => Out::I(fixed.added_at),
        ActivityDate => Out::I(live.last_activity),
        DoneDate => Out::I(fixed.completed_at.unwrap_or(0)),
        DateCreated => Out::I(meta.creation_date.unwrap_or(0)),
        EditDate => Out::I(0),
        Comment => Out::Str(meta.comment.as_deref().unwrap_or_default()),
        Creator => Out::Str(meta.created_by.as_deref().unwrap_or_default()),
        MagnetLink => Out::Text(magnet_link(row)),
        PieceCount => Out::U(u64::from(layout.piece_count())),
        PieceSize => Out::U(u64::from(layout.piece_length())),
        Pieces => {
            use base64::Engine as _;
            let bits = match t.have {
                Some(b) => b.clone(),
                None if live.have_pieces >= u64::from(layout.piece_count()) => {
                    Bitfield::full(layout.piece_count())
                }
                None if live.have_pieces == 0 => Bitfield::empty(layout.piece_count()),
                None => return Out::Absent,
            };
            Out::Text(base64::engine::general_purpose::STANDARD.encode(bits.as_bytes()))
        }
        FileCount => Out::U(layout.files().len() as u64),
        Files => {
            let done = file_stats::completed(layout, t.have, live.have_pieces);
            Out::Json(Value::Array(
                layout
                    .files()
                    .iter()
                    .zip(done)
                    .map(|(f, done)| {
                        json!({
                            "bytesCompleted": done,
                            "length": f.length,
                            "name": f.path.display(),
                            "begin_piece": f.offset / u64::from(layout.piece_length()),
                            "end_piece": (f.offset + f.length)
                                .div_ceil(u64::from(layout.piece_length())),
                        })
                    })
                    .collect(),
            ))
        }
        FileStats => {
            let done = file_stats::completed(layout, t.have, live.have_pieces);
            Out::Json(Value::Array(
                done.into_iter()
                    .enumerate()
                    .map(|(i, done)| {
                        json!({
                            "bytesCompleted": done,
                            "wanted": settings.priorities.get(i).is_none_or(|&p| p >= 0),
                            "priority": priority_of(settings.priorities.get(i).copied()),
                        })
                    })
                    .collect(),
            ))
        }
        Priorities => Out::Json(Value::Array(
            (0..layout.files().len())
                .map(|i| json!(priority_of(settings.priorities.get(i).copied())))
                .collect(),
        )),
        Wanted => Out::Json(Value::Array(
            (0..layout.files().len())
                .map(|i| {
                    json!(i32::from(
                        settings.priorities.get(i).is_none_or(|&p| p >= 0)
                    ))
                })
                .collect(),
        )),
        HonorsSessionLimits => Out::B(true),
        DownloadLimit => Out::U(speed_limit(settings.download_bytes_per_s).0),
        DownloadLimited => Out::B(speed_limit(settings.download_bytes_per_s).1),
        UploadLimit => Out::U(speed_limit(settings.upload_bytes_per_s).0),
        UploadLimited => Out::B(speed_limit(settings.upload_bytes_per_s).1),
        SeedRatioMode => Out::I(mode(settings.share.ratio)),
        SeedRatioLimit => Out::F(match settings.share.ratio {
            Override::Limit(r) => r,
            _ => ratio_limit(ctx, row).unwrap_or(RATIO_DEFAULT),
        }),
        SeedIdleMode => Out::I(mode(settings.share.idle_minutes)),
        SeedIdleLimit => Out::U(match settings.share.idle_minutes {
            Override::Limit(m) => m,
            _ => IDLE_MINUTES_DEFAULT,
        }),
        Labels => Out::Strings(&fixed.tags),
        Group => Out::Str(""),
        QueuePosition => Out::U(u64::from(fixed.queue_position)),
        SequentialDownload => Out::B(settings.sequential),
        Trackers => Out::Json(Value::Array(
            trackers(row)
                .into_iter()
                .map(|(id, tier, url)| {
                    json!({
                        "announce": url, "id": id, "scrape": scrape_url(&url), "tier": tier,
                        "sitename": site_name(&url),
                    })
                })
                .collect(),
        )),
        TrackerList => Out::Text(
            meta.trackers()
                .iter()
                .map(|tier| tier.join("\n"))
                .collect::<Vec<_>>()
                .join("\n\n"),
        ),
        TrackerStats => Out::Json(tracker_stats(row)),
        Webseeds => Out::Strings(&meta.web_seeds),
        PrimaryMimeType => Out::Str("application/octet-stream"),
    }
}

/// Transmission's file priority: -1 low, 0 normal, 1 high (a skipped file keeps normal).
/// One peer as Transmission's `peers` lists it. We neither encrypt nor speak uTP.
fn peer_json(p: &PeerInfo) -> Value {
    let v = &p.view;
    let downloading = v.am_interested && !v.peer_choking;
    let uploading = v.peer_interested && !v.am_choking;
    // Transmission's flag letters, in its order.
    let mut flags = String::new();
    for (on, c) in [
        (downloading, 'D'),
        (v.am_interested && v.peer_choking, 'd'),
        (uploading, 'U'),
        (v.peer_interested && v.am_choking, 'u'),
        (!v.peer_choking && !v.am_interested, 'K'),
        (!v.am_choking && !v.peer_interested, '?'),
        (p.origin == PeerOrigin::Pex, 'X'),
        (p.origin == PeerOrigin::Dht, 'H'),
        (p.origin == PeerOrigin::Incoming, 'I'),
    ] {
        if on {
            flags.push(c);
        }
    }
    json!({
        "address": v.addr.ip().to_string(),
        "port": v.addr.port(),
        "clientName": ccbt_engine::wire::client_name(&p.peer_id),
        "clientIsChoked": v.peer_choking,
        "clientIsInterested": v.am_interested,
        "peerIsChoked": v.am_choking,
        "peerIsInterested": v.peer_interested,
        "isDownloadingFrom": downloading,
        "isUploadingTo": uploading,
        "isIncoming": p.origin == PeerOrigin::Incoming,
        "isEncrypted": false,
        "isUTP": false,
        "flagStr": flags,
        "progress": v.progress,
        "rateToClient": v.download_rate,
        "rateToPeer": v.upload_rate,
        "bytesToClient": v.downloaded,
        "bytesToPeer": v.uploaded,
    })
}

fn priority_of(code: Option<i8>) -> i64 {
    match code {
        Some(0) => -1,
        Some(2..) => 1,
        _ => 0,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::daemon::catalog::{Fixed, Live, Timer};
    use std::sync::Arc;

    /// A one-file torrent of 10 pieces of 16 KiB, in `state`, with `have` pieces.
    pub(in crate::http::transmission) fn row(
        state: TorrentState,
        have: u64,
        f: impl FnOnce(&mut Fixed, &mut Live),
    ) -> Row {
        let mut t = b"d4:infod6:lengthi163840e4:name1:x12:piece lengthi16384e6:pieces200:".to_vec();
        t.extend_from_slice(&[0u8; 200]);
        t.extend_from_slice(b"ee");
        let meta = Arc::new(ccbt_engine::metainfo::Metainfo::parse(&t).unwrap());
        let mut fixed = Fixed {
            revision: 0,
            meta: meta.clone(),
            save_dir: "/srv".into(),
            added_at: 0,
            completed_at: None,
            category: None,
            tags: Vec::new(),
            queue_position: 0,
            user_paused: false,
            queued: false,
            settings: Default::default(),
        };
        let mut live = Live {
            state,
            peers: 0,
            peers_from: Default::default(),
            have_pieces: have,
            checked_pieces: 0,
            wanted_left: 10 - have,
            done: have == 10,
            uploaded: 0,
            downloaded: 0,
            upload_rate: 0,
            download_rate: 0,
            swarm: None,
            error: None,
            seeding: Timer::default(),
            downloading: Timer::default(),
            last_activity: 0,
            metadata_fraction: 1.0,
        };
        f(&mut fixed, &mut live);
        Row {
            id: 1,
            info_hash: meta.info_hash,
            fixed: Arc::new(fixed),
            live,
        }
    }

    #[test]
    fn states_map_to_the_status_numbers_the_arr_apps_read() {
        let none = |_: &mut Fixed, _: &mut Live| {};
        assert_eq!(
            status_of(&row(TorrentState::Queued, 0, none)),
            status::CHECK_WAIT
        );
        assert_eq!(
            status_of(&row(TorrentState::Checking, 0, none)),
            status::CHECK
        );
        assert_eq!(
            status_of(&row(TorrentState::Downloading, 3, none)),
            status::DOWNLOAD
        );
        assert_eq!(
            status_of(&row(TorrentState::Seeding, 10, none)),
            status::SEED
        );
        let paused = |f: &mut Fixed, _: &mut Live| f.user_paused = true;
        assert_eq!(
            status_of(&row(TorrentState::Paused, 3, paused)),
            status::STOPPED
        );
        let queued = |f: &mut Fixed, _: &mut Live| f.queued = true;
        assert_eq!(
            status_of(&row(TorrentState::Paused, 3, queued)),
            status::DOWNLOAD_WAIT
        );
        assert_eq!(
            status_of(&row(TorrentState::Paused, 10, queued)),
            status::SEED_WAIT
        );
        assert_eq!(
            status_of(&row(TorrentState::Failed, 3, none)),
            status::STOPPED
        );
    }

    #[test]
    fn left_until_done_and_eta_follow_the_pieces_and_rates() {
        let config = Config::default();
        let ctx = Context {
            now: Instant::now(),
            config: &config,
        };
        let fast = |_: &mut Fixed, l: &mut Live| l.download_rate = 16_384;
        let r = row(TorrentState::Downloading, 4, fast);
        assert_eq!(left_until_done(&r), 6 * 16_384);
        assert_eq!(eta(&ctx, &r), 6);
        let stalled = row(TorrentState::Downloading, 4, |_, _| {});
        assert_eq!(eta(&ctx, &stalled), -1);
        let seed = row(TorrentState::Seeding, 10, |_, _| {});
        assert_eq!(left_until_done(&seed), 0);
        assert_eq!(eta(&ctx, &seed), -2, "no ratio limit: it seeds forever");
        let limited = row(TorrentState::Seeding, 10, |f, l| {
            f.settings.share.ratio = Override::Limit(1.0);
            l.upload_rate = 16_384;
        });
        assert_eq!(
            eta(&ctx, &limited),
            10,
            "163840 bytes to upload at 16 KiB/s"
        );
        // Before its check a torrent has nothing: all of it is left.
        assert_eq!(
            left_until_done(&row(TorrentState::Queued, 0, |_, _| {})),
            163_840
        );
    }

    #[test]
    fn finished_means_stopped_by_a_reached_share_limit() {
        let config = Config::default();
        let ctx = Context {
            now: Instant::now(),
            config: &config,
        };
        let stopped_at_limit = row(TorrentState::Paused, 10, |f, l| {
            f.user_paused = true;
            f.settings.share.ratio = Override::Limit(0.5);
            l.uploaded = 100_000;
        });
        assert!(is_finished(&ctx, &stopped_at_limit));
        let paused_by_hand = row(TorrentState::Paused, 10, |f, _| f.user_paused = true);
        assert!(!is_finished(&ctx, &paused_by_hand), "no limit was reached");
        let seeding = row(TorrentState::Seeding, 10, |f, l| {
            f.settings.share.ratio = Override::Limit(0.5);
            l.uploaded = 100_000;
        });
        assert!(!is_finished(&ctx, &seeding), "still running");
    }

    #[test]
    fn speed_limits_are_in_kilobytes_and_zero_is_unlimited() {
        assert_eq!(speed_limit(0), (SPEED_LIMIT_DEFAULT_KBPS, false));
        assert_eq!(speed_limit(250_000), (250, true));
        assert_eq!(speed_limit(1), (1, true));
    }

    #[test]
    fn file_priorities_map_to_transmission_numbers() {
        assert_eq!(priority_of(None), 0);
        assert_eq!(priority_of(Some(-1)), 0);
        assert_eq!(priority_of(Some(0)), -1);
        assert_eq!(priority_of(Some(1)), 0);
        assert_eq!(priority_of(Some(2)), 1);
    }
}
