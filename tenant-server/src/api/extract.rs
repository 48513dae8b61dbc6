//! Extractors that turn a request into checked values or an API.md error:
//! the caller (`Auth`), JSON bodies (`AppJson`, never axum's plain-text
//! rejections), path and query parameters, `X-Claim-Token`, `If-Match`.

use super::error::ApiError;
use crate::domain::{Principal, Scope};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes_alias::Bytes;
use serde::de::DeserializeOwned;

mod bytes_alias {
    pub use axum::body::Bytes;
}

/// The authenticated caller; `401` when the request carried no valid token.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// `403` unless the token has `scope` (scopes include the ones below).
    pub fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        if self.0.has(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!(
                "this token lacks the {} scope",
                scope.as_str()
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Auth)
            .ok_or(ApiError::Unauthorized)
    }
}

/// The token a request carries: `Authorization: Bearer …` or `X-API-Key`.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The largest accepted body, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn body_error(rejection: BytesRejection, limit: BodyLimit) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit: limit.0 }
    } else {
        ApiError::Invalid("the request body could not be read completely".into())
    }
}

fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::Invalid(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    integral_floats_to_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| ApiError::Invalid(describe_json_error(&e)))
}

/// JSON does not tell `5.0` from `5`, and JSON Schema's `integer` accepts
/// both: read an integral number as an integer wherever it appears.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f >= i64::MIN as f64
                && f < i64::MAX as f64
            {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// Turns a serde error into a sentence about the input, naming the field:
/// never a Rust type or struct name.
pub fn describe_json_error(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = error.inner();
    let path = error.path().to_string();
    let path = (path != ".").then_some(path);
    describe_data_error(
        path.as_deref(),
        &strip_position(&inner.to_string()),
        "field",
    )
}

/// serde_json appends " at line L column C" to data errors.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The names between backticks in a serde message, in order.
fn ticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

/// What serde expected, in words ("i64" → "an integer").
fn expected_in_words(expected: &str) -> &'static str {
    let e = expected.trim();
    if [
        "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "usize", "isize", "integer",
    ]
    .iter()
    .any(|t| e == *t || e.starts_with(&format!("{t} ")))
    {
        "an integer"
    } else if e.contains("bool") {
        "true or false"
    } else if e.contains("string") || e.contains("char") {
        "a string"
    } else if e.contains("sequence") || e.contains("array") || e.contains("Vec") {
        "a list"
    } else if e.contains("struct") || e.contains("map") || e.contains("object") {
        "an object"
    } else if e.contains("f32") || e.contains("f64") || e.contains("float") {
        "a number"
    } else if e.contains("enum") || e.contains("variant") {
        "one of the documented values"
    } else {
        "a value of the documented type"
    }
}

/// Shared by JSON bodies, query strings and MCP tool arguments.
pub fn describe_data_error(path: Option<&str>, message: &str, what: &str) -> String {
    let names = ticked(message);
    let quoted = |name: &str| match path {
        Some(p) if !p.is_empty() && !p.ends_with(name) => format!("\"{p}.{name}\""),
        _ => format!("\"{name}\""),
    };
    let at = match path {
        Some(p) => format!("{what} \"{p}\""),
        None => "the body".to_owned(),
    };
    if message.starts_with("unknown field") {
        let field = names.first().copied().unwrap_or("?");
        let accepted = names.get(1..).unwrap_or_default().join(", ");
        if accepted.is_empty() {
            format!("unknown {what} {}: this takes no {what}s", quoted(field))
        } else {
            format!(
                "unknown {what} {}: the accepted {what}s are {accepted}",
                quoted(field)
            )
        }
    } else if message.starts_with("missing field") {
        let field = names.first().copied().unwrap_or("?");
        format!("the {what} {} is required", quoted(field))
    } else if message.starts_with("unknown variant") {
        let got = names.first().copied().unwrap_or("?");
        let allowed = names.get(1..).unwrap_or_default().join(", ");
        format!("{at} must be one of {allowed}, not \"{got}\"")
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        let expected = rest.split(", expected ").nth(1).unwrap_or("");
        let got = rest
            .split(", expected ")
            .next()
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("");
        let got = match got {
            "floating" => "a number with a fraction or out of range",
            "integer" => "an integer",
            "string" => "a string",
            "boolean" => "a boolean",
            "sequence" => "a list",
            "map" => "an object",
            "null" => "null",
            _ => "something else",
        };
        if path.is_none() {
            format!(
                "the body must be {}, not {got}",
                expected_in_words(expected)
            )
        } else {
            format!("{at} must be {}, not {got}", expected_in_words(expected))
        }
    } else if message.starts_with("invalid value")
        || message.starts_with("invalid digit")
        || message.starts_with("number too")
        || message.contains("parse")
    {
        let expected = message.split(", expected ").nth(1).unwrap_or("integer");
        format!("{at} must be {}", expected_in_words(expected))
    } else if message.starts_with("invalid length") {
        format!("{at} has the wrong number of elements")
    } else {
        format!("{at} is not valid")
    }
}

/// A required JSON body.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T>
where
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::Invalid(
                "send a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, BodyLimit::from_ref(state)))?;
        parse_json(&bytes).map(AppJson)
    }
}

/// A JSON body that may be left out entirely (then `T::default()`).
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T>
where
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = is_json(&req);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e, BodyLimit::from_ref(state)))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !declared_json {
            return Err(ApiError::Invalid(
                "send a JSON body with Content-Type: application/json".into(),
            ));
        }
        // `null` is the same as no body: the document declares it nullable.
        parse_json::<Option<T>>(&bytes).map(|v| OptionalJson(v.unwrap_or_default()))
    }
}

/// Path parameters; a non-integer id is `400`, not axum's plain text.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e: PathRejection| ApiError::Invalid(describe_path_error(&e)))
    }
}

fn describe_path_error(rejection: &PathRejection) -> String {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(error) = rejection else {
        return "the path could not be read".into();
    };
    match error.kind() {
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => format!(
            "\"{key}\" in the path must be {}, not \"{value}\"",
            expected_in_words(expected_type)
        ),
        ErrorKind::ParseErrorAtIndex {
            value,
            expected_type,
            ..
        }
        | ErrorKind::ParseError {
            value,
            expected_type,
        } => format!(
            "each id in the path must be {}, not \"{value}\"",
            expected_in_words(expected_type)
        ),
        ErrorKind::InvalidUtf8InPathParam { key } => {
            format!("\"{key}\" in the path is not valid UTF-8")
        }
        _ => "the path could not be read".into(),
    }
}

/// Query parameters; unknown enum values and bad numbers are `400`
/// naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let path = (path != ".").then_some(path);
                ApiError::Invalid(describe_data_error(
                    path.as_deref(),
                    &e.inner().to_string(),
                    "query parameter",
                ))
            })
    }
}

fn form_urlencoded_parse(query: &str) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(query.as_bytes())
}

fn int_header(parts: &Parts, name: &str) -> Result<Option<String>, ApiError> {
    match parts.headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| ApiError::Invalid(format!("{name} must be ASCII"))),
    }
}

/// `X-Claim-Token`: the fencing token of the sender's claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimToken(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for ClaimToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match int_header(parts, "x-claim-token")? {
            None => Ok(ClaimToken(None)),
            Some(v) => v.parse::<i64>().map(|t| ClaimToken(Some(t))).map_err(|_| {
                ApiError::Invalid(format!(
                    "X-Claim-Token must be the integer token of your claim, not {v:?}"
                ))
            }),
        }
    }
}

/// `If-Match: "<version>"` (`*` or absent: no precondition).
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match int_header(parts, "if-match")? {
            None => Ok(IfMatch(None)),
            Some(v) if v == "*" => Ok(IfMatch(None)),
            Some(v) => parse_version_tag(&v)
                .map(|n| IfMatch(Some(n)))
                .ok_or_else(|| {
                    ApiError::Invalid(format!(
                        "If-Match must be an item version such as \"5\" (its ETag), not {v:?}"
                    ))
                }),
        }
    }
}

/// `If-Match` as [`IF_MATCH_PATTERN`] states it: `5`, `"5"`, `W/"5"`.
pub const IF_MATCH_PATTERN: &str = "^(\\*|(W/)?\"?[0-9]{1,18}\"?)$";

fn parse_version_tag(value: &str) -> Option<i64> {
    let tag = value.strip_prefix("W/").unwrap_or(value);
    let tag = tag.strip_prefix('"').unwrap_or(tag);
    let tag = tag.strip_suffix('"').unwrap_or(tag);
    (!tag.is_empty() && tag.len() <= 18 && tag.bytes().all(|b| b.is_ascii_digit()))
        .then(|| tag.parse().ok())
        .flatten()
}
