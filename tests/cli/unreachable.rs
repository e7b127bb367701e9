//! One case for every server backend: a server that is not there. The run
//! gives the command's bytes and one warning naming the server without its
//! password; `path` shows where the cache lives, without the password;
//! `stats` and `--strict` exit 125, the command not run.
use std::process::Command;

use crate::harness::*;
use crate::proxy::closed_port;

/// A server backend as this case needs it: its `--backend` name, the
/// variable its URL goes in, a URL with password `hunter2pw` on `port`,
/// and what cachier shows of the server and of `path`.
struct Server {
    backend: &'static str,
    var: &'static str,
    url: fn(u16) -> String,
    shown: fn(u16) -> String,
    path: fn(u16) -> String,
    /// Other variables it needs (where the secret may be, for S3).
    extra: &'static [(&'static str, &'static str)],
}

macro_rules! unreachable_servers {
    ($($name:ident => $server:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            unreachable_server_warns_once_and_never_prints_the_password($server);
        }
    )*};
}

unreachable_servers!(
    postgres => Server {
        backend: "sql",
        var: "CACHIER_SQL_URL",
        url: |p| format!("postgresql://cachier:hunter2pw@127.0.0.1:{p}/mydb"),
        shown: |p| format!("PostgreSQL at postgresql://127.0.0.1:{p}/mydb"),
        path: |p| format!("postgresql://127.0.0.1:{p}/mydb\n"),
        extra: &[],
    },
    redis => Server {
        backend: "redis",
        var: "CACHIER_REDIS_URL",
        url: |p| format!("redis://cachier:hunter2pw@127.0.0.1:{p}/2"),
        shown: |p| format!("Redis at redis://127.0.0.1:{p}/2"),
        path: |p| format!("redis://127.0.0.1:{p}/2\n"),
        extra: &[],
    },
    mongo => Server {
        backend: "mongo",
        var: "CACHIER_MONGO_URL",
        url: |p| format!("mongodb://cachier:hunter2pw@127.0.0.1:{p}/mydb"),
        shown: |p| format!("MongoDB at mongodb://127.0.0.1:{p}/mydb"),
        path: |p| format!("mongodb://127.0.0.1:{p}/mydb (collection cachier)\n"),
        extra: &[],
    },
    s3 => Server {
        backend: "s3",
        var: "CACHIER_S3_ENDPOINT",
        url: |p| format!("http://127.0.0.1:{p}"),
        shown: |p| format!("S3 at s3://team/cache (http://127.0.0.1:{p})"),
        path: |p| format!("s3://team/cache (http://127.0.0.1:{p})\n"),
        extra: &[
            ("CACHIER_S3_URL", "s3://team/cache"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2pw"),
            ("AWS_SESSION_TOKEN", "hunter2pw-token"),
        ],
    },
);

fn unreachable_server_warns_once_and_never_prints_the_password(server: Server) {
    let env = Env::file();
    let port = closed_port();
    let url = (server.url)(port);
    let point = |mut cmd: Command| {
        cmd.env("CACHIER_BACKEND", server.backend)
            .env(server.var, &url)
            .envs(server.extra.iter().copied());
        cmd
    };
    let out = point(env.run_sh(&[], &counted("hi"))).output().unwrap();
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let warning = format!("cachier: warning: cannot reach {}", (server.shown)(port));
    assert!(stderr.starts_with(&warning), "{stderr}");
    assert!(!stderr.contains("hunter2pw"), "{stderr}");
    let path = point(env.cachier(&["path"])).output().unwrap();
    assert_eq!(path.status.code(), Some(0));
    assert_eq!(String::from_utf8(path.stdout).unwrap(), (server.path)(port));
    let stats = point(env.cachier(&["stats"])).output().unwrap();
    assert_eq!(stats.status.code(), Some(125));
    let stderr = String::from_utf8(stats.stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot reach {}", (server.shown)(port))),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2pw"), "{stderr}");
    let strict = point(env.run_sh(&["--strict"], &counted("never")))
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(125));
    assert!(!String::from_utf8_lossy(&strict.stderr).contains("hunter2pw"));
    assert_eq!(env.runs(), 1, "--strict does not run the command");
}
