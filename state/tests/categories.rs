//! Categories and tags (schema version 2): stored, read back at open, removed, and a
//! version 1 file migrated without losing its torrents.

mod common;

use std::time::Duration;

use ccbt_state::{CategoryRecord, StateDb, Write, SCHEMA_VERSION};
use common::torrent;
use rusqlite::Connection;

const WAIT: Duration = Duration::from_secs(5);

fn category(name: &str, save_path: &str) -> CategoryRecord {
    CategoryRecord {
        name: name.into(),
        save_path: save_path.into(),
    }
}

#[test]
fn categories_and_tags_survive_a_reopen_and_can_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    assert!(opened.categories.is_empty() && opened.tags.is_empty());
    let w = opened.db.writer();
    for write in [
        Write::SetCategory(category("tv", "/srv/tv")),
        Write::SetCategory(category("movies", "")),
        Write::SetCategory(category("tv", "/srv/shows")),
        Write::SetCategory(category("gone", "/x")),
        Write::RemoveCategory("gone".into()),
        Write::AddTag("hd".into()),
        Write::AddTag("hd".into()),
        Write::AddTag("sonarr, imported".into()),
        Write::AddTag("old".into()),
        Write::RemoveTag("old".into()),
    ] {
        w.write_blocking(write, WAIT).unwrap();
    }
    opened.db.close().unwrap();

    let opened = StateDb::open(dir.path()).unwrap();
    assert_eq!(
        opened.categories,
        vec![category("movies", ""), category("tv", "/srv/shows")]
    );
    assert_eq!(
        opened.tags,
        vec!["hd".to_string(), "sonarr, imported".into()]
    );
}

#[test]
fn an_empty_category_name_is_refused_by_the_schema_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    let w = opened.db.writer();
    w.write_blocking(Write::SetCategory(category("", "/x")), WAIT)
        .unwrap();
    w.write_blocking(Write::SetCategory(category("ok", "")), WAIT)
        .unwrap();
    w.flush().unwrap();
    assert_eq!(w.stats().writes_dropped, 1);
    opened.db.close().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    assert_eq!(opened.categories, vec![category("ok", "")]);
}

#[test]
fn a_version_1_file_is_migrated_and_keeps_its_torrents() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    let w = opened.db.writer();
    w.write_blocking(Write::upsert(torrent(1)), WAIT).unwrap();
    opened.db.close().unwrap();
    // Make it what version 1 wrote: no categories or tags tables.
    {
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch("DROP TABLE categories; DROP TABLE tags; PRAGMA user_version = 1;")
            .unwrap();
    }
    let opened = StateDb::open(dir.path()).unwrap();
    assert!(opened.recovered.is_none(), "{:?}", opened.recovered);
    assert_eq!(opened.torrents.len(), 1);
    assert_eq!(opened.torrents[0].record, torrent(1));
    assert!(opened.categories.is_empty());
    opened
        .db
        .writer()
        .write_blocking(Write::SetCategory(category("tv", "")), WAIT)
        .unwrap();
    opened.db.close().unwrap();
    let conn = Connection::open(dir.path().join("state.db")).unwrap();
    let (version, categories): (i32, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version),
                    (SELECT count(*) FROM categories)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, categories), (SCHEMA_VERSION, 1));
    assert_eq!(SCHEMA_VERSION, 2);
}
