//! A client of MLflow's REST API (`/api/2.0/mlflow/…`) and of its artifact proxy
//! (`/api/2.0/mlflow-artifacts/artifacts/…`), over HTTP or HTTPS, with MLflow's own settings:
//! `MLFLOW_TRACKING_TOKEN` (a bearer token), `MLFLOW_TRACKING_USERNAME` and
//! `MLFLOW_TRACKING_PASSWORD` (basic authentication), `MLFLOW_TRACKING_INSECURE_TLS`.

use crate::error::{Error, Result};
use crate::util::printable::one_line;
use base64::Engine as _;
use serde_json::Value;
use std::time::Duration;

/// How long one request may take, connecting included: a batch of a thousand points takes
/// MLflow well under a second.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A tracking server.
pub struct Client {
    agent: ureq::Agent,
    /// `scheme://host[:port][/prefix]`, without a trailing slash.
    base: String,
    authorization: Option<String>,
}

/// An answer of MLflow's that is not a success.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST`, `INVALID_PARAMETER_VALUE`, …), empty
    /// when the body was not MLflow's.
    pub code: String,
    /// MLflow's message, or what the body said.
    pub message: String,
}

/// Why a request failed.
#[derive(Debug)]
pub enum CallError {
    /// The server answered, refusing.
    Refused(Refusal),
    /// No answer, or one that is not MLflow's.
    Failed(Error),
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Refused(r) => Error::msg(format!("MLflow refused: {}", r.message)),
            CallError::Failed(e) => e,
        }
    }
}

impl Client {
    /// A client of the tracking server at `uri` (`http://` or `https://`), with the
    /// credentials of MLflow's environment variables.
    pub fn new(uri: &str) -> Result<Client> {
        let base = server_base(uri)?;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        // As MLflow's own client: a user name and password first, else a token.
        let authorization = match (
            env("MLFLOW_TRACKING_USERNAME"),
            env("MLFLOW_TRACKING_PASSWORD"),
            env("MLFLOW_TRACKING_TOKEN"),
        ) {
            (Some(user), Some(password), _) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(Error::usage(
                    "set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or neither",
                ))
            }
            (None, None, Some(token)) => {
                let value = format!("Bearer {token}");
                if ureq::http::HeaderValue::from_str(&value).is_err() {
                    return Err(Error::usage(
                            "MLFLOW_TRACKING_TOKEN holds a character a request's header cannot carry (a line break?)",
                        ));
                }
                Some(value)
            }
            (None, None, None) => None,
        };
        let insecure = env("MLFLOW_TRACKING_INSECURE_TLS")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"));
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .disable_verification(insecure)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A redirect is reported, not followed: a POST would come back as a GET.
            .max_redirects(0)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .tls_config(tls)
            .user_agent(format!("flammable/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            base,
            authorization,
        })
    }

    /// The server's address, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The server as one text whatever the address's spelling: the scheme, the addresses its
    /// host resolves to (`loopback` for `localhost`, `127.0.0.1` and `[::1]` alike), the port
    /// and the path. Where the host does not resolve, its name.
    pub fn server_identity(&self) -> String {
        use std::net::ToSocketAddrs as _;
        let Ok(uri) = self.base.parse::<ureq::http::Uri>() else {
            return self.base.clone();
        };
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let host = uri.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let mut ips: Vec<std::net::IpAddr> = (bare, port)
            .to_socket_addrs()
            .map(|a| a.map(|a| a.ip()).collect())
            .unwrap_or_default();
        ips.sort();
        ips.dedup();
        let at = if ips.is_empty() {
            host.to_ascii_lowercase()
        } else if ips.iter().all(std::net::IpAddr::is_loopback) {
            "loopback".to_string()
        } else {
            ips.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        format!("{scheme}://{at}:{port}{}", uri.path().trim_end_matches('/'))
    }

    /// `GET /api/2.0/mlflow/<endpoint>?<query>`; `query`'s values are percent-encoded here.
    pub fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<Value, CallError> {
        let mut url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{k}={}", encode(v)));
        }
        let request = self.authorized(self.agent.get(&url));
        self.answer(endpoint, request.call())
    }

    /// `POST /api/2.0/mlflow/<endpoint>` with `body` as JSON.
    pub fn post(&self, endpoint: &str, body: &Value) -> Result<Value, CallError> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Failed(Error::msg(e)))?;
        let request = self
            .authorized(self.agent.post(&url))
            .header("Content-Type", "application/json");
        self.answer(endpoint, request.send(&bytes[..]))
    }

    /// Uploads `bytes` as the artifact at `path` under `root`, a run's artifact location on
    /// the server's proxy (what follows `mlflow-artifacts:/` in its artifact URI).
    pub fn put_artifact(&self, root: &str, path: &str, bytes: &[u8]) -> Result<(), CallError> {
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}/{}",
            self.base,
            root.split('/').map(encode).collect::<Vec<_>>().join("/"),
            path.split('/').map(encode).collect::<Vec<_>>().join("/")
        );
        let request = self
            .authorized(self.agent.put(&url))
            .header("Content-Type", "application/octet-stream");
        self.answer("artifacts", request.send(bytes)).map(drop)
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// The JSON of a success; MLflow's refusal, or why there is no answer, otherwise.
    fn answer(
        &self,
        endpoint: &str,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, CallError> {
        let mut response = response.map_err(|e| {
            // A TLS handshake answered in plain text: the server speaks HTTP.
            let hint = if self.base.starts_with("https://")
                && matches!(
                    e,
                    ureq::Error::Io(_) | ureq::Error::Rustls(_) | ureq::Error::Tls(_)
                )
                && e.to_string().contains("corrupt message")
            {
                " (is it an http:// address?)"
            } else {
                ""
            };
            // A server that listens but does not answer is not one that cannot be reached.
            let timed_out = matches!(e, ureq::Error::Timeout(_));
            CallError::Failed(Error::msg(if timed_out {
                format!(
                    "the MLflow server at {} did not answer within {} s",
                    self.base,
                    REQUEST_TIMEOUT.as_secs()
                )
            } else {
                format!("cannot reach the MLflow server at {}: {e}{hint}", self.base)
            }))
        })?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| {
                CallError::Failed(Error::msg(format!(
                    "the MLflow server at {} answered {status} without a readable body: {e}",
                    self.base
                )))
            })?;
        let json: Option<Value> = serde_json::from_str(&body).ok();
        if (200..300).contains(&status) {
            return Ok(json.unwrap_or(Value::Null));
        }
        if (300..400).contains(&status) {
            return Err(CallError::Failed(Error::msg(format!(
                "the MLflow server at {} answered a redirect (HTTP {status}) to {}: give that \
                 address",
                self.base,
                location.as_deref().unwrap_or("an address it does not say")
            ))));
        }
        if matches!(status, 401 | 403) {
            // The server's own words, where it gave them.
            let said = json
                .as_ref()
                .and_then(|j| j.get("message")?.as_str())
                .map(|m| format!(": {}", one_line(m)))
                .unwrap_or_default();
            let what = match (&self.authorization, status) {
                (None, 401) => "asks for credentials",
                (None, _) => "refused the request without credentials",
                (Some(_), _) => "refused the credentials",
            };
            return Err(CallError::Failed(Error::msg(format!(
                "the MLflow server at {} {what} (HTTP {status}{said}): set \
                 MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
                self.base
            ))));
        }
        match json.as_ref().and_then(|j| j.get("error_code")?.as_str()) {
            Some(code) => Err(CallError::Refused(Refusal {
                status,
                code: code.to_string(),
                message: one_line(
                    json.as_ref()
                        .and_then(|j| j.get("message")?.as_str())
                        .unwrap_or(code),
                ),
            })),
            None if status >= 500 => Err(CallError::Failed(Error::msg(format!(
                "the MLflow server at {} failed (HTTP {status} for {endpoint}): {}",
                self.base,
                one_line(&body).chars().take(200).collect::<String>()
            )))),
            None => Err(CallError::Failed(Error::msg(format!(
                "{} does not answer as an MLflow tracking server (HTTP {status} for {endpoint}): \
                 give the URL `mlflow server` listens on",
                self.base
            )))),
        }
    }
}

/// The largest answer read: a page of runs with long messages and many parameters.
const MAX_ANSWER_BYTES: u64 = 256 << 20;

/// `uri` as the base of the API's URLs (`scheme://host[:port][/path]`, lowercase scheme, no
/// trailing slash); a usage error for what cannot be a tracking server's address.
fn server_base(uri: &str) -> Result<String> {
    let trimmed = uri.trim().trim_end_matches('/');
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Err(not_a_server_uri(uri));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || rest.is_empty() {
        return Err(not_a_server_uri(uri));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(Error::usage(format!(
            "{scheme}://…@{}: put credentials in MLFLOW_TRACKING_USERNAME and \
             MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN), not in the address",
            authority.rsplit('@').next().unwrap_or_default()
        )));
    }
    if rest.contains(['?', '#']) {
        let without = rest.split(['?', '#']).next().unwrap_or_default();
        return Err(Error::usage(format!(
            "give the server's address without a query or fragment: {scheme}://{without}"
        )));
    }
    // The port, where one is given (after the last `:`, beyond an IPv6 address's `]`).
    if let Some((_, port)) = authority
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with('['))
    {
        if !port.contains(']') && port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(Error::usage(format!(
                "{uri}: {port:?} is not a port (1 to 65535)"
            )));
        }
    }
    let base = format!("{scheme}://{rest}");
    match base.parse::<ureq::http::Uri>() {
        Ok(u) if u.host().is_some_and(|h| !h.is_empty()) => Ok(base),
        Ok(_) => Err(not_a_server_uri(uri)),
        Err(e) => Err(Error::usage(format!("{uri} is not an address: {e}"))),
    }
}

/// The usage error of an address that is not `http://` or `https://`.
fn not_a_server_uri(uri: &str) -> Error {
    Error::usage(format!(
        "{uri:?} is not a tracking server's address: give its http:// or https:// URL \
         (`mlflow server` listens on http://127.0.0.1:5000 by default)"
    ))
}

/// `text` percent-encoded for a URL's query value or path segment.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_is_one_identity_however_it_is_spelled() {
        let id = |uri: &str| Client::new(uri).unwrap().server_identity();
        let local = id("http://127.0.0.1:5000");
        assert_eq!(local, "http://loopback:5000");
        for same in ["http://localhost:5000/", "HTTP://[::1]:5000"] {
            assert_eq!(id(same), local, "{same}");
        }
        for other in [
            "http://127.0.0.1:5001",
            "https://127.0.0.1:5000",
            "http://127.0.0.1:5000/mlflow",
        ] {
            assert_ne!(id(other), local, "{other}");
        }
        assert_eq!(id("https://localhost"), "https://loopback:443");
    }

    #[test]
    fn addresses_are_checked_as_users_type_them() {
        assert_eq!(
            server_base("HTTP://127.0.0.1:5000/").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            server_base(" https://h/mlflow ").unwrap(),
            "https://h/mlflow"
        );
        assert_eq!(
            server_base("http://[::1]:5000").unwrap(),
            "http://[::1]:5000"
        );
        for bad in [
            "ftp://h",
            "h:5000",
            "http://",
            "http://h:99999",
            "http://h?x=1",
        ] {
            let e = server_base(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
        // Credentials in the address are refused, never printed back.
        for secret in [
            "http://ann:s3cret@h",
            "http://ann:s3cret@h/?q=1",
            "http://h/?token=s3cret",
        ] {
            let e = server_base(secret).unwrap_err();
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }
}
