//! `stats --format openmetrics`: exact bytes, and what Prometheus' text
//! parser makes of them.
use crate::harness::*;

/// Two namespaces: a miss and a hit in `a`, a miss in `other`.
fn two_namespaces(env: &Env, other: &str) {
    for name in ["a", "a", other] {
        let out = env
            .run_sh(&["--name", name], &counted(name))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn openmetrics_exact_bytes() {
    let env = Env::file();
    // A name that needs escaping in a label value.
    two_namespaces(&env, "b\"q");
    let json = env.json(&["stats", "--json"]);
    let row = |ns: &str, field: &str| json["namespaces"][ns][field].as_u64().unwrap();
    let saved = |ns: &str| {
        let ms = row(ns, "saved_ms");
        format!("{}.{:03}", ms / 1000, ms % 1000)
    };
    let mut want = String::new();
    for (name, kind, help, field) in [
        (
            "hits_total",
            "counter",
            "Lookups served from the cache.",
            "hits",
        ),
        (
            "misses_total",
            "counter",
            "Lookups that ran the command.",
            "misses",
        ),
        (
            "waits_total",
            "counter",
            "Runs that waited for another process computing the same key.",
            "waits",
        ),
        (
            "stale_serves_total",
            "counter",
            "Stale entries served while a refresh ran in the background.",
            "stale_serves",
        ),
        (
            "saved_seconds_total",
            "counter",
            "Run time the hits saved, in seconds.",
            "saved_ms",
        ),
        ("entries", "gauge", "Entries stored.", "entries"),
        (
            "bytes",
            "gauge",
            "Bytes the entries take in the store.",
            "bytes",
        ),
    ] {
        want += &format!("# HELP cachier_{name} {help}\n# TYPE cachier_{name} {kind}\n");
        for (ns, label) in [("a", "a"), ("b\"q", "b\\\"q")] {
            let value = match field {
                "saved_ms" => saved(ns),
                _ => row(ns, field).to_string(),
            };
            want += &format!("cachier_{name}{{namespace=\"{label}\"}} {value}\n");
        }
    }
    want += "# EOF\n";
    assert_eq!(env.stdout(&["stats", "--format", "openmetrics"]), want);
    assert_eq!(
        (row("a", "hits"), row("a", "misses"), row("b\"q", "misses")),
        (1, 1, 1)
    );
}

#[test]
fn openmetrics_parses_as_prometheus_text() {
    let env = Env::file();
    // (The parser crate does not unescape label values: the exact-bytes
    // test covers escaping.)
    two_namespaces(&env, "b.q-1");
    let text = env.stdout(&["stats", "--format", "openmetrics"]);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let value = |metric: &str, ns: &str| {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("namespace") == Some(ns))
            .unwrap_or_else(|| panic!("no {metric} for {ns} in\n{text}"));
        match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{metric} parsed as {other:?}"),
        }
    };
    assert_eq!(value("cachier_hits_total", "a"), 1.0);
    assert_eq!(value("cachier_misses_total", "a"), 1.0);
    assert_eq!(value("cachier_misses_total", "b.q-1"), 1.0);
    assert_eq!(value("cachier_entries", "b.q-1"), 1.0);
    assert!(matches!(
        scrape
            .samples
            .iter()
            .find(|s| s.metric == "cachier_hits_total")
            .unwrap()
            .value,
        prometheus_parse::Value::Counter(_)
    ));
    assert_eq!(scrape.samples.len(), 14);
    assert_eq!(
        scrape.docs.get("cachier_hits_total").map(String::as_str),
        Some("Lookups served from the cache.")
    );
}
