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
                Failure::Unreachable(describe(&e.kind))
            }
            ErrorKind::Authentication { message, .. } => {
                Failure::Unreachable(format!("authentication failed: {}", one_line(message)))
            }
            kind => Failure::Other(describe(kind)),
        }
    }
}

/// What the server or driver said, without the driver's dump of labels
/// and raw server replies.
fn describe(kind: &ErrorKind) -> String {
    let said = |code: i32, name: Option<&str>, message: &str| match name {
        Some(name) if !name.is_empty() => format!("{name} ({code}): {message}"),
        _ => format!("error {code}: {message}"),
    };
    let text = match kind {
        ErrorKind::Command(c) => said(c.code, Some(&c.code_name), &c.message),
        ErrorKind::Write(WriteFailure::WriteError(w)) => {
            said(w.code, w.code_name.as_deref(), &w.message)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => {
            said(w.code, Some(&w.code_name), &w.message)
        }
        ErrorKind::InsertMany(e) => match (&e.write_errors, &e.write_concern_error) {
            (Some(errors), _) if !errors.is_empty() => {
                let w = &errors[0];
                said(w.code, w.code_name.as_deref(), &w.message)
            }
            (_, Some(w)) => said(w.code, Some(&w.code_name), &w.message),
            _ => kind.to_string(),
        },
        _ => kind.to_string(),
    };
    let text = one_line(&text);
    // A server's message can be long; one warning line stays readable.
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
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

    #[test]
    fn an_io_error_is_one_short_line() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset\n by peer");
        let Failure::Unreachable(text) = Failure::from(mongodb::error::Error::from(io)) else {
            panic!("not Unreachable")
        };
        assert_eq!(text, "I/O error: reset by peer");
    }
}
