//! Who may use a server (the browser, the inference server): on a loopback address, clients
//! on this machine (the `Host` header must name it, so a web page elsewhere cannot reach the
//! server through DNS rebinding); on any other address, whoever holds the token. Every answer
//! carries headers that keep a browser from running or sniffing what it serves.

use super::AppError;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// What the server demands of a request.
#[derive(Clone, Debug)]
pub struct Access {
    /// The token every request must carry, when there is one.
    pub token: Option<String>,
    /// Set when listening on a loopback address: the `Host` header must be this machine.
    pub loopback: bool,
    /// Paths that need no token (health probes); the `Host` check still applies.
    pub open_paths: &'static [&'static str],
    /// The name of the cookie that carries the token after a visit to `…/?token=…`: one per
    /// server ([`cookie_name`]), since browsers send a host's cookies to each of its ports.
    pub cookie: String,
}

/// The token cookie's name for server `kind` (`ui`, `serve`) on `port`: a browser that has
/// visited an earlier server then holds that one's token under another name, which cannot
/// shadow this server's.
pub fn cookie_name(kind: &str, port: u16) -> String {
    format!("flammable_{kind}_{port}")
}

/// A fresh random token: 128 bits from the operating system, as hex.
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal, in a time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The token a request carries: `?token=…` (then also returned as `true`, so that the answer
/// sets the cookie), else `Authorization: Bearer …`, else the cookie `cookie`. The address's
/// token comes first: it is the one the server printed, and a stale cookie must not beat it.
fn given_token(headers: &HeaderMap, query: Option<&str>, cookie: &str) -> Option<(String, bool)> {
    let from_query = query.and_then(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, t)| (t.to_string(), true))
    });
    if from_query.is_some() {
        return from_query;
    }
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        // The scheme's name is case-insensitive (RFC 9110, 11.1).
        if let Some((scheme, t)) = v.trim_start().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some((t.trim().to_string(), false));
            }
        }
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, t)) = pair.trim().split_once('=') {
                if k == cookie {
                    return Some((t.to_string(), false));
                }
            }
        }
    }
    None
}

/// True when `host` (a `Host` header) names this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[address]`, with a port or nothing after it.
        match rest.split_once(']') {
            Some((address, "")) => address,
            Some((address, after)) if after.strip_prefix(':').is_some_and(is_port) => address,
            _ => return false,
        }
    } else {
        host.rsplit_once(':')
            .map_or(host, |(h, port)| if is_port(port) { h } else { host })
    };
    // Host names are case-insensitive, and may end with the root's dot.
    let name = name.strip_suffix('.').unwrap_or(name);
    matches!(name, "127.0.0.1" | "::1")
        || name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `text` after a host's `:` is a port: digits (none, as `host:` allows).
fn is_port(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_digit())
}

/// Refuses a request that changes something unless a page of this server sent it: its
/// `Origin` names the host the request was sent to (`Host`), or, from a browser that sends no
/// `Origin` (or `null`), `Sec-Fetch-Site` says `same-origin`. A page of another site — another port of
/// this machine included, which [`admit`] lets through — cannot change anything, and neither
/// can a request that says nothing of where it comes from.
pub fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let host = text(header::HOST).unwrap_or("");
    // `Origin: null` is what a browser sends for a page whose referrer policy hides it (and
    // for sandboxed and file pages): then only `Sec-Fetch-Site` can tell.
    if let Some(origin) = text(header::ORIGIN).filter(|o| *o != "null") {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return Err(
                "a change must come from this server's own page (the Origin header names none)",
            );
        };
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => ":80",
            "https" => ":443",
            _ => return Err("a change must come from this server's own page (the Origin header names another scheme)"),
        };
        let norm = |a: &str| {
            let a = a.to_ascii_lowercase();
            a.strip_suffix(default_port)
                .map(str::to_string)
                .unwrap_or(a)
        };
        if host.is_empty() || norm(authority) != norm(host) {
            return Err("a change must come from this server's own page (the Origin header names another site)");
        }
        return Ok(());
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") => Ok(()),
        Some(_) => Err("a change must come from this server's own page (the browser says it comes from another site)"),
        None => Err("a change must come from this server's own page (the request names no Origin)"),
    }
}

/// The decision on a request's target: one in absolute form (`GET http://host/path`, which
/// HTTP/1.1 servers must accept, and whose authority counts instead of the `Host` header)
/// must name this machine too on a loopback server.
pub fn admit_target(access: &Access, target: &Uri) -> Result<(), (StatusCode, &'static str)> {
    match target.authority() {
        Some(authority) if access.loopback && !is_loopback_host(authority.as_str()) => Err((
            StatusCode::FORBIDDEN,
            "this server answers only to 127.0.0.1 and localhost (the request's target names another machine)",
        )),
        _ => Ok(()),
    }
}

/// The decision for a request: `Err` is the refusal to send.
pub fn admit(
    access: &Access,
    path: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<bool, (StatusCode, &'static str)> {
    if access.loopback {
        if headers.get_all(header::HOST).iter().nth(1).is_some() {
            return Err((
                StatusCode::BAD_REQUEST,
                "a request names one Host (this one has several Host headers)",
            ));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !is_loopback_host(host) {
            return Err((
                StatusCode::FORBIDDEN,
                "this server answers only to 127.0.0.1 and localhost (the Host header names another machine)",
            ));
        }
        // A page of another site may send requests to a loopback server (a form's POST needs
        // no permission); browsers name that site in `Origin`.
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
            if !is_loopback_host(authority) {
                return Err((
                    StatusCode::FORBIDDEN,
                    "this server answers only to pages of 127.0.0.1 and localhost (the Origin header names another site)",
                ));
            }
        }
    }
    let Some(token) = &access.token else {
        return Ok(false);
    };
    if access.open_paths.contains(&path) {
        return Ok(false);
    }
    match given_token(headers, query, &access.cookie) {
        Some((t, from_query)) if same(&t, token) => Ok(from_query),
        Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong token")),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "a token is needed: open the address the server printed (…/?token=…), or send Authorization: Bearer TOKEN",
        )),
    }
}

/// The guard of a server's routes, as a layer (`Router::layer`): each request is admitted
/// or refused ([`admit`]), a visit with the token in its address gets the token's cookie, and
/// every answer, refusals included, gets the safety headers its content type needs
/// ([`add_safety_headers`]). A layer of its own rather than `axum::middleware::from_fn`, whose
/// clone of the routes and boxed future were a measurable part of a small request's time
/// (`bench/results/serve_load.md`).
#[derive(Clone, Debug)]
pub struct GuardLayer {
    access: Arc<Access>,
}

impl GuardLayer {
    /// A guard demanding `access`.
    pub fn new(access: Access) -> Self {
        GuardLayer {
            access: Arc::new(access),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            access: self.access.clone(),
            inner,
        }
    }
}

/// The routes `S` behind a [`GuardLayer`].
#[derive(Clone, Debug)]
pub struct Guard<S> {
    access: Arc<Access>,
    inner: S,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Guarded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let access = &self.access;
        let decision = admit_target(access, request.uri()).and_then(|()| {
            admit(
                access,
                request.uri().path(),
                request.headers(),
                request.uri().query(),
            )
        });
        match decision {
            Err((status, why)) => {
                Guarded::Refused(Some(AppError::new(status, why).into_response()))
            }
            Ok(set_cookie) => {
                let cookie = set_cookie
                    .then(|| access.token.as_ref())
                    .flatten()
                    .and_then(|t| {
                        HeaderValue::from_str(&format!(
                            "{}={t}; Path=/; HttpOnly; SameSite=Strict",
                            access.cookie
                        ))
                        .ok()
                    });
                Guarded::Admitted {
                    answer: self.inner.call(request),
                    cookie,
                }
            }
        }
    }
}

/// The answer of a [`Guard`]: the refusal, or the routes' answer, with the safety headers.
#[derive(Debug)]
pub enum Guarded<F> {
    /// Refused: this answer (taken when first polled).
    Refused(Option<Response>),
    /// Admitted: the routes' answer, and the cookie to set on it.
    Admitted {
        /// The routes' answer.
        answer: F,
        /// The token's cookie, for a visit with the token in its address.
        cookie: Option<HeaderValue>,
    },
}

impl<F, E> Future for Guarded<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = match self.get_mut() {
            // Polled again after it was ready: the futures contract makes that the caller's
            // mistake, and an empty answer is harmless.
            Guarded::Refused(refusal) => refusal.take().unwrap_or_default(),
            Guarded::Admitted { answer, cookie } => {
                let mut response = match Pin::new(answer).poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                };
                if let Some(cookie) = cookie.take() {
                    response.headers_mut().insert(header::SET_COOKIE, cookie);
                }
                response
            }
        };
        add_safety_headers(response.headers_mut());
        Poll::Ready(Ok(response))
    }
}

/// Adds the headers that keep a browser from sniffing, framing or running what an answer
/// holds; an answer's own `Content-Security-Policy` and `Cache-Control` stay. A JSON answer
/// gets `nosniff` and `no-store` alone: with `nosniff` a browser never renders JSON as a page,
/// so the headers that govern what a page may load, frame or refer to have nothing to govern
/// — and they were a twentieth of a prediction's time, for the server that writes them and
/// the client that reads them (`bench/results/serve_load.md`). Every other answer (pages,
/// text, files, a task's own content types, and the JSON that sets the token's cookie) gets
/// all of them.
pub fn add_safety_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    // The answer that sets the token's cookie is the address a server prints for a browser
    // (`…/?token=…`): it gets every header, `Referrer-Policy` above all.
    if h.get(header::CONTENT_TYPE).is_some_and(is_json) && !h.contains_key(header::SET_COOKIE) {
        return;
    }
    h.reserve(3);
    h.insert(
        header::REFERRER_POLICY,
        // A page's address (which may hold `?token=`) is never sent to another site; to
        // this one it is, so that browsers name the page's origin in its forms' requests.
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ));
}

/// Whether `content_type` names JSON: `application/json`, or a type ending in `+json`,
/// with or without parameters. A value with a comma is none: browsers read the types it
/// lists and may take another one (`text/html,x+json` renders as a page).
fn is_json(content_type: &HeaderValue) -> bool {
    let bytes = content_type.as_bytes();
    if bytes.contains(&b',') {
        return false;
    }
    let media = bytes
        .iter()
        .position(|b| *b == b';')
        .map_or(bytes, |end| &bytes[..end])
        .trim_ascii();
    media.eq_ignore_ascii_case(b"application/json")
        || (media.len() > 5 && media[media.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_get_nosniff_and_no_store_and_the_rest_every_safety_header() {
        for (kind, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/html; charset=utf-8", false),
            ("text/plain", false),
            ("application/jsonp", false),
            ("+json", false),
            ("text/html,x+json", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            add_safety_headers(&mut h);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{kind}");
            assert_eq!(h[header::CACHE_CONTROL], "no-store", "{kind}");
            for page_only in [
                header::CONTENT_SECURITY_POLICY,
                header::X_FRAME_OPTIONS,
                header::REFERRER_POLICY,
            ] {
                assert_eq!(h.contains_key(&page_only), !json, "{kind} {page_only}");
            }
        }
        // No content type at all: every header; so does JSON that sets the token's cookie.
        let mut h = HeaderMap::new();
        add_safety_headers(&mut h);
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::SET_COOKIE, HeaderValue::from_static("t=x"));
        add_safety_headers(&mut h);
        assert_eq!(h[header::REFERRER_POLICY], "same-origin");
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_needs_a_local_host_header() {
        let a = Access {
            token: None,
            loopback: true,
            open_paths: &[],
            cookie: cookie_name("ui", 7000),
        };
        for ok in [
            "127.0.0.1:7000",
            "localhost:7000",
            "[::1]:7000",
            "localhost",
            "127.0.0.2",
            "LOCALHOST",
            "Localhost:7000",
            "localhost.",
        ] {
            assert!(
                admit(&a, "/", &headers(&[(header::HOST, ok)]), None).is_ok(),
                "{ok}"
            );
        }
        let from =
            |origin: &str| headers(&[(header::HOST, "127.0.0.1:7000"), (header::ORIGIN, origin)]);
        assert!(admit(&a, "/", &from("http://127.0.0.1:7000"), None).is_ok());
        assert!(admit(&a, "/", &from("http://localhost:7000"), None).is_ok());
        for origin in [
            "https://evil.example",
            "null",
            "http://127.0.0.1.evil.example",
        ] {
            let e = admit(&a, "/", &from(origin), None).unwrap_err();
            assert_eq!(e.0, StatusCode::FORBIDDEN, "{origin}");
        }
        for bad in [
            "evil.example:7000",
            "",
            "127.0.0.1.evil.example",
            "10.0.0.1:7000",
            "[::1]evil.example",
            "[::1]:80x",
            "[::1",
        ] {
            let e = admit(&a, "/", &headers(&[(header::HOST, bad)]), None).unwrap_err();
            assert_eq!(e.0, StatusCode::FORBIDDEN, "{bad}");
        }
        // Two Host headers: which one counts is ambiguous, so neither does.
        let mut two = headers(&[(header::HOST, "127.0.0.1")]);
        two.append(header::HOST, HeaderValue::from_static("evil.example"));
        assert_eq!(
            admit(&a, "/", &two, None).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        // A target in absolute form counts instead of the Host header.
        let target = |t: &str| t.parse::<Uri>().unwrap();
        assert!(admit_target(&a, &target("/runs")).is_ok());
        assert!(admit_target(&a, &target("http://localhost:7000/runs")).is_ok());
        assert!(admit_target(&a, &target("http://[::1]/")).is_ok());
        for bad in [
            "http://evil.example/",
            "http://user@127.0.0.1/",
            "http://10.0.0.1:80/",
        ] {
            assert_eq!(
                admit_target(&a, &target(bad)).unwrap_err().0,
                StatusCode::FORBIDDEN,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_change_must_come_from_a_page_of_this_server() {
        let from = |host: &str, origin: Option<&str>, site: Option<&str>| {
            let mut h = headers(&[(header::HOST, host)]);
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            if let Some(s) = site {
                h.insert("sec-fetch-site", HeaderValue::from_str(s).unwrap());
            }
            same_origin(&h)
        };
        assert!(from("127.0.0.1:7000", Some("http://127.0.0.1:7000"), None).is_ok());
        assert!(from("LOCALHOST:7000", Some("http://localhost:7000"), None).is_ok());
        assert!(from("example.org", Some("https://example.org:443"), None).is_ok());
        assert!(from("example.org:80", Some("http://example.org"), None).is_ok());
        assert!(from("127.0.0.1:7000", None, Some("same-origin")).is_ok());
        assert!(from("127.0.0.1:7000", Some("null"), Some("same-origin")).is_ok());
        for (origin, site) in [
            (Some("http://127.0.0.1:7001"), None),
            (Some("http://localhost:7000"), None),
            (Some("null"), None),
            (Some("null"), Some("cross-site")),
            (Some("file://"), None),
            (Some("http://127.0.0.1:7000.evil.example"), None),
            (None, Some("same-site")),
            (None, Some("cross-site")),
            (None, None),
        ] {
            let e = from("127.0.0.1:7000", origin, site).unwrap_err();
            assert!(e.contains("own page"), "{origin:?} {site:?}: {e}");
        }
    }

    #[test]
    fn a_token_is_taken_from_header_cookie_or_query() {
        let a = Access {
            token: Some("s3cret-token".into()),
            loopback: false,
            open_paths: &["/health"],
            cookie: cookie_name("serve", 8000),
        };
        assert_eq!(admit(&a, "/health", &headers(&[]), None), Ok(false));
        let none = headers(&[]);
        assert_eq!(
            admit(&a, "/", &none, None).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            admit(&a, "/", &none, Some("token=wrong")).unwrap_err().1,
            "wrong token"
        );
        assert_eq!(
            admit(&a, "/", &none, Some("q=x&token=s3cret-token")),
            Ok(true)
        );
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let bearer = headers(&[(header::AUTHORIZATION, &format!("{scheme} s3cret-token"))]);
            assert_eq!(admit(&a, "/", &bearer, None), Ok(false), "{scheme}");
        }
        let basic = headers(&[(header::AUTHORIZATION, "Basic s3cret-token")]);
        assert!(admit(&a, "/", &basic, None).is_err());
        let cookie = headers(&[(header::COOKIE, "a=b; flammable_serve_8000=s3cret-token")]);
        assert_eq!(admit(&a, "/", &cookie, None), Ok(false));
        // Another server's cookie is not this one's.
        let other = headers(&[(header::COOKIE, "flammable_serve_8001=s3cret-token")]);
        assert!(admit(&a, "/", &other, None).is_err());
        // A stale cookie of an earlier server on this port does not beat the address's token.
        let stale = headers(&[(header::COOKIE, "flammable_serve_8000=old-token")]);
        assert_eq!(admit(&a, "/", &stale, Some("token=s3cret-token")), Ok(true));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        let t = generate_token().unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, generate_token().unwrap());
    }
}
