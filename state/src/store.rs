//! Rows in and out: applying one [`Write`] inside a transaction, and reading every row
//! back at open (strictly from a healthy file, leniently when salvaging a damaged one).

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params, Connection, Row, Transaction};

use crate::records::{
    bitfield_problem, decode_files, decode_tags, encode_files, encode_tags, u64_to_sql,
};
use crate::{CategoryRecord, InfoHash, ResumeRecord, StoredTorrent, TorrentRecord, Write};

/// Applies one write; returns the rows it changed (0 when its torrent is not stored, e.g.
/// a resume snapshot racing a remove: that is not an error).
pub fn apply(tx: &Transaction, write: &Write) -> rusqlite::Result<usize> {
    match write {
        Write::Upsert(t) => upsert(tx, t),
        Write::Resume(r) => resume(tx, r),
        Write::Remove(h) => tx
            .prepare_cached("DELETE FROM torrents WHERE info_hash = ?1")?
            .execute([&h[..]]),
        Write::SetPaused { info_hash, paused } => set(tx, "paused", info_hash, *paused),
        Write::SetTotals {
            info_hash,
            uploaded,
            downloaded,
        } => tx
            .prepare_cached(
                "UPDATE torrents SET uploaded = ?2, downloaded = ?3 WHERE info_hash = ?1",
            )?
            .execute(params![
                &info_hash[..],
                u64_to_sql(*uploaded),
                u64_to_sql(*downloaded)
            ]),
        Write::Completed { info_hash, at } => set(tx, "completed_at", info_hash, *at),
        Write::SetError { info_hash, error } => set(tx, "error", info_hash, error),
        Write::SetSavePath {
            info_hash,
            save_path,
        } => set(tx, "save_path", info_hash, save_path),
        Write::SetQueuePosition {
            info_hash,
            position,
        } => set(tx, "queue_position", info_hash, *position),
        Write::SetSettings {
            info_hash,
            settings,
        } => set(tx, "settings", info_hash, settings),
        Write::SetLabels {
            info_hash,
            category,
            tags,
        } => tx
            .prepare_cached("UPDATE torrents SET category = ?2, tags = ?3 WHERE info_hash = ?1")?
            .execute(params![&info_hash[..], category, encode_tags(tags)]),
        Write::SetCategory(c) => set_category(tx, c),
        Write::RemoveCategory(name) => tx
            .prepare_cached("DELETE FROM categories WHERE name = ?1")?
            .execute([name]),
        Write::AddTag(name) => tx
            .prepare_cached("INSERT INTO tags (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")?
            .execute([name]),
        Write::RemoveTag(name) => tx
            .prepare_cached("DELETE FROM tags WHERE name = ?1")?
            .execute([name]),
    }
}

fn set_category(tx: &Transaction, c: &CategoryRecord) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO categories (name, save_path) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET save_path = excluded.save_path",
    )?
    .execute(params![c.name, c.save_path])
}

/// One column of one torrent. `column` is always one of our literal names.
fn set(
    tx: &Transaction,
    column: &'static str,
    info_hash: &InfoHash,
    value: impl rusqlite::ToSql,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(&format!(
        "UPDATE torrents SET {column} = ?2 WHERE info_hash = ?1"
    ))?
    .execute(params![&info_hash[..], value])
}

/// Insert or update in place. Not `INSERT OR REPLACE`: that deletes the old row first,
/// and the delete would cascade to the torrent's resume data.
fn upsert(tx: &Transaction, t: &TorrentRecord) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO torrents (info_hash, metainfo, name, save_path, category, tags, added_at,
             completed_at, paused, queue_position, settings, uploaded, downloaded, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (info_hash) DO UPDATE SET
             metainfo = excluded.metainfo, name = excluded.name,
             save_path = excluded.save_path, category = excluded.category,
             tags = excluded.tags, added_at = excluded.added_at,
             completed_at = excluded.completed_at, paused = excluded.paused,
             queue_position = excluded.queue_position, settings = excluded.settings,
             uploaded = excluded.uploaded, downloaded = excluded.downloaded,
             error = excluded.error",
    )?
    .execute(params![
        &t.info_hash[..],
        t.metainfo,
        t.name,
        t.save_path,
        t.category,
        encode_tags(&t.tags),
        t.added_at,
        t.completed_at,
        t.paused,
        t.queue_position,
        t.settings,
        u64_to_sql(t.uploaded),
        u64_to_sql(t.downloaded),
        t.error,
    ])
}

/// Stores a resume snapshot only if its torrent is stored, so a snapshot that lost a
/// race with `Remove` is dropped instead of failing the batch on the foreign key.
fn resume(tx: &Transaction, r: &ResumeRecord) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO resume (info_hash, piece_count, have, files, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM torrents WHERE info_hash = ?1)
         ON CONFLICT (info_hash) DO UPDATE SET
             piece_count = excluded.piece_count, have = excluded.have,
             files = excluded.files, updated_at = excluded.updated_at",
    )?
    .execute(params![
        &r.info_hash[..],
        r.piece_count,
        r.have,
        encode_files(&r.files),
        r.updated_at,
    ])
}

/// Everything read back from a file.
#[derive(Debug, Default)]
pub struct Loaded {
    pub torrents: Vec<StoredTorrent>,
    /// By name.
    pub categories: Vec<CategoryRecord>,
    /// By name.
    pub tags: Vec<String>,
    /// Rows (torrent or resume) that did not decode and were left out.
    pub skipped: usize,
    /// Set when listing a table's rows stopped early at a SQLite error (lenient only).
    pub stopped_by: Option<String>,
}

/// Reads every torrent with its resume data, ordered by queue position. A row that does
/// not decode is skipped and counted either way (a torrent whose resume data is bad is
/// kept without it: the daemon rechecks it). A SQLite error fails the read unless
/// `lenient` (salvage of a damaged file), where rows are read one by one and any that
/// does not read is skipped.
pub fn load(conn: &Connection, lenient: bool) -> rusqlite::Result<Loaded> {
    let mut out = Loaded::default();
    let resume_cols = "info_hash, piece_count, have, files, updated_at";
    let resumes: HashMap<InfoHash, ResumeRecord> = each_row(
        conn,
        "resume",
        resume_cols,
        lenient,
        &mut out,
        decode_resume,
    )?
    .into_iter()
    .map(|r| (r.info_hash, r))
    .collect();
    let torrent_cols = "info_hash, metainfo, name, save_path, category, tags, added_at,
            completed_at, paused, queue_position, settings, uploaded, downloaded, error";
    let mut records = each_row(
        conn,
        "torrents",
        torrent_cols,
        lenient,
        &mut out,
        decode_torrent,
    )?;
    out.categories = each_row(
        conn,
        "categories",
        "name, save_path",
        lenient,
        &mut out,
        |row| {
            Some(CategoryRecord {
                name: row.get(0).ok()?,
                save_path: row.get(1).ok()?,
            })
        },
    )?;
    out.categories.sort_by(|a, b| a.name.cmp(&b.name));
    out.tags = each_row(conn, "tags", "name", lenient, &mut out, |row| {
        row.get(0).ok()
    })?;
    out.tags.sort();
    // Sorted here, not by SQL: a sort reads every row before returning the first, so one
    // unreadable row would hide them all from a salvage.
    records.sort_by_key(|t| (t.queue_position, t.added_at));
    let mut resumes = resumes;
    out.torrents = records
        .into_iter()
        .map(|record| StoredTorrent {
            resume: resumes.remove(&record.info_hash),
            record,
        })
        .collect();
    Ok(out)
}

/// Reads and decodes `cols` of every row of `table`; undecodable rows are counted in
/// `out.skipped`. Lenient: the rowids are listed first (they live in the table's b-tree
/// pages alone), then each row is read on its own, so a lost overflow or leaf page
/// costs only the rows on it; an error listing rowids ends the list there.
fn each_row<T>(
    conn: &Connection,
    table: &str,
    cols: &str,
    lenient: bool,
    out: &mut Loaded,
    decode: fn(&Row) -> Option<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut got = Vec::new();
    if !lenient {
        let mut stmt = conn.prepare(&format!("SELECT {cols} FROM {table}"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            match decode(row) {
                Some(v) => got.push(v),
                None => out.skipped += 1,
            }
        }
        return Ok(got);
    }
    let mut rowids = Vec::new();
    let listed = (|| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare(&format!("SELECT rowid FROM {table}"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            rowids.push(row.get::<_, i64>(0)?);
        }
        Ok(())
    })();
    if let Err(e) = listed {
        out.stopped_by
            .get_or_insert_with(|| format!("listing {table}: {e}"));
    }
    let Ok(mut stmt) = conn.prepare(&format!("SELECT {cols} FROM {table} WHERE rowid = ?1")) else {
        out.skipped += rowids.len();
        return Ok(got);
    };
    for rowid in rowids {
        match stmt.query_row([rowid], |row| Ok(decode(row))) {
            Ok(Some(v)) => got.push(v),
            Ok(None) | Err(_) => out.skipped += 1,
        }
    }
    Ok(got)
}

fn hash_of(row: &Row, idx: usize) -> Option<InfoHash> {
    let v: Vec<u8> = row.get(idx).ok()?;
    v.try_into().ok()
}

fn decode_torrent(row: &Row) -> Option<TorrentRecord> {
    let counter = |idx: usize| -> Option<u64> { u64::try_from(row.get::<_, i64>(idx).ok()?).ok() };
    Some(TorrentRecord {
        info_hash: hash_of(row, 0)?,
        metainfo: row.get(1).ok()?,
        name: row.get(2).ok()?,
        save_path: row.get(3).ok()?,
        category: row.get(4).ok()?,
        tags: decode_tags(&row.get::<_, String>(5).ok()?)?,
        added_at: row.get(6).ok()?,
        completed_at: row.get(7).ok()?,
        paused: match row.get::<_, Value>(8).ok()? {
            Value::Integer(0) => false,
            Value::Integer(1) => true,
            _ => return None,
        },
        queue_position: row.get(9).ok()?,
        settings: row.get(10).ok()?,
        uploaded: counter(11)?,
        downloaded: counter(12)?,
        error: row.get(13).ok()?,
    })
}

fn decode_resume(row: &Row) -> Option<ResumeRecord> {
    let piece_count: u32 = u32::try_from(row.get::<_, i64>(1).ok()?).ok()?;
    let have: Vec<u8> = row.get(2).ok()?;
    if bitfield_problem(piece_count, &have).is_some() {
        return None;
    }
    Some(ResumeRecord {
        info_hash: hash_of(row, 0)?,
        piece_count,
        have,
        files: decode_files(&row.get::<_, Vec<u8>>(3).ok()?)?,
        updated_at: row.get(4).ok()?,
    })
}

/// Writes salvaged rows into a fresh file, in one transaction.
pub fn insert_all(conn: &mut Connection, loaded: &Loaded) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for c in &loaded.categories {
        set_category(&tx, c)?;
    }
    for name in &loaded.tags {
        apply(&tx, &Write::AddTag(name.clone()))?;
    }
    for t in &loaded.torrents {
        upsert(&tx, &t.record)?;
        if let Some(r) = &t.resume {
            resume(&tx, r)?;
        }
    }
    tx.commit()
}
