//! The bytes of a `GET`.

use url::Url;

/// The bytes of a `GET` for `url`, with `Range: bytes=first-last` (inclusive) when `range`
/// is given. The URL crate has already percent-encoded the path and query, so they hold no
/// spaces or line breaks; the user agent is stripped of control characters so it cannot
/// inject headers.
pub fn get_request(url: &Url, user_agent: &str, range: Option<(u64, u64)>) -> Vec<u8> {
    let mut target = url.path().to_string();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut host = url.host_str().unwrap_or_default().to_string();
    if let Some(port) = url.port() {
        host.push_str(&format!(":{port}"));
    }
    let agent: String = user_agent.chars().filter(|c| !c.is_control()).collect();
    let range = match range {
        Some((first, last)) => format!("Range: bytes={first}-{last}\r\n"),
        None => String::new(),
    };
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n{range}\
         Accept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_request_names_the_inclusive_range() {
        let url = Url::parse("http://h:81/a%20b/c").unwrap();
        let bytes = String::from_utf8(get_request(&url, "x", Some((16, 31)))).unwrap();
        assert!(bytes.starts_with("GET /a%20b/c HTTP/1.1\r\nHost: h:81\r\n"));
        assert!(bytes.contains("\r\nRange: bytes=16-31\r\n"), "{bytes}");
    }
}
