//! Saying which of a torrent's paths were made safe (see the engine's `metainfo::sanitize`):
//! a user who looks for a file under the torrent's own spelling finds the line that says
//! where it went.

use ccbt_engine::metainfo::Metainfo;

/// One warning per changed path, and one for bytes ignored after the torrent's end.
pub fn log(meta: &Metainfo) {
    let files = meta.info.layout.files();
    for r in &meta.info.renamed {
        tracing::warn!(
            torrent = %meta.info_hash,
            file = r.file,
            original = %r.original,
            stored_as = %files[r.file].path,
            why = r.why,
            "a path in the torrent was changed to a safe one"
        );
    }
    if meta.trailing_bytes > 0 {
        tracing::warn!(
            torrent = %meta.info_hash,
            bytes = meta.trailing_bytes,
            "bytes after the torrent's end were ignored"
        );
    }
}
