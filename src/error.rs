//! cachier's own exit codes and the error that carries one to `main`.
use std::fmt;

/// Bad usage: a bad flag, duration, size or backend, a missing `--input`, or
/// bad input such as a truncated or corrupt dump given to `cachier import`.
pub const USAGE: u8 = 2;
/// cachier itself failed: a backend error under `--strict`, an unusable config.
pub const CACHIER_FAILED: u8 = 125;
/// The command exists but cannot be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;
/// What a process killed by SIGPIPE reports; a replay into a closed pipe exits so.
pub const BROKEN_PIPE: u8 = 141;

/// An error that decides the exit code. Anything else that reaches `main`
/// exits with [`CACHIER_FAILED`].
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: USAGE,
            message: message.into(),
        }
        .into()
    }

    pub fn failed(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: CACHIER_FAILED,
            message: message.into(),
        }
        .into()
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// The exit code an error maps to.
pub fn code_of(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<Exit>()
        .map_or(CACHIER_FAILED, |e| e.code)
}

/// Whether the error is a write into a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
