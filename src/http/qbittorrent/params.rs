//! A request's parameters as qBittorrent reads them: the query string and, for a form
//! POST, the `application/x-www-form-urlencoded` body, in that order (a name given twice
//! takes its first value). The body is capped by the router's `control.max_request_bytes`
//! (413 past it); a body in another encoding is refused (400), except multipart, which
//! only `torrents/add` reads (see [`super::add`]).

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ccbt_engine::InfoHash;

use super::Refusal;
use crate::http::access::reason;

/// Parameters given at most; more are refused (400), so a crafted body of a million
/// empty pairs cannot make us build a million-entry list.
pub const MAX_PARAMS: usize = 1_000;

#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

/// The hashes a bulk command names.
#[derive(Debug, PartialEq, Eq)]
pub enum Hashes {
    All,
    /// Those that parse as info hashes; the rest are ignored, as qBittorrent does.
    Some(Vec<InfoHash>),
}

impl Params {
    pub fn parse(text: &[u8], into: &mut Vec<(String, String)>) -> Result<(), Refusal> {
        for (k, v) in url::form_urlencoded::parse(text) {
            if into.len() >= MAX_PARAMS {
                return Err(Refusal::bad(format!(
                    "too many parameters (at most {MAX_PARAMS})"
                )));
            }
            into.push((k.into_owned(), v.into_owned()));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that must be there.
    pub fn need(&self, name: &str) -> Result<&str, Refusal> {
        self.get(name)
            .ok_or_else(|| Refusal::bad(format!("Missing parameter: {name}")))
    }

    /// `true`/`false` (any case; qBittorrent's own UI sends both spellings); absent is
    /// `None`, anything else a 400.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Refusal> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" || v.is_empty() => {
                Ok(Some(false))
            }
            Some(v) => Err(Refusal::bad(format!(
                "{name}: expected true or false, got {v:?}"
            ))),
        }
    }

    /// A number, if given.
    pub fn number<T: FromStr>(&self, name: &str) -> Result<Option<T>, Refusal> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Refusal::bad(format!("{name}: {v:?} is not a valid number"))),
        }
    }

    /// A finite decimal number, if given (`NaN` and `inf` parse as floats, but are no
    /// limit anyone means).
    pub fn real(&self, name: &str) -> Result<Option<f64>, Refusal> {
        match self.number::<f64>(name)? {
            Some(v) if !v.is_finite() => {
                Err(Refusal::bad(format!("{name}: {v} is not a finite number")))
            }
            v => Ok(v),
        }
    }

    /// One info hash (`hash`): a 400 when missing or malformed.
    pub fn hash(&self) -> Result<InfoHash, Refusal> {
        let text = self.need("hash")?;
        InfoHash::from_str(text.trim())
            .map_err(|_| Refusal::bad(format!("hash: {text:?} is not an info hash")))
    }

    /// `hashes`: `all` or a `|`-separated list.
    pub fn hashes(&self) -> Result<Hashes, Refusal> {
        let text = self.need("hashes")?;
        if text.trim().eq_ignore_ascii_case("all") {
            return Ok(Hashes::All);
        }
        Ok(Hashes::Some(
            text.split('|')
                .filter_map(|h| InfoHash::from_str(h.trim()).ok())
                .collect(),
        ))
    }
}

/// The answer to a body that could not be read: 413 says which limit, the rest why.
pub fn body_refusal(status: StatusCode, detail: &str) -> Response {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        reason(
            status,
            "the request body is larger than control.max_request_bytes",
        )
    } else {
        reason(status, &format!("cannot read the request body: {detail}"))
    }
}

/// Splits a list parameter (tags by `,`, categories by newline), trimmed, empties
/// dropped.
pub fn list(text: &str, separator: char) -> Vec<String> {
    text.split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut params = Vec::new();
        if let Some(query) = req.uri().query() {
            Params::parse(query.as_bytes(), &mut params).map_err(IntoResponse::into_response)?;
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_refusal(e.status(), &e.body_text()))?;
        if !body.is_empty() {
            if content_type.is_empty()
                || content_type.starts_with("application/x-www-form-urlencoded")
            {
                Params::parse(&body, &mut params).map_err(IntoResponse::into_response)?;
            } else {
                return Err(reason(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "expected an application/x-www-form-urlencoded body, not {content_type}"
                    ),
                ));
            }
        }
        Ok(Params(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> Params {
        let mut v = Vec::new();
        Params::parse(text.as_bytes(), &mut v).unwrap();
        Params(v)
    }

    #[test]
    fn hashes_are_all_or_a_bar_separated_list() {
        let h = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(params("hashes=all").hashes().unwrap(), Hashes::All);
        let Hashes::Some(list) = params(&format!("hashes={h}%7Cnothex%7C{}", h.to_uppercase()))
            .hashes()
            .unwrap()
        else {
            panic!("not a list");
        };
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].to_hex(), h);
        assert!(params("x=1").hashes().is_err());
    }

    #[test]
    fn flags_and_numbers_refuse_garbage() {
        let p = params("a=true&b=False&c=maybe&n=12&m=x");
        assert_eq!(p.flag("a").unwrap(), Some(true));
        assert_eq!(p.flag("b").unwrap(), Some(false));
        assert!(p.flag("c").is_err());
        assert_eq!(p.flag("zz").unwrap(), None);
        assert_eq!(p.number::<u64>("n").unwrap(), Some(12));
        assert!(p.number::<u64>("m").is_err());
        let reals = params("a=1.5&b=NaN&c=inf");
        assert_eq!(reals.real("a").unwrap(), Some(1.5));
        assert!(reals.real("b").is_err());
        assert!(reals.real("c").is_err());
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let body = "a=1&".repeat(MAX_PARAMS + 1);
        let mut v = Vec::new();
        assert!(Params::parse(body.as_bytes(), &mut v).is_err());
    }

    #[test]
    fn lists_drop_blanks() {
        assert_eq!(list(" a, b ,,c", ','), vec!["a", "b", "c"]);
        assert_eq!(list("tv\nmovies\n", '\n'), vec!["tv", "movies"]);
    }
}
