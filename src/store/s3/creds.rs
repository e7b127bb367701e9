//! Credentials and region by the standard AWS chain, tried in order:
//! the variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`); the profile (`AWS_PROFILE`, else `default`) in
//! `~/.aws/credentials` and `~/.aws/config`, keys or `credential_process`;
//! web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, through
//! STS `AssumeRoleWithWebIdentity`: Kubernetes IRSA, GitHub OIDC); the
//! instance metadata service, IMDSv2 (a session token first), unless
//! `AWS_EC2_METADATA_DISABLED=true`. Nothing found: one line naming each
//! source tried. No secret or token ever goes into a message.
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use rusty_s3::Credentials;
use ureq::Agent;

use super::S3Config;
use super::conn::{redact, tag};
use super::profile;

/// Where the instance metadata service is when no variable says.
const IMDS: &str = "http://169.254.169.254";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's, us-east-1.
pub fn region() -> String {
    var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .or_else(|| profile::keys(&profile::name()).remove("region"))
        .unwrap_or_else(|| "us-east-1".into())
}

/// A client for the credential services: short deadlines on every step.
fn agent(timeout: Duration) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_global(Some(timeout * 3))
        .build()
        .into()
}

/// The first credentials the chain finds.
pub fn resolve(config: &S3Config) -> Result<Credentials> {
    let mut tried = Vec::new();
    tried.push("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_string());
    if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        return Ok(make(id, secret, var("AWS_SESSION_TOKEN")));
    }
    let name = profile::name();
    tried.push(format!(
        "profile `{name}` in ~/.aws/credentials and ~/.aws/config"
    ));
    let keys = profile::keys(&name);
    if let (Some(id), Some(secret)) = (
        keys.get("aws_access_key_id"),
        keys.get("aws_secret_access_key"),
    ) {
        return Ok(make(
            id.clone(),
            secret.clone(),
            keys.get("aws_session_token").cloned(),
        ));
    }
    if let Some(command) = keys.get("credential_process") {
        let (id, secret, token) =
            profile::run_process(command).map_err(|e| anyhow!("AWS profile `{name}`: {e:#}"))?;
        return Ok(make(id, secret, token));
    }
    tried.push("web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)".into());
    if let (Some(file), Some(role)) = (var("AWS_WEB_IDENTITY_TOKEN_FILE"), var("AWS_ROLE_ARN")) {
        return web_identity(&file, &role).map_err(|e| anyhow!("AWS web identity: {e:#}"));
    }
    if var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        tried.push("instance metadata (disabled by AWS_EC2_METADATA_DISABLED)".into());
    } else {
        let at = var("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| IMDS.into());
        let at = at.trim_end_matches('/').to_string();
        match imds(&at) {
            Ok(c) => return Ok(c),
            Err(e) => tried.push(format!("instance metadata at {at} ({e:#})")),
        }
    }
    bail!(
        "no AWS credentials for S3 at {} (tried: {}); set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
        config.place(),
        tried.join("; ")
    )
}

fn make(id: String, secret: String, token: Option<String>) -> Credentials {
    match token {
        Some(t) => Credentials::new_with_token(id, secret, t),
        None => Credentials::new(id, secret),
    }
}

/// STS `AssumeRoleWithWebIdentity` with the token in `file` (unsigned: the
/// token is the proof).
fn web_identity(file: &str, role: &str) -> Result<Credentials> {
    let token = std::fs::read_to_string(file)
        .map_err(|e| anyhow!("cannot read the token file {file}: {e}"))?;
    let endpoint = var("AWS_ENDPOINT_URL_STS")
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", region()));
    let session =
        var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| format!("cachier-{}", std::process::id()));
    let mut resp = agent(Duration::from_secs(2))
        .post(endpoint.trim_end_matches('/').to_string() + "/")
        .send_form([
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", &session),
            ("WebIdentityToken", token.trim()),
        ])
        .map_err(|e| anyhow!("cannot reach STS at {endpoint}: {}", redact(&e.to_string())))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 16)
        .read_to_string()
        .unwrap_or_default();
    let field = |n| tag(&text, n);
    match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(id), Some(secret)) if status == 200 => Ok(make(id, secret, field("SessionToken"))),
        _ => bail!(
            "STS at {endpoint} refused the role {role}: HTTP {status} {}",
            field("Code").unwrap_or_default()
        ),
    }
}

/// IMDSv2: a session token, the role's name, then its credentials.
fn imds(at: &str) -> Result<Credentials> {
    let agent = agent(Duration::from_millis(500));
    let fail = |e: ureq::Error| anyhow!("{}", redact(&e.to_string()));
    let mut resp = agent
        .put(format!("{at}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
        .send_empty()
        .map_err(fail)?;
    if resp.status() != 200 {
        bail!("no session token: HTTP {}", resp.status().as_u16());
    }
    let token = resp
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .map_err(fail)?;
    let get = |path: &str| -> Result<String> {
        let mut resp = agent
            .get(format!(
                "{at}/latest/meta-data/iam/security-credentials/{path}"
            ))
            .header("X-aws-ec2-metadata-token", token.trim())
            .call()
            .map_err(fail)?;
        if resp.status() != 200 {
            bail!("no role credentials: HTTP {}", resp.status().as_u16());
        }
        resp.body_mut()
            .with_config()
            .limit(1 << 16)
            .read_to_string()
            .map_err(fail)
    };
    let roles = get("")?;
    let role = roles.lines().next().map(str::trim).unwrap_or_default();
    if role.is_empty() {
        bail!("no role attached to the instance");
    }
    let json: serde_json::Value =
        serde_json::from_str(&get(role)?).map_err(|_| anyhow!("unreadable role credentials"))?;
    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_string);
    match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(id), Some(secret)) => Ok(make(id, secret, field("Token"))),
        _ => bail!("role credentials without AccessKeyId and SecretAccessKey"),
    }
}
