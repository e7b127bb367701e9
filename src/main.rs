//! Entry point: everything lives in the library so tests and tools share it.
fn main() -> std::process::ExitCode {
    cachier::run(std::env::args_os())
}
