//! Records for the tests: distinct, with every field set.

#![allow(dead_code)]

use ccbt_state::{FileStamp, ResumeRecord, TorrentRecord};

pub fn hash(i: u8) -> [u8; 20] {
    let mut h = [i; 20];
    h[0] = 0xab;
    h
}

pub fn torrent(i: u8) -> TorrentRecord {
    TorrentRecord {
        info_hash: hash(i),
        metainfo: format!("d4:infod4:name{}:t{i}ee", 1 + i.to_string().len()).into_bytes(),
        name: format!("torrent {i}"),
        save_path: format!("/srv/data/{i}"),
        category: (i % 2 == 0).then(|| "linux".to_string()),
        tags: vec!["a,b".into(), format!("t{i}"), "ünï \"quoted\"".into()],
        added_at: 1_700_000_000 + i64::from(i),
        completed_at: (i % 3 == 0).then_some(1_700_000_500),
        paused: i % 2 == 1,
        queue_position: i64::from(i),
        settings: r#"{"max_peers":40}"#.into(),
        uploaded: 10 * u64::from(i),
        downloaded: 1 << 40,
        error: (i == 7).then(|| "disk gone".to_string()),
    }
}

pub fn resume(i: u8, updated_at: i64) -> ResumeRecord {
    ResumeRecord {
        info_hash: hash(i),
        piece_count: 13,
        have: vec![0b1010_1010, 0b1111_1000],
        files: vec![
            FileStamp {
                size: 1 << 33,
                mtime_ns: 1_700_000_000_123_456_789,
            },
            FileStamp {
                size: 0,
                mtime_ns: -5,
            },
        ],
        updated_at,
    }
}
