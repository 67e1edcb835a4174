//! Which URL holds a torrent's file (BEP 19).
//!
//! Single-file torrent: the URL is the file, except that a URL ending in `/` gets the
//! torrent's name appended. Multi-file torrent: the URL, a `/` (unless it already ends in
//! one), the name, a `/`, and the file's path. Every path component is percent-encoded
//! byte by byte (all but RFC 3986's unreserved characters), so names with spaces, `#`,
//! `?` or non-ASCII bytes reach the server as the file system spells them. The path used
//! is the one the file has on disk here; a torrent whose paths had to be made safe (see
//! `metainfo::sanitize`) may name such files differently from the server.

use super::WebSeedError;
use crate::metainfo::Layout;

/// The URL of file `file` of `layout` on the web seed `base`.
pub fn file_url(base: &str, layout: &Layout, file: usize) -> Result<String, WebSeedError> {
    let scheme_ok = base
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        || base
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if !scheme_ok || base.chars().any(|c| c.is_control() || c == ' ') {
        return Err(WebSeedError::BadUrl(base.to_string()));
    }
    let path = &layout
        .files()
        .get(file)
        .ok_or_else(|| WebSeedError::BadUrl(base.to_string()))?
        .path;
    // A single-file torrent's one path is its name; a multi-file torrent's paths start with
    // the name and have at least one more component.
    let multi = path.components().len() > 1;
    let mut url = base.to_string();
    if multi || url.ends_with('/') {
        if !url.ends_with('/') {
            url.push('/');
        }
        for (i, c) in path.components().enumerate() {
            if i > 0 {
                url.push('/');
            }
            encode_into(c, &mut url);
        }
    }
    Ok(url)
}

/// Appends `component` percent-encoded.
fn encode_into(component: &[u8], out: &mut String) {
    for &b in component {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::{LayoutFile, TorrentPath};

    fn layout(paths: &[&[&str]]) -> Layout {
        Layout::new(
            16,
            paths.iter().map(|p| LayoutFile {
                path: TorrentPath::new(p.iter()).unwrap(),
                length: 5,
                pad: false,
            }),
        )
        .unwrap()
    }

    #[test]
    fn single_file_is_the_url_or_the_name_after_a_slash() {
        let l = layout(&[&["my file.iso"]]);
        assert_eq!(
            file_url("http://h/x/file.iso", &l, 0).unwrap(),
            "http://h/x/file.iso"
        );
        assert_eq!(
            file_url("http://h/x/", &l, 0).unwrap(),
            "http://h/x/my%20file.iso"
        );
    }

    #[test]
    fn multi_file_appends_name_and_encoded_path() {
        let l = layout(&[&["Album", "disc 1", "01 #intro?.flac"], &["Album", "日"]]);
        assert_eq!(
            file_url("http://h:8/seeds", &l, 0).unwrap(),
            "http://h:8/seeds/Album/disc%201/01%20%23intro%3F.flac"
        );
        assert_eq!(
            file_url("HTTP://h/seeds/", &l, 1).unwrap(),
            "HTTP://h/seeds/Album/%E6%97%A5"
        );
    }

    #[test]
    fn other_schemes_and_broken_urls_are_refused() {
        let l = layout(&[&["a"]]);
        for bad in ["ftp://h/a", "h/a", "http://h/a b", "http://h/\r\nX: y", ""] {
            assert!(
                matches!(file_url(bad, &l, 0), Err(WebSeedError::BadUrl(_))),
                "{bad}"
            );
        }
        assert!(file_url("http://h/", &l, 3).is_err());
    }
}
