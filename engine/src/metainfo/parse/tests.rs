use super::*;
use crate::bencode::encode;
use crate::metainfo::{NewFile, NewTorrent};

fn hashes(n: usize) -> Vec<Sha1Digest> {
    (0..n).map(|i| Sha1::digest(&i.to_le_bytes())).collect()
}

fn multi(files: &[(&[&str], u64)], piece_length: u32) -> NewTorrent {
    let total: u64 = files.iter().map(|f| f.1).sum();
    NewTorrent {
        name: b"album".to_vec(),
        piece_length,
        files: files
            .iter()
            .map(|(p, l)| NewFile {
                path: p.iter().map(|c| c.as_bytes().to_vec()).collect(),
                length: *l,
            })
            .collect(),
        piece_hashes: hashes(total.div_ceil(u64::from(piece_length)) as usize),
        ..NewTorrent::default()
    }
}

/// Re-encodes a built torrent after `edit` changed its info dict, for hostile cases that the
/// builder itself refuses to write.
fn with_info(edit: impl FnOnce(&mut Dict<'static>)) -> Vec<u8> {
    let base: &'static [u8] = multi(&[(&["a"], 10)], 16).encode().unwrap().leak();
    let top = bencode::decode(base, &Limits::TORRENT).unwrap();
    let mut top = top.as_dict().unwrap().clone();
    let mut info = top.get(b"info").unwrap().as_dict().unwrap().clone();
    edit(&mut info);
    top.insert(b"info", Value::Dict(info));
    encode(&Value::Dict(top))
}

#[test]
fn single_file_round_trip() {
    let t = NewTorrent {
        name: b"disk.iso".to_vec(),
        piece_length: 32768,
        files: vec![NewFile {
            path: vec![],
            length: 100_000,
        }],
        piece_hashes: hashes(4),
        private: true,
        trackers: vec!["http://t1/announce".into(), "udp://t2:80".into()],
        web_seeds: vec!["http://ws/".into()],
        comment: Some("hi".into()),
        created_by: Some("test".into()),
        creation_date: Some(1_700_000_000),
    };
    let bytes = t.encode().unwrap();
    let m = Metainfo::parse(&bytes).unwrap();
    assert!(!m.info.multi_file);
    assert!(m.info.private);
    assert_eq!(m.info.name.display(), "disk.iso");
    assert_eq!(m.info.layout.files().len(), 1);
    assert_eq!(m.info.layout.files()[0].path.display(), "disk.iso");
    assert_eq!(m.info.layout.total_length(), 100_000);
    assert_eq!(m.info.layout.piece_count(), 4);
    assert_eq!(
        m.info.layout.piece_len(m.info.layout.piece(3).unwrap()),
        100_000 - 3 * 32768
    );
    assert_eq!(m.announce.as_deref(), Some("http://t1/announce"));
    assert_eq!(m.trackers(), [["http://t1/announce"], ["udp://t2:80"]]);
    assert_eq!(m.web_seeds, ["http://ws/"]);
    assert_eq!(m.comment.as_deref(), Some("hi"));
    assert_eq!(m.creation_date, Some(1_700_000_000));
    assert_eq!(m.info_hash, Sha1::digest(&m.info_bytes));
}

#[test]
fn multi_file_paths_start_with_the_name() {
    let t = multi(
        &[
            (&["cd1", "01.flac"], 40),
            (&["cover.jpg"], 0),
            (&["cd2", "01.flac"], 9),
        ],
        16,
    );
    let m = Metainfo::parse(&t.encode().unwrap()).unwrap();
    let paths: Vec<_> = m
        .info
        .layout
        .files()
        .iter()
        .map(|f| (f.path.display(), f.offset))
        .collect();
    assert_eq!(
        paths,
        [
            ("album/cd1/01.flac".into(), 0),
            ("album/cover.jpg".into(), 40),
            ("album/cd2/01.flac".into(), 40)
        ]
    );
    assert_eq!(m.info.layout.total_length(), 49);
    assert!(m.info.multi_file);
}

#[test]
fn info_hash_covers_the_raw_info_bytes() {
    // Keys out of order: the hash must be over the bytes as written, not a re-encoding.
    let info = b"d6:lengthi3e4:name1:x12:piece lengthi16e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    let unsorted = b"d12:piece lengthi16e6:lengthi3e4:name1:x6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    for raw in [&info[..], &unsorted[..]] {
        let file = [&b"d4:info"[..], raw, b"e"].concat();
        let m = Metainfo::parse(&file).unwrap();
        assert_eq!(m.info_hash, Sha1::digest(raw));
        assert_eq!(&*m.info_bytes, raw);
    }
}

#[test]
fn hostile_paths_are_rejected() {
    let cases: &[(&[&str], PathError)] = &[
        (
            &["..", "..", "etc", "passwd"],
            PathError::DotComponent(".."),
        ),
        (&["a", "..", "b"], PathError::DotComponent("..")),
        (&["a\0"], PathError::Nul),
        (&[], PathError::NoComponents),
        (&["", "."], PathError::NoComponents),
    ];
    for (path, reason) in cases {
        let bytes = with_info(|info| {
            let parts = path.iter().map(|c| Value::Bytes(c.as_bytes())).collect();
            let file = Dict::new()
                .with(b"length", Value::Int(10))
                .with(b"path", Value::List(parts));
            info.insert(b"files", Value::List(vec![Value::Dict(file)]));
        });
        match Metainfo::parse(&bytes) {
            Err(MetainfoError::BadPath { reason: r, .. }) => assert_eq!(&r, reason, "{path:?}"),
            other => panic!("{path:?}: {other:?}"),
        }
    }
    let bytes = with_info(|info| info.insert(b"name", Value::Bytes(b"..")));
    assert_eq!(
        Metainfo::parse(&bytes).unwrap_err(),
        MetainfoError::BadName(PathError::DotComponent(".."))
    );
}

/// One file entry of `length` bytes at `path`, with `attr` if any.
fn entry(
    path: &[&'static str],
    length: Option<i64>,
    attr: Option<&'static [u8]>,
) -> Value<'static> {
    let mut d = Dict::new();
    if !path.is_empty() {
        let parts = path.iter().map(|c| Value::Bytes(c.as_bytes())).collect();
        d = d.with(b"path", Value::List(parts));
    }
    if let Some(l) = length {
        d = d.with(b"length", Value::Int(l));
    }
    if let Some(a) = attr {
        d = d.with(b"attr", Value::Bytes(a));
    }
    Value::Dict(d)
}

#[test]
fn odd_but_harmless_paths_are_mapped_inside_and_named() {
    let long: &'static str = Box::leak(format!("{}.mkv", "n".repeat(300)).into_boxed_str());
    let files = vec![
        entry(&["", "etc", "passwd"], Some(1), None),
        entry(&["/etc/passwd"], Some(1), None),
        entry(&["dir\\x"], Some(1), None),
        entry(&["Same"], Some(1), None),
        entry(&["same"], Some(1), None),
        entry(&["Same"], Some(1), None),
        entry(&[long], Some(1), None),
        entry(&[], Some(3), Some(b"p")),
        entry(&["link"], None, Some(b"l")),
    ];
    let mut bytes = with_info(|info| {
        info.insert(b"name", Value::Bytes(b"al/bum"));
        info.insert(b"files", Value::List(files));
    });
    bytes.push(b'\n');
    let m = Metainfo::parse(&bytes).unwrap();
    assert_eq!(m.trailing_bytes, 1);
    assert_eq!(m.info_hash, Sha1::digest(&m.info_bytes));
    let paths: Vec<String> = m
        .info
        .layout
        .files()
        .iter()
        .map(|f| f.path.display())
        .collect();
    let short = format!("al_bum/{}.mkv", "n".repeat(251));
    assert_eq!(
        paths,
        [
            "al_bum/etc/passwd",
            "al_bum/_etc_passwd",
            "al_bum/dir_x",
            "al_bum/Same",
            "al_bum/same (1)",
            "al_bum/Same (2)",
            short.as_str(),
            "al_bum/.pad/7",
            "al_bum/link",
        ]
    );
    assert!(m.info.layout.files()[7].pad && m.info.layout.files()[8].pad);
    assert_eq!(m.info.layout.total_length(), 10);
    // Every stored file was renamed (the name held a separator); pad and link entries are
    // not stored, so not named.
    let renamed: Vec<usize> = m.info.renamed.iter().map(|r| r.file).collect();
    assert_eq!(renamed, [0, 1, 2, 3, 4, 4, 5, 5, 6]);
    assert_eq!(m.info.renamed[0].original, "al/bum//etc/passwd");
}

#[test]
fn colliding_paths_get_suffixes() {
    let t = multi(&[(&["a"], 5), (&["a"], 5)], 16);
    let m = Metainfo::parse(&t.encode().unwrap()).unwrap();
    assert_eq!(m.info.layout.files()[1].path.display(), "album/a (1)");
    let t = multi(&[(&["a"], 5), (&["a", "b"], 5)], 16);
    let m = Metainfo::parse(&t.encode().unwrap()).unwrap();
    assert_eq!(m.info.layout.files()[0].path.display(), "album/a (1)");
    assert_eq!(m.info.renamed.len(), 1);
}

#[test]
fn geometry_lies_are_rejected() {
    let mut t = multi(&[(&["a"], 100)], 16);
    t.piece_hashes.pop();
    assert!(matches!(
        Metainfo::parse(&t.encode().unwrap()),
        Err(MetainfoError::PieceCountMismatch {
            expected: 7,
            actual: 6,
            ..
        })
    ));
    let bytes = with_info(|info| info.insert(b"pieces", Value::Bytes(&[0; 21])));
    assert_eq!(
        Metainfo::parse(&bytes).unwrap_err(),
        MetainfoError::PiecesNotMultipleOf20(21)
    );
    for bad in [0, -1, i64::from(u32::MAX) + 1] {
        let bytes = with_info(|info| info.insert(b"piece length", Value::Int(bad)));
        assert_eq!(
            Metainfo::parse(&bytes).unwrap_err(),
            MetainfoError::BadPieceLength(bad)
        );
    }
    let bytes = with_info(|info| {
        let files = (0..3)
            .map(|i: u8| {
                let name: &'static [u8] = vec![b'a' + i].leak();
                Value::Dict(
                    Dict::new()
                        .with(b"length", Value::Int(i64::MAX / 2))
                        .with(b"path", Value::List(vec![Value::Bytes(name)])),
                )
            })
            .collect();
        info.insert(b"files", Value::List(files));
    });
    assert_eq!(
        Metainfo::parse(&bytes).unwrap_err(),
        MetainfoError::Layout(LayoutError::TotalLengthOverflow)
    );
    let bytes = with_info(|info| {
        let file = Dict::new()
            .with(b"length", Value::Int(-5))
            .with(b"path", Value::List(vec![Value::Bytes(b"x")]));
        info.insert(b"files", Value::List(vec![Value::Dict(file)]));
    });
    assert_eq!(
        Metainfo::parse(&bytes).unwrap_err(),
        MetainfoError::BadFileLength {
            file: 0,
            length: -5
        }
    );
}

#[test]
fn structural_errors_are_named() {
    assert_eq!(
        Metainfo::parse(b"i1e").unwrap_err(),
        MetainfoError::NotADict
    );
    assert_eq!(
        Metainfo::parse(b"de").unwrap_err(),
        MetainfoError::MissingField("info")
    );
    assert!(matches!(
        Metainfo::parse(b"d4:infoi1ee"),
        Err(MetainfoError::WrongType { .. })
    ));
    assert!(matches!(
        Metainfo::parse(b"\x00garbage"),
        Err(MetainfoError::Bencode(_))
    ));
    let bomb = [&b"d4:info"[..], &[b'l'; 10_000]].concat();
    assert!(matches!(
        Metainfo::parse(&bomb),
        Err(MetainfoError::Bencode(DecodeError::DepthExceeded { .. }))
    ));
    let v2 = b"d4:infod9:file treede12:meta versioni2e4:name1:x12:piece lengthi16384eee";
    assert_eq!(Metainfo::parse(v2).unwrap_err(), MetainfoError::V2Only);
}

#[test]
fn pad_files_and_lenient_outer_fields() {
    let bytes = with_info(|info| {
        let file = |path: &'static [u8], len, attr: Option<&'static [u8]>| {
            let mut d = Dict::new()
                .with(b"length", Value::Int(len))
                .with(b"path", Value::List(vec![Value::Bytes(path)]));
            if let Some(a) = attr {
                d.insert(b"attr", Value::Bytes(a));
            }
            Value::Dict(d)
        };
        info.insert(
            b"files",
            Value::List(vec![
                file(b"a", 4, None),
                file(b".pad", 12, Some(b"p")),
                file(b"b", 16, Some(b"x")),
            ]),
        );
        info.insert(b"pieces", Value::Bytes(&[7; 40]));
    });
    // url-list as a single string, a broken announce-list: both tolerated.
    let top = bencode::decode(&bytes, &Limits::TORRENT).unwrap();
    let top = top
        .as_dict()
        .unwrap()
        .clone()
        .with(b"url-list", Value::Bytes(b"http://ws/"))
        .with(
            b"announce-list",
            Value::List(vec![
                Value::Int(3),
                Value::List(vec![Value::Bytes(b"udp://t:1")]),
            ]),
        );
    let m = Metainfo::parse(&encode(&Value::Dict(top))).unwrap();
    assert_eq!(
        m.info
            .layout
            .files()
            .iter()
            .map(|f| f.pad)
            .collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_eq!(m.web_seeds, ["http://ws/"]);
    assert_eq!(m.trackers(), [["udp://t:1"]]);
}

proptest::proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = Metainfo::parse(&bytes);
    }

    #[test]
    fn parser_never_panics_on_mutated_torrents(
        flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 1..6)
    ) {
        let mut bytes = multi(&[(&["x", "y"], 33), (&["z"], 70)], 32).encode().unwrap();
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        let _ = Metainfo::parse(&bytes);
    }
}
