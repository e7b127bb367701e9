//! `--read-only` with credentials that can only read, as an untrusted CI
//! job gets them: a PostgreSQL role with SELECT only (the tables not even
//! there at first), a Redis ACL user without write commands. Hits are
//! served and misses run, without one warning: cachier asks for nothing
//! the server refuses.
use crate::backend::{Backend, pg_client, pg_db, pg_test_url, redis_prefix};
use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

/// `url` with `user:password` in place of its own credentials.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{rest}")
}

/// A quiet run of `counted(text)` as `var=url`, read-only: its exact output.
fn read_only_run(env: &Env, var: &str, url: &str, text: &str) {
    let mut cmd = env.run_sh(&["--read-only"], &counted(text));
    if var == "CACHIER_MONGO_URL" {
        cmd.env("CACHIER_BACKEND", "mongo");
    }
    let out = cmd.env(var, url).output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        (Some(0), text.into(), "".into())
    );
}

/// A run of `counted(text)` as `var=url` without --read-only: its exact
/// output, and its stderr.
fn writer_run(env: &Env, var: &str, url: &str, text: &str) -> String {
    let mut cmd = env.run_sh(&[], &counted(text));
    if var == "CACHIER_MONGO_URL" {
        cmd.env("CACHIER_BACKEND", "mongo");
    }
    let out = cmd.env(var, url).output().unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), text.as_bytes())
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn postgres_select_only_role() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    let owner_url = pg_test_url(env.dir.path());
    let role = format!("{}_reader", pg_db(env.dir.path()));
    let mut admin = pg_client(&owner_url);
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'readpw';
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
        ))
        .unwrap();
    let reader = as_user(&owner_url, &role, "readpw");
    // No tables yet: a miss, and none made.
    read_only_run(&env, "CACHIER_SQL_URL", &reader, "hi");
    let tables = admin
        .query_one("SELECT to_regclass('cachier_entries') IS NULL", &[])
        .unwrap();
    assert!(tables.get::<_, bool>(0), "read-only made the tables");
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    admin
        .batch_execute(&format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        ))
        .unwrap();
    read_only_run(&env, "CACHIER_SQL_URL", &reader, "hi");
    read_only_run(&env, "CACHIER_SQL_URL", &reader, "other");
    assert_eq!(env.runs(), 3);
    // Without --read-only its writes are refused (insufficient_privilege):
    // no outage, so its next run reaches the server and is served.
    for (url, runs) in [(&reader, 4), (&owner_url, 5), (&reader, 5)] {
        let stderr = writer_run(&env, "CACHIER_SQL_URL", url, "new");
        assert!(!stderr.contains("skipping it until"), "{stderr}");
        assert_eq!(env.runs(), runs, "{stderr}");
    }
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
}

#[cfg(feature = "redis")]
#[test]
fn redis_acl_user_without_write_commands() {
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    let url = crate::backend::redis_url(false).unwrap();
    let user = redis_prefix(env.dir.path());
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_with_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let rules = [
        "on",
        ">readpw",
        "~*",
        "&*",
        "+@read",
        "+@connection",
        "+subscribe",
        "+select",
    ];
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg(&rules[..])
        .query(&mut admin)
        .unwrap();
    let reader = as_user(&url, &user, "readpw");
    read_only_run(&env, "CACHIER_REDIS_URL", &reader, "hi");
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    read_only_run(&env, "CACHIER_REDIS_URL", &reader, "hi");
    assert_eq!(env.runs(), 2);
    // The same user without --read-only is refused its writes.
    let stderr = writer_run(&env, "CACHIER_REDIS_URL", &reader, "new");
    assert!(stderr.contains("no permissions to run"), "{stderr}");
    // A refused command is no outage: the breaker did not mark Redis, so
    // the same user's next run reaches it and is served another's entry.
    writer_run(&env, "CACHIER_REDIS_URL", &url, "new");
    assert_eq!(env.runs(), 4);
    let stderr = writer_run(&env, "CACHIER_REDIS_URL", &reader, "new");
    assert!(!stderr.contains("skipping it until"), "{stderr}");
    assert_eq!(env.runs(), 4, "{stderr}");
    let _: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query(&mut admin)
        .unwrap();
}

/// SecantusDB enforces roles under `--auth`: users are made on a server of
/// the test's own, which then restarts with `--auth`.
#[cfg(feature = "mongo")]
#[test]
fn mongo_read_role() {
    use mongodb::bson::doc;

    use crate::own_server::{Kind, OwnServer};
    let Some(mut server) = OwnServer::start(Kind::Mongo) else {
        return;
    };
    let admin = format!("{}?directConnection=true", server.url());
    let db = mongodb::sync::Client::with_uri_str(admin)
        .unwrap()
        .database("cachier");
    for (user, role) in [("writer", "readWrite"), ("reader", "read")] {
        db.run_command(doc! {
            "createUser": user, "pwd": "pw", "roles": [{ "role": role, "db": "cachier" }]
        })
        .run()
        .unwrap();
    }
    server.terminate();
    server.extra = vec!["--auth".into()];
    server.up();
    let url = |user: &str| {
        format!(
            "mongodb://{user}:pw@127.0.0.1:{}/cachier?authSource=cachier",
            server.port
        )
    };
    let env = Env::file();
    read_only_run(&env, "CACHIER_MONGO_URL", &url("reader"), "hi");
    env.run_sh(&[], &counted("hi"))
        .env("CACHIER_BACKEND", "mongo")
        .env("CACHIER_MONGO_URL", url("writer"))
        .assert()
        .code(0)
        .stdout("hi");
    read_only_run(&env, "CACHIER_MONGO_URL", &url("reader"), "hi");
    assert_eq!(env.runs(), 2);
    // The role is enforced: the reader's writes are refused.
    let stderr = writer_run(&env, "CACHIER_MONGO_URL", &url("reader"), "new");
    assert!(stderr.contains("not authorized"), "{stderr}");
}
