//! TLS to PostgreSQL as the URL's `sslmode` asks; the server `scripts/test`
//! starts has TLS on with a self-signed certificate.
use crate::backend::{Backend, pg_client, pg_db, pg_test_url, pg_url, require};
use crate::harness::*;

/// An Env on a server with TLS on, or `None` (skipped, or failed under CI).
fn tls_env() -> Option<Env> {
    let env = Env::try_new(Backend::Postgres)?;
    let mut admin = pg_client(&pg_url().unwrap());
    let ssl: String = admin.query_one("SHOW ssl", &[]).unwrap().get(0);
    require(
        "TLS",
        ssl == "on",
        "a server with ssl=on in CACHIER_TEST_PG_URL",
    )
    .then_some(env)
}

#[test]
fn tls_is_used_when_the_url_asks_for_it() {
    let Some(env) = tls_env() else { return };
    let mut admin = pg_client(&pg_url().unwrap());
    for (n, (mode, encrypted)) in [("require", true), ("disable", false)]
        .into_iter()
        .enumerate()
    {
        let url = format!("{}?sslmode={mode}", pg_test_url(env.dir.path()));
        let script = format!(
            "echo $$ >> \"$COUNT\"; while [ ! -e go_{mode} ]; do sleep 0.01; done; echo ok"
        );
        let mut cmd = env.run_sh(&[], &script);
        cmd.env("CACHIER_SQL_URL", &url);
        let (child, _lines) = spawn_watching_stderr(cmd);
        await_until("the command runs", || env.runs() == n + 1);
        // cachier's session (which holds the claim) is open now.
        let row = admin
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1",
                &[&pg_db(env.dir.path())],
            )
            .unwrap();
        let (all, tls): (i64, i64) = (row.get(0), row.get(1));
        assert!(all >= 1, "{mode}: {all} sessions");
        assert_eq!(tls, if encrypted { all } else { 0 }, "{mode}");
        touch(&env.path(&format!("go_{mode}")));
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(0), &b"ok\n"[..])
        );
    }
    assert_eq!(env.count_entries(), 2);
}

#[test]
fn verify_full_refuses_an_untrusted_certificate() {
    let Some(env) = tls_env() else { return };
    let url = format!("{}?sslmode=verify-full", pg_test_url(env.dir.path()));
    let out = env
        .run_sh(&[], &counted("hi"))
        .env("CACHIER_SQL_URL", &url)
        .output()
        .unwrap();
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("cachier: warning: cannot reach PostgreSQL at postgresql://"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
    assert_eq!(env.count_entries(), 0);
}
