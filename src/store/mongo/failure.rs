//! Why a MongoDB operation failed, sorted by what the store does next, in
//! one line that a warning can carry.
use mongodb::error::{ErrorKind, WriteFailure};

use super::conn::CONNECT_TIMEOUT;

/// Why an operation failed, sorted by what the store does next.
#[derive(Debug)]
pub enum Failure {
    /// The server is gone or never answered: stop trying for this process.
    Unreachable(String),
    /// A unique index refused the write (a claim or mark already taken).
    Duplicate,
    Other(String),
}

impl From<mongodb::error::Error> for Failure {
    fn from(e: mongodb::error::Error) -> Failure {
        match &*e.kind {
            ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000 => Failure::Duplicate,
            ErrorKind::Command(c) if c.code == 11000 => Failure::Duplicate,
            ErrorKind::ServerSelection { message, .. } => Failure::Unreachable(selection(message)),
            ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
                Failure::Unreachable(one_line(&e.to_string()))
            }
            ErrorKind::Authentication { message, .. } => {
                Failure::Unreachable(format!("authentication failed: {}", one_line(message)))
            }
            _ => Failure::Other(one_line(&e.to_string())),
        }
    }
}

/// The driver's server-selection message is a topology dump: keep the
/// first server's error.
fn selection(message: &str) -> String {
    let why = message
        .split_once("Error: ")
        .map(|(_, rest)| rest.split(", labels").next().unwrap_or(rest))
        .map(|e| {
            e.trim_start_matches("Kind: ")
                .trim_end_matches(['}', ' ', ']'])
        });
    match why {
        Some(why) if !why.is_empty() => format!(
            "no server answered within {} s ({})",
            CONNECT_TIMEOUT.as_secs_f32(),
            one_line(why)
        ),
        _ => format!(
            "no server answered within {} s",
            CONNECT_TIMEOUT.as_secs_f32()
        ),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_the_first_servers_error() {
        let msg = "Server selection timeout: No available servers. Topology: { Type: Unknown, \
                   Servers: [ { Address: 127.0.0.1:1, Type: Unknown, Error: Kind: I/O error: \
                   Connection refused (os error 111), labels: {} } ] }";
        assert_eq!(
            selection(msg),
            "no server answered within 1.5 s (I/O error: Connection refused (os error 111))"
        );
        assert_eq!(selection("odd"), "no server answered within 1.5 s");
    }
}
