//! The RPC's HTTP side: access checks, the session-id dance, the body, and the JSON
//! envelope `{"result", "arguments", "tag"}`.
//!
//! Any content type is accepted (transmission-remote 3.00 sends a form type with a JSON
//! body). A failed method is HTTP 200 with the error in `result`, as Transmission does;
//! only a body that is not a JSON object is HTTP 400, and one over
//! `control.max_request_bytes` is 413.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::super::access::reason;
use super::super::Api;
use super::dispatch::{self, Arguments};
use super::{guard, session_id};

pub async fn rpc(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    if let Err(refusal) = guard::admit(&api.access, peer.ip(), request.headers()) {
        return refusal.into_response();
    }
    if !session_id::matches(request.headers()) {
        return conflict();
    }
    if request.method() != Method::POST {
        let mut r = reason(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST the JSON request ({\"method\": ..., \"arguments\": {...}}) to this URL",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let limit = api.access.max_request_bytes;
    let body = match axum::body::to_bytes(request.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => {
            return reason(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request body is over control.max_request_bytes ({limit} bytes)"),
            )
        }
    };
    let request = match parse(&body) {
        Ok(r) => r,
        Err(why) => return reason(StatusCode::BAD_REQUEST, &why),
    };
    let outcome = match request.arguments {
        Ok(args) => dispatch::call(&api, &request.method, args).await,
        Err(why) => Err(why),
    };
    let (result, arguments) = match outcome {
        Ok(Arguments::Map(map)) => (
            "success".to_string(),
            Value::Object(map).to_string().into_bytes(),
        ),
        Ok(Arguments::Serialized(json)) => ("success".to_string(), json),
        Err(why) => (why, b"{}".to_vec()),
    };
    let result = Value::String(result).to_string();
    let mut body = Vec::with_capacity(arguments.len() + result.len() + 64);
    body.extend_from_slice(b"{\"arguments\":");
    body.extend_from_slice(&arguments);
    body.extend_from_slice(b",\"result\":");
    body.extend_from_slice(result.as_bytes());
    if let Some(tag) = request.tag {
        body.extend_from_slice(format!(",\"tag\":{tag}").as_bytes());
    }
    body.push(b'}');
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

/// 409 with this run's token, which the client echoes from then on.
fn conflict() -> Response {
    let mut r = (
        StatusCode::CONFLICT,
        [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
        format!(
            "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p>\
             <p><code>{}: {}</code></p>",
            "X-Transmission-Session-Id",
            session_id::current()
        ),
    )
        .into_response();
    r.headers_mut().insert(
        session_id::HEADER,
        HeaderValue::from_static(session_id::current()),
    );
    r
}

/// One call as sent. Problems with `method` or `arguments` are the protocol's errors
/// (HTTP 200, said in `result`); a body that is not a JSON object is a bad request.
#[derive(Debug)]
struct Call {
    method: String,
    arguments: Result<Map<String, Value>, String>,
    tag: Option<Value>,
}

fn parse(body: &[u8]) -> Result<Call, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the request body is not JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("the request body must be a JSON object with a \"method\"".into());
    };
    let tag = object
        .remove("tag")
        .filter(|t| t.is_number() || t.is_string());
    let method = match object.remove("method") {
        Some(Value::String(m)) => m,
        _ => {
            return Ok(Call {
                method: String::new(),
                arguments: Err("no method name".into()),
                tag,
            })
        }
    };
    let arguments = match object.remove("arguments") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(args)) => Ok(args),
        Some(other) => Err(format!(
            "\"arguments\" must be a JSON object, not {}",
            dispatch::kind_of(&other)
        )),
    };
    Ok(Call {
        method,
        arguments,
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_parsed_into_calls_or_refused_with_a_reason() {
        let call = parse(br#"{"method":"session-get","arguments":{"fields":["version"]},"tag":7}"#)
            .unwrap();
        assert_eq!(call.method, "session-get");
        assert_eq!(call.tag, Some(Value::from(7)));
        assert!(call.arguments.unwrap().contains_key("fields"));
        assert!(parse(b"{not json").unwrap_err().contains("not JSON"));
        assert!(parse(b"[1,2]").unwrap_err().contains("JSON object"));
        let wrong = parse(br#"{"method":"torrent-get","arguments":[1]}"#).unwrap();
        assert!(wrong
            .arguments
            .unwrap_err()
            .contains("must be a JSON object"));
        let nameless = parse(br#"{"arguments":{}}"#).unwrap();
        assert_eq!(nameless.arguments.unwrap_err(), "no method name");
    }
}
