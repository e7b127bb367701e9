//! A profile of the AWS shared files: `~/.aws/credentials` (`[NAME]`) and
//! `~/.aws/config` (`[profile NAME]`, `[default]`), their paths moved by
//! `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`; keys of the
//! credentials file win. `credential_process` runs with a deadline.
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long a `credential_process` may take.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the profile in use.
pub fn name() -> String {
    std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into())
}

fn home_file(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Some(
        PathBuf::from(std::env::var_os("HOME")?)
            .join(".aws")
            .join(name),
    )
}

/// The keys of profile `name`, both files merged (empty if neither has it).
pub fn keys(name: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let files = [
        (home_file("AWS_CONFIG_FILE", "config"), config_section),
        (
            home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            name.to_string(),
        ),
    ];
    for (path, section) in files {
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
            continue;
        };
        out.extend(section_keys(&text, &section));
    }
    out
}

/// The `key = value` lines of `[section]` in an INI text.
fn section_keys(text: &str, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = head.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// Key id, secret and session token that `command` prints (the
/// `credential_process` protocol, version 1).
pub fn run_process(command: &str) -> Result<(String, String, Option<String>)> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("credential_process could not start")?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("credential_process has no output"))?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.by_ref().take(1 << 20).read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > PROCESS_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "credential_process gave no answer within {} s",
                PROCESS_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("credential_process failed ({status})");
    }
    let json: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|_| anyhow!("credential_process did not print JSON"))?;
    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_string);
    match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(id), Some(secret)) => Ok((id, secret, field("SessionToken"))),
        _ => bail!("credential_process printed no AccessKeyId and SecretAccessKey"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_read() {
        let text = "[default]\nregion = eu-west-1\n[profile  ci]\n# note\naws_access_key_id=AK\n\
                    AWS_SECRET_ACCESS_KEY = s e\n[other]\nregion=x\n";
        let ci = section_keys(text, "profile ci");
        assert_eq!(ci.get("aws_access_key_id").map(String::as_str), Some("AK"));
        assert_eq!(
            ci.get("aws_secret_access_key").map(String::as_str),
            Some("s e")
        );
        assert_eq!(
            section_keys(text, "default")
                .get("region")
                .map(String::as_str),
            Some("eu-west-1")
        );
        assert!(section_keys(text, "nope").is_empty());
    }
}
