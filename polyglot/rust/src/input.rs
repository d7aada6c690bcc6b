//! Request input: the body gate (size 413, media type 415, JSON syntax 400, in that order) and
//! the schema checks (422) of parameters and bodies, reporting every problem found as the
//! Python apps do (one entry per location and field, body members as JSON Pointers).

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::problems::{ApiError, FieldError, Location, BAD_JSON_DETAIL, EMPTY_BODY};
use crate::stores::MAX_QUANTITY;

/// `application/json`, with or without parameters; case-insensitive.
pub fn is_json_media_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .map(|t| t.trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false)
}

/// Read and parse the body, checked in the contract's order: size, media type, syntax.
pub async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Value, ApiError> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &actix_web::http::header::HeaderValue| v.to_str().ok())
    };
    let json_type = is_json_media_type(header(CONTENT_TYPE));
    if let Some(declared) = header(CONTENT_LENGTH).map(str::trim) {
        if !declared.is_empty() && declared.bytes().all(|b| b.is_ascii_digit()) {
            if declared
                .parse::<u128>()
                .map(|n| n > limit as u128)
                .unwrap_or(true)
            {
                return Err(ApiError::BodyTooLarge(limit));
            }
            if !json_type {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest(BAD_JSON_DETAIL))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    if !json_type {
        return Err(ApiError::UnsupportedMediaType);
    }
    if body.iter().all(|b| b" \t\n\r\x0b\x0c".contains(b)) {
        return Err(ApiError::BadRequest(EMPTY_BODY));
    }
    check_carriable(&body)?;
    serde_json::from_slice(&body).map_err(|_| ApiError::BadRequest(BAD_JSON_DETAIL))
}

/// A JSON Pointer (RFC 6901) to a member of the body.
fn json_pointer(member: &str) -> String {
    format!("/{}", member.replace('~', "~0").replace('/', "~1"))
}

fn body_error(field: impl Into<String>, detail: &str) -> FieldError {
    FieldError::new(Location::Body, field, detail)
}

const NOT_AN_OBJECT: &str = "Input should be a valid dictionary or object to extract fields from";
const NOT_A_STRING: &str = "Input should be a valid string";
const NOT_AN_INTEGER: &str = "Input should be a valid integer";
const REQUIRED: &str = "Field required";
const EXTRA: &str = "Extra inputs are not permitted";

fn object(body: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    body.as_object()
        .ok_or_else(|| vec![body_error("", NOT_AN_OBJECT)])
}

fn extras(map: &Map<String, Value>, known: &[&str], errors: &mut Vec<FieldError>) {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(body_error(json_pointer(key), EXTRA));
        }
    }
}

/// An integer as pydantic takes it from JSON: an integral number (3.0 included), never a
/// string or a boolean.
fn json_integer(value: &Value) -> Result<i64, &'static str> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.as_u64().is_some() {
                Err("Input should be less than or equal to 2147483647")
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
                    Some(f) if f.fract() == 0.0 => {
                        Err("Input should be a valid integer, too large")
                    }
                    _ => {
                        Err("Input should be a valid integer, got a number with a fractional part")
                    }
                }
            }
        }
        _ => Err(NOT_AN_INTEGER),
    }
}

/// ItemCreate: `name` (1-100 characters, no NUL) and `quantity` (0 to 2^31-1, default 0).
pub fn item_create(body: &Value) -> Result<(String, i64), Vec<FieldError>> {
    let map = object(body)?;
    let mut errors = Vec::new();
    let name = match map.get("name") {
        None => {
            errors.push(body_error("/name", REQUIRED));
            None
        }
        Some(Value::String(s)) => {
            let length = s.chars().count();
            if length < 1 {
                errors.push(body_error(
                    "/name",
                    "String should have at least 1 character",
                ));
                None
            } else if length > 100 {
                errors.push(body_error(
                    "/name",
                    "String should have at most 100 characters",
                ));
                None
            } else if s.contains('\0') {
                errors.push(body_error(
                    "/name",
                    "String should match pattern '^[^\\x00]*$'",
                ));
                None
            } else {
                Some(s.clone())
            }
        }
        Some(_) => {
            errors.push(body_error("/name", NOT_A_STRING));
            None
        }
    };
    let quantity = match map.get("quantity") {
        None => Some(0),
        Some(value) => match json_integer(value) {
            Ok(q) if q < 0 => {
                errors.push(body_error(
                    "/quantity",
                    "Input should be greater than or equal to 0",
                ));
                None
            }
            Ok(q) if q > MAX_QUANTITY => {
                errors.push(body_error(
                    "/quantity",
                    "Input should be less than or equal to 2147483647",
                ));
                None
            }
            Ok(q) => Some(q),
            Err(detail) => {
                errors.push(body_error("/quantity", detail));
                None
            }
        },
    };
    extras(map, &["name", "quantity"], &mut errors);
    match (name, quantity, errors.is_empty()) {
        (Some(name), Some(quantity), true) => Ok((name, quantity)),
        _ => Err(errors),
    }
}

pub const MAX_CACHE_TTL: i64 = 86400;

/// CacheWrite: `value` (a string) and `ttl_seconds` (1 to 86400; omitted, never null).
pub fn cache_write(body: &Value) -> Result<(String, Option<i64>), Vec<FieldError>> {
    let map = object(body)?;
    let mut errors = Vec::new();
    let value = match map.get("value") {
        None => {
            errors.push(body_error("/value", REQUIRED));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(body_error("/value", NOT_A_STRING));
            None
        }
    };
    let ttl = match map.get("ttl_seconds") {
        None => Ok(None),
        Some(Value::Null) => Err("must be an integer; omit it for a key that never expires"),
        Some(v) => match json_integer(v) {
            Ok(t) if t < 1 => Err("Input should be greater than or equal to 1"),
            Ok(t) if t > MAX_CACHE_TTL => Err("Input should be less than or equal to 86400"),
            Ok(t) => Ok(Some(t)),
            Err(detail) => Err(detail),
        },
    };
    let ttl = match ttl {
        Ok(t) => Some(t),
        Err(detail) => {
            errors.push(body_error("/ttl_seconds", detail));
            None
        }
    };
    extras(map, &["value", "ttl_seconds"], &mut errors);
    match (value, ttl, errors.is_empty()) {
        (Some(value), Some(ttl), true) => Ok((value, ttl)),
        _ => Err(errors),
    }
}

/// A message payload: any JSON object.
pub fn json_object(body: &Value) -> Result<(), Vec<FieldError>> {
    if body.is_object() {
        Ok(())
    } else {
        Err(vec![body_error("", "Input should be a valid dictionary")])
    }
}

fn all_chars(text: &str, allowed: impl Fn(char) -> bool) -> bool {
    text.chars().all(allowed)
}

/// A cache key: 1 to 200 of `A-Z a-z 0-9 : _ . -`, not `.` or `..`.
pub fn cache_key(key: &str) -> Result<(), FieldError> {
    let ok = (1..=200).contains(&key.chars().count())
        && all_chars(key, |c| c.is_ascii_alphanumeric() || ":_.-".contains(c))
        && key != "."
        && key != "..";
    ok.then_some(()).ok_or_else(|| {
        FieldError::new(
            Location::Path,
            "key",
            "String should match pattern '^[A-Za-z0-9:_.-]{1,200}$' (not . or ..)",
        )
    })
}

/// A queue name: 1 to 200 of `A-Z a-z 0-9 . _ -`, not `.`, `..` or `amq.*`.
pub fn queue_name(queue: &str) -> Result<(), FieldError> {
    let ok = (1..=200).contains(&queue.chars().count())
        && all_chars(queue, |c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && queue != "."
        && queue != ".."
        && !queue.starts_with("amq.");
    ok.then_some(()).ok_or_else(|| {
        FieldError::new(
            Location::Path,
            "queue",
            "String should match pattern '^[A-Za-z0-9._-]{1,200}$' (not . or .., not amq.*)",
        )
    })
}

/// An integer query parameter as pydantic parses one from text: surrounding whitespace, a
/// sign, `_` between digits and a zero fraction are accepted.
pub fn parse_query_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1i64, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    if let Some(f) = fraction {
        if !f.bytes().all(|b| b == b'0') {
            return None;
        }
    }
    let bytes = whole.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_digit()
        || !bytes[bytes.len() - 1].is_ascii_digit()
        || bytes.windows(2).any(|w| w == b"__")
        || !bytes.iter().all(|b| b.is_ascii_digit() || *b == b'_')
    {
        return None;
    }
    let clean: String = whole.chars().filter(|c| *c != '_').collect();
    // Beyond i64 is out of any range here: clamp, the bounds check refuses it.
    Some(
        clean
            .parse::<i64>()
            .unwrap_or(i64::MAX)
            .saturating_mul(sign),
    )
}

/// The last value of a query parameter (as Starlette takes it).
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()
        .and_then(|q| {
            q.into_inner()
                .into_iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
        })
}

/// An integer query parameter in `1..=max`, `default` when absent.
pub fn bounded_int(
    req: &HttpRequest,
    name: &str,
    default: i64,
    max: i64,
) -> Result<i64, FieldError> {
    let Some(text) = query_param(req, name) else {
        return Ok(default);
    };
    match parse_query_int(&text) {
        None => Err(FieldError::new(
            Location::Query,
            name,
            "Input should be a valid integer, unable to parse string as an integer",
        )),
        Some(v) if v < 1 => Err(FieldError::new(
            Location::Query,
            name,
            "Input should be greater than or equal to 1",
        )),
        Some(v) if v > max => Err(FieldError::new(
            Location::Query,
            name,
            format!("Input should be less than or equal to {max}"),
        )),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        let mut found: Vec<String> = errors.into_iter().map(|e| e.field).collect();
        found.sort();
        found
    }

    #[test]
    fn item_create_follows_the_schema() {
        assert_eq!(item_create(&json!({"name": "n"})), Ok(("n".into(), 0)));
        assert_eq!(
            item_create(&json!({"name": "n", "quantity": 3.0})),
            Ok(("n".into(), 3))
        );
        assert_eq!(
            item_create(&json!({"name": "n", "quantity": 2147483647})),
            Ok(("n".into(), 2147483647))
        );
        for bad in [
            json!({}),
            json!({"name": ""}),
            json!({"name": "n".repeat(101)}),
            json!({"name": "a\u{0}b"}),
            json!({"name": 5}),
        ] {
            assert_eq!(
                fields(item_create(&bad).expect_err("invalid")),
                ["/name"],
                "{bad}"
            );
        }
        for bad in [
            json!({"name": "n", "quantity": -1}),
            json!({"name": "n", "quantity": 2147483648u64}),
            json!({"name": "n", "quantity": 1.5}),
            json!({"name": "n", "quantity": "3"}),
            json!({"name": "n", "quantity": true}),
            json!({"name": "n", "quantity": null}),
        ] {
            assert_eq!(
                fields(item_create(&bad).expect_err("invalid")),
                ["/quantity"],
                "{bad}"
            );
        }
        assert_eq!(
            fields(
                item_create(&json!({"name": "n", "colour": "red", "a/b": 1})).expect_err("extra")
            ),
            ["/a~1b", "/colour"]
        );
        for bad in [json!([]), json!("x"), json!(null)] {
            assert_eq!(fields(item_create(&bad).expect_err("not an object")), [""]);
        }
        assert_eq!(
            fields(item_create(&json!({"quantity": "x", "other": 1})).expect_err("three")),
            ["/name", "/other", "/quantity"]
        );
    }

    #[test]
    fn cache_write_follows_the_schema() {
        assert_eq!(
            cache_write(&json!({"value": ""})),
            Ok((String::new(), None))
        );
        assert_eq!(
            cache_write(&json!({"value": "v", "ttl_seconds": 86400})),
            Ok(("v".into(), Some(86400)))
        );
        for (bad, field) in [
            (json!({}), "/value"),
            (json!({"value": 1}), "/value"),
            (json!({"value": "v", "ttl_seconds": 0}), "/ttl_seconds"),
            (json!({"value": "v", "ttl_seconds": 86401}), "/ttl_seconds"),
            (json!({"value": "v", "ttl_seconds": null}), "/ttl_seconds"),
            (json!({"value": "v", "x": 1}), "/x"),
        ] {
            assert_eq!(
                fields(cache_write(&bad).expect_err("invalid")),
                [field],
                "{bad}"
            );
        }
    }

    #[test]
    fn path_parameters() {
        assert!(cache_key("a..b").is_ok());
        assert!(cache_key("user:42_x-y.z").is_ok());
        for bad in ["", ".", "..", "a*b", "bad key", &"k".repeat(201)] {
            assert!(cache_key(bad).is_err(), "{bad}");
        }
        assert!(queue_name("parity.q-1_x").is_ok());
        for bad in ["amq.parity", "bad*name", "..", &"q".repeat(201)] {
            assert!(queue_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_integers_parse_like_pydantic() {
        for (text, value) in [
            ("10", 10),
            (" 10 ", 10),
            ("10.0", 10),
            ("1_0", 10),
            ("+5", 5),
            ("-1", -1),
        ] {
            assert_eq!(parse_query_int(text), Some(value), "{text}");
        }
        for text in ["ten", "", "1e1", "0x10", "10.5", "_1", "1__0", "١٠"] {
            assert_eq!(parse_query_int(text), None, "{text}");
        }
    }

    #[test]
    fn media_types() {
        assert!(is_json_media_type(Some("application/json")));
        assert!(is_json_media_type(Some("Application/JSON; charset=utf-8")));
        assert!(!is_json_media_type(Some("text/plain")));
        assert!(!is_json_media_type(None));
    }
}

/// The deepest nesting of objects and arrays in `text`, string contents skipped.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

pub const MAX_NESTING: usize = 64;

/// A JSON walker that finds what the grammar allows and nothing after it can carry: lone
/// surrogates (in values and member names) and numbers that are not finite doubles. `Err` is
/// a syntax error; `Ok(Some((pointer, detail)))` the first such value in document order.
struct Walker<'a> {
    b: &'a [u8],
    i: usize,
    found: Option<(String, &'static str)>,
}

const LONE_VALUE: &str = "must not contain a lone surrogate (U+D800 to U+DFFF)";
const LONE_NAME: &str = "has a member name with a lone surrogate (U+D800 to U+DFFF)";
const NOT_FINITE: &str = "is a number out of range (not finite as a double)";

impl Walker<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn flag(&mut self, pointer: &str, detail: &'static str) {
        if self.found.is_none() {
            self.found = Some((pointer.to_owned(), detail));
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn hex4(&mut self) -> Result<u32, ()> {
        let digits = self.b.get(self.i..self.i + 4).ok_or(())?;
        let text = std::str::from_utf8(digits).map_err(|_| ())?;
        let value = u32::from_str_radix(text, 16).map_err(|_| ())?;
        self.i += 4;
        Ok(value)
    }

    /// A string (the opening quote at `i`): its text (lone surrogates replaced) and whether it
    /// held one.
    fn string(&mut self) -> Result<(String, bool), ()> {
        self.i += 1;
        let mut out = String::new();
        let mut lone = false;
        loop {
            let b = self.peek().ok_or(())?;
            match b {
                b'"' => {
                    self.i += 1;
                    return Ok((out, lone));
                }
                b'\\' => {
                    self.i += 1;
                    let e = self.peek().ok_or(())?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            if (0xD800..0xDC00).contains(&first) {
                                let pair = self.b.get(self.i..self.i + 2) == Some(b"\\u");
                                let save = self.i;
                                let low = if pair {
                                    self.i += 2;
                                    Some(self.hex4()?)
                                } else {
                                    None
                                };
                                match low {
                                    Some(l) if (0xDC00..0xE000).contains(&l) => {
                                        let c = 0x10000 + ((first - 0xD800) << 10) + (l - 0xDC00);
                                        out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                    }
                                    _ => {
                                        self.i = save;
                                        lone = true;
                                        out.push('\u{fffd}');
                                    }
                                }
                            } else if (0xDC00..0xE000).contains(&first) {
                                lone = true;
                                out.push('\u{fffd}');
                            } else {
                                out.push(char::from_u32(first).unwrap_or('\u{fffd}'));
                            }
                        }
                        _ => return Err(()),
                    }
                }
                0..=0x1f => return Err(()),
                _ => {
                    // Copy one UTF-8 character (the text was checked to be UTF-8).
                    let start = self.i;
                    self.i += 1;
                    while self.i < self.b.len() && (self.b[self.i] & 0xC0) == 0x80 {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.b[start..self.i]).map_err(|_| ())?);
                }
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self, pointer: &str) -> Result<(), ()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(()),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(());
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(());
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| ())?;
        if !text.parse::<f64>().map_err(|_| ())?.is_finite() {
            self.flag(pointer, NOT_FINITE);
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(())
        }
    }

    fn value(&mut self, pointer: &str) -> Result<(), ()> {
        self.ws();
        match self.peek().ok_or(())? {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(());
                    }
                    let (name, lone) = self.string()?;
                    if lone {
                        self.flag(pointer, LONE_NAME);
                    }
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(());
                    }
                    self.i += 1;
                    self.value(&format!("{pointer}{}", json_pointer(&name)))?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(()),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                let mut index = 0usize;
                loop {
                    self.value(&format!("{pointer}/{index}"))?;
                    index += 1;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(()),
                    }
                }
            }
            b'"' => {
                let (_, lone) = self.string()?;
                if lone {
                    self.flag(pointer, LONE_VALUE);
                }
                Ok(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(pointer),
        }
    }
}

/// Syntax (`Err`), then the values past it (the contract's "Values past the syntax").
fn past_the_syntax(text: &[u8]) -> Result<Option<(String, &'static str)>, ()> {
    let mut walker = Walker {
        b: text,
        i: 0,
        found: None,
    };
    walker.value("")?;
    walker.ws();
    if walker.i != text.len() {
        return Err(());
    }
    Ok(walker.found)
}

/// A syntactically valid body that nothing after the parser can carry is a 422 naming the
/// first such value; invalid syntax is a 400.
pub fn check_carriable(body: &[u8]) -> Result<(), ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::BadRequest(BAD_JSON_DETAIL));
    }
    if nesting(body) > MAX_NESTING {
        return Err(ApiError::Invalid(vec![body_error(
            "",
            "nests objects and arrays deeper than 64 levels",
        )]));
    }
    match past_the_syntax(body) {
        Err(()) => Err(ApiError::BadRequest(BAD_JSON_DETAIL)),
        Ok(Some((pointer, detail))) => Err(ApiError::Invalid(vec![body_error(pointer, detail)])),
        Ok(None) => Ok(()),
    }
}

#[cfg(test)]
mod carriable_tests {
    use super::*;

    fn field(body: &str) -> Option<String> {
        match check_carriable(body.as_bytes()) {
            Err(ApiError::Invalid(errors)) => Some(errors[0].field.clone()),
            _ => None,
        }
    }

    #[test]
    fn values_past_the_syntax_are_422_at_their_pointer() {
        assert_eq!(field(r#"{"name": "a\ud800b"}"#).as_deref(), Some("/name"));
        assert_eq!(field(r#"{"a": 1, "\udc00": 1}"#).as_deref(), Some(""));
        assert_eq!(field(r#"{"q": 1e400}"#).as_deref(), Some("/q"));
        assert_eq!(field(r#"{"x": [1, -1e400]}"#).as_deref(), Some("/x/1"));
        let deep = format!("{{\"name\": {}{}}}", "[".repeat(65), "]".repeat(65));
        assert_eq!(field(&deep).as_deref(), Some(""));
        assert!(check_carriable(r#"{"ok": "\ud83d\ude00", "n": 1.5e300}"#.as_bytes()).is_ok());
        assert!(matches!(
            check_carriable(b"{\"name\": "),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            check_carriable(b"[1,]"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(check_carriable(b" [1, 2, {\"a\": null}] ").is_ok());
    }
}
