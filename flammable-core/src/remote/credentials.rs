//! S3 settings the AWS tools would use: the `AWS_*` environment variables (read by
//! object_store itself) and, for what they leave out, the shared profile files
//! (`~/.aws/credentials`, `~/.aws/config`, or `AWS_SHARED_CREDENTIALS_FILE` and
//! `AWS_CONFIG_FILE`) under `AWS_PROFILE` (default `default`). Nothing of them is ever
//! written into a record or a manifest.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings to add to object_store's S3 builder (its configuration keys), beyond what it
/// reads from the environment: the profile's keys, region and endpoint where the
/// environment has none, plain HTTP allowed for an `http://` endpoint, and SHA-256 checksums
/// on uploads ([`checksums_sent`]).
pub fn settings() -> Result<Vec<(String, String)>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, name: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let mut found = BTreeMap::new();
    // The config file names sections `[profile NAME]` (`[default]` for the default one);
    // the credentials file `[NAME]`. Credentials win.
    if let Some(path) = file("AWS_CONFIG_FILE", "config") {
        let text = read(&path)?;
        // The default profile's section is `[default]`, or `[profile default]` as the AWS
        // tools also accept (`[default]` wins where both are there).
        let mut named = section(&text, &format!("profile {profile}"));
        if profile == "default" {
            named.extend(section(&text, "default"));
        }
        found.extend(named);
    }
    if let Some(path) = file("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
        found.extend(section(&read(&path)?, &profile));
    }
    if env("AWS_PROFILE").is_some() && found.is_empty() {
        return Err(Error::usage(format!(
            "AWS_PROFILE={profile}: no such profile in the AWS config or credentials files"
        )));
    }
    let mut out = Vec::new();
    let pairs = [
        (
            "aws_access_key_id",
            "AWS_ACCESS_KEY_ID",
            "aws_access_key_id",
        ),
        (
            "aws_secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
            "aws_secret_access_key",
        ),
        (
            "aws_session_token",
            "AWS_SESSION_TOKEN",
            "aws_session_token",
        ),
        ("region", "AWS_REGION", "aws_region"),
        ("endpoint_url", "AWS_ENDPOINT_URL", "aws_endpoint"),
    ];
    // Keys come as a pair: a profile's secret never goes with the environment's key id.
    let env_has_keys = env("AWS_ACCESS_KEY_ID").is_some();
    for (file_key, env_key, config_key) in pairs {
        let from_keys = file_key.starts_with("aws_");
        if env(env_key).is_some()
            || (from_keys && env_has_keys)
            || (file_key == "region" && env("AWS_DEFAULT_REGION").is_some())
            || (file_key == "endpoint_url" && env("AWS_ENDPOINT").is_some())
        {
            continue;
        }
        if let Some(v) = found.get(file_key) {
            out.push((config_key.to_string(), v.clone()));
        }
    }
    if env("AWS_CHECKSUM_ALGORITHM").is_none() {
        let rule = match env("AWS_REQUEST_CHECKSUM_CALCULATION") {
            Some(v) => Some((v, "AWS_REQUEST_CHECKSUM_CALCULATION".to_string())),
            None => found.get("request_checksum_calculation").map(|v| {
                let from = format!("request_checksum_calculation of AWS profile `{profile}`");
                (v.clone(), from)
            }),
        };
        if checksums_sent(rule.as_ref().map(|(v, from)| (v.as_str(), from.as_str())))? {
            out.push(("aws_checksum_algorithm".into(), "sha256".into()));
        }
    }
    let endpoint = env("AWS_ENDPOINT_URL")
        .or_else(|| env("AWS_ENDPOINT"))
        .or_else(|| found.get("endpoint_url").cloned());
    if endpoint.is_some_and(|e| e.starts_with("http://")) && env("AWS_ALLOW_HTTP").is_none() {
        out.push(("aws_allow_http".into(), "true".into()));
    }
    Ok(out)
}

/// Whether uploads carry a SHA-256 checksum of every object and part (S3 checks the bytes
/// against it), under the AWS tools' rule `request_checksum_calculation`: `when_supported`
/// (the default: sent) or `when_required` (not sent, for a store that refuses checksums).
/// Besides the check, it spares the server work: a multipart upload that comes without
/// checksums is checksummed whole by S3 when it completes (moto's server spent longer on that
/// than on receiving the parts).
/// `rule` is the value and where it was found, for the message that refuses it.
fn checksums_sent(rule: Option<(&str, &str)>) -> Result<bool> {
    let Some((value, from)) = rule else {
        return Ok(true);
    };
    match value.to_ascii_lowercase().as_str() {
        "when_supported" => Ok(true),
        "when_required" => Ok(false),
        _ => Err(Error::usage(format!(
            "{from} is `{}`: use when_supported or when_required",
            value.escape_debug()
        ))),
    }
}

/// The text of `path`, empty when it does not exist.
fn read(path: &std::path::Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// The `key = value` lines of section `[name]` of an INI text (keys lowercase).
fn section(text: &str, name: &str) -> BTreeMap<String, String> {
    let mut inside = false;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        // A section's line may end in a comment: `[default] # mine`.
        if let Some((head, _)) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
            inside = head.trim() == name;
            continue;
        }
        if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_go_with_uploads_unless_the_rule_says_when_required() {
        let from = "AWS_REQUEST_CHECKSUM_CALCULATION";
        assert!(checksums_sent(None).unwrap());
        assert!(checksums_sent(Some(("WHEN_SUPPORTED", from))).unwrap());
        assert!(!checksums_sent(Some(("when_required", from))).unwrap());
        let e = checksums_sent(Some(("always", from)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "AWS_REQUEST_CHECKSUM_CALCULATION is `always`: use when_supported or when_required"
            ),
            "{e}"
        );
    }

    #[test]
    fn reads_a_profile_section() {
        let text = "[default]\naws_access_key_id = A\n\n[profile team]\n# c\nregion=eu-west-1\nendpoint_url = http://127.0.0.1:9000\n[other]\nregion = x\n";
        let team = section(text, "profile team");
        assert_eq!(team.get("region").map(String::as_str), Some("eu-west-1"));
        assert_eq!(
            team.get("endpoint_url").map(String::as_str),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(section(text, "default").len(), 1);
        assert!(section(text, "missing").is_empty());
        let commented = "[default] # mine\nregion = eu-west-1\n[profile x] ; other\nregion = y\n";
        assert_eq!(
            section(commented, "default")
                .get("region")
                .map(String::as_str),
            Some("eu-west-1")
        );
        assert_eq!(section(commented, "profile x").len(), 1);
    }
}
