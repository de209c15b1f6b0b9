//! A client of MLflow's REST API (`/api/2.0/mlflow/…`) and of its artifact proxy
//! (`/api/2.0/mlflow-artifacts/artifacts/…`), over HTTP or HTTPS, with MLflow's own settings:
//! `MLFLOW_TRACKING_TOKEN` (a bearer token), `MLFLOW_TRACKING_USERNAME` and
//! `MLFLOW_TRACKING_PASSWORD` (basic authentication), `MLFLOW_TRACKING_INSECURE_TLS`.

use crate::error::{Error, Result};
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
    /// Requests sent.
    requests: std::cell::Cell<usize>,
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
        let base = uri.trim_end_matches('/');
        let Some((scheme, rest)) = base.split_once("://") else {
            return Err(not_a_server_uri(uri));
        };
        if !matches!(scheme, "http" | "https") || rest.is_empty() {
            return Err(not_a_server_uri(uri));
        }
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let authorization = match (
            env("MLFLOW_TRACKING_TOKEN"),
            env("MLFLOW_TRACKING_USERNAME"),
            env("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(token), _, _) => Some(format!("Bearer {token}")),
            (None, Some(user), password) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.unwrap_or_default()))
            )),
            _ => None,
        };
        let insecure = env("MLFLOW_TRACKING_INSECURE_TLS")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"));
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .disable_verification(insecure)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .tls_config(tls)
            .user_agent(format!("flammable/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            base: base.to_string(),
            authorization,
            requests: std::cell::Cell::new(0),
        })
    }

    /// The server's address, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Requests sent so far.
    pub fn requests(&self) -> usize {
        self.requests.get()
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
        self.requests.set(self.requests.get() + 1);
        let mut response = response.map_err(|e| {
            CallError::Failed(Error::msg(format!(
                "cannot reach the MLflow server at {}: {e}",
                self.base
            )))
        })?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(|e| {
            CallError::Failed(Error::msg(format!(
                "the MLflow server at {} answered {status} without a readable body: {e}",
                self.base
            )))
        })?;
        let json: Option<Value> = serde_json::from_str(&body).ok();
        if (200..300).contains(&status) {
            return Ok(json.unwrap_or(Value::Null));
        }
        if matches!(status, 401 | 403) {
            return Err(CallError::Failed(Error::msg(format!(
                "the MLflow server at {} refused the credentials (HTTP {status}): set \
                 MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
                self.base
            ))));
        }
        match json.as_ref().and_then(|j| j.get("error_code")?.as_str()) {
            Some(code) => Err(CallError::Refused(Refusal {
                status,
                code: code.to_string(),
                message: json
                    .as_ref()
                    .and_then(|j| j.get("message")?.as_str())
                    .unwrap_or(code)
                    .to_string(),
            })),
            None => Err(CallError::Failed(Error::msg(format!(
                "{} does not answer as an MLflow tracking server (HTTP {status} for {endpoint}): \
                 give the URL `mlflow server` listens on",
                self.base
            )))),
        }
    }
}

fn not_a_server_uri(uri: &str) -> Error {
    Error::usage(format!(
        "{uri} is not a tracking server's address: give its http:// or https:// URL \
         (`mlflow server` listens on http://127.0.0.1:5000 by default)"
    ))
}

/// `text` percent-encoded for a URL's query value or path segment.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
