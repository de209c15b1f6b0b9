//! Where a server listens: the `--host` value, the token an address beyond this machine
//! needs, the socket, and the address printed for the user.

use super::security;
use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Parses `--host`: an IP address, or `localhost`.
pub fn parse_host(text: &str) -> std::result::Result<IpAddr, String> {
    if text == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    text.parse()
        .map_err(|_| format!("`{text}` is not an IP address (e.g. 127.0.0.1, 0.0.0.0 or ::1)"))
}

/// The token clients must give: `given` (checked), else none on a loopback address, else a
/// fresh one (a server beyond this machine is never open).
pub fn token_for(given: Option<String>, host: IpAddr) -> Result<Option<String>> {
    token_from(given, host, "--token")
}

/// [`token_for`], a bad token blamed on `source`: `--token`, or the environment variable
/// (`$NAME`) it was read from.
pub fn token_from(given: Option<String>, host: IpAddr, source: &str) -> Result<Option<String>> {
    match given {
        Some(t) if t.is_empty() && source.starts_with('$') => Err(Error::usage(format!(
            "{source} is set but empty: unset it, or set it to a token of at least 16 characters \
             among letters, digits, `-`, `_`, `.` and `~`"
        ))),
        Some(t) if t.len() < 16 || !t.chars().all(url_safe) => Err(Error::usage(format!(
            "{source}: use at least 16 characters among letters, digits, `-`, `_`, `.` and `~` \
             (it travels in the address the server prints, and in a cookie)"
        ))),
        Some(t) => Ok(Some(t)),
        None if host.is_loopback() => Ok(None),
        None => security::generate_token().map(Some).map_err(|e| {
            Error::msg(format!(
                "cannot generate a token ({e}): give one with --token"
            ))
        }),
    }
}

/// A character that stands for itself in an address and in a cookie (RFC 3986's unreserved).
fn url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')
}

/// Listens on `address`; a port in use gets a hint.
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| cannot_listen(address, &e))
}

/// Listens on `address` before any runtime exists, so that a command can fail on an address
/// it cannot have before it records anything; a port in use gets a hint. The socket queues
/// connections until [`into_tokio`] hands it to a server.
pub fn bind_now(address: SocketAddr) -> Result<std::net::TcpListener> {
    std::net::TcpListener::bind(address).map_err(|e| cannot_listen(address, &e))
}

/// A socket from [`bind_now`] as tokio's, within a runtime.
pub fn into_tokio(listener: std::net::TcpListener) -> Result<tokio::net::TcpListener> {
    listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
        .map_err(|e| Error::msg(format!("cannot listen on the socket bound: {e}")))
}

fn cannot_listen(address: SocketAddr, e: &std::io::Error) -> Error {
    let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
        " (another server has it: choose another with --port, or --port 0 for any)"
    } else {
        ""
    };
    Error::usage(format!("cannot listen on {address}: {e}{hint}"))
}

/// Prints `url` on its own line on stdout for whoever started the server (a script reads the
/// port from it). A closed or full stdout is no reason to stop serving: errors are ignored
/// (`println!` would panic).
pub fn announce(url: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{url}").and_then(|()| out.flush());
}

/// The address to give the user, with the token when there is one: this machine's name
/// when listening on every interface.
pub fn url(bound: SocketAddr, token: Option<&str>) -> String {
    let host = if bound.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        match bound.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        }
    };
    match token {
        Some(t) => format!("http://{host}:{}/?token={t}", bound.port()),
        None => format!("http://{host}:{}/", bound.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_tokens_and_urls() {
        assert_eq!(parse_host("localhost"), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(parse_host("example.com").unwrap_err().contains("not an IP"));
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(token_for(None, loopback).unwrap(), None);
        assert_eq!(token_for(None, any).unwrap().map(|t| t.len()), Some(32));
        for bad in [
            "s3cret-token-with-%25",
            "s3cret token 0123456",
            "s3cret-token-0123;x",
        ] {
            assert_eq!(
                token_for(Some(bad.into()), loopback)
                    .unwrap_err()
                    .exit_code(),
                2,
                "{bad}"
            );
        }
        assert!(token_for(Some("S3cret_token.0123~-".into()), loopback).is_ok());
        // A token from the environment is blamed on its variable; an empty one says so.
        let env = "$FLAMMABLE_SERVE_TOKEN";
        let e = token_from(Some(String::new()), any, env).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .starts_with("$FLAMMABLE_SERVE_TOKEN is set but empty"),
            "{e}"
        );
        let e = token_from(Some("short".into()), any, env).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("$FLAMMABLE_SERVE_TOKEN: use at least"),
            "{e}"
        );
        let e = token_for(Some(String::new()), any).unwrap_err();
        assert!(e.to_string().starts_with("--token: use at least"), "{e}");
        assert_eq!(
            token_for(Some("short".into()), loopback)
                .unwrap_err()
                .exit_code(),
            2
        );
        let addr = SocketAddr::new(any, 8000);
        assert_eq!(url(addr, Some("t")), "http://localhost:8000/?token=t");
        assert_eq!(
            url(SocketAddr::new(loopback, 1), None),
            "http://127.0.0.1:1/"
        );
    }
}
