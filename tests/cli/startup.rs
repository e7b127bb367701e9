//! What cachier's own start-up guarantees (it skips std's, see
//! src/startup.rs). A replay into a closed pipe (SIGPIPE ignored, exit 141)
//! is `conformance::*::closed_stdout_on_hit_exits_141`.
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::Env;

/// Started with stdin and stdout closed, cachier opens `/dev/null` on them
/// as std would: no file it opens (an entry, a lock, the stats journal)
/// takes descriptor 0 or 1, so nothing a run replays or reads goes astray.
#[test]
fn closed_stdin_and_stdout_are_never_the_cache_files() {
    let env = Env::file();
    let script = "echo $$ >> \"$COUNT\"; echo out; echo err >&2";
    for _ in 0..2 {
        let mut cmd = env.run_sh(&[], script);
        cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::close(0);
                libc::close(1);
                Ok(())
            });
        }
        cmd.assert().code(0).stderr("err\n");
    }
    assert_eq!(env.runs(), 1, "the second run was not a hit");
    // What was stored, and the stats journal, are whole.
    env.run_sh(&[], script)
        .assert()
        .code(0)
        .stdout("out\n")
        .stderr("err\n");
    assert_eq!(env.runs(), 1);
    assert_eq!(env.stat("total", "hits"), 2);
}
