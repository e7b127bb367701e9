//! Property tests of the key's framing: two different inputs never frame
//! to the same bytes (the key is the BLAKE3 of those bytes), whether they
//! differ in the argv, the environment, an input file or `--key` text.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use super::KeySpec;
use super::{Component, KeyMaterial, derive, env, frame, key_frame};

/// Bytes from a small alphabet with a space, a NUL and a non-UTF-8 byte,
/// so that different inputs often share their bytes, split differently.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(prop::sample::select(&b"ab =\0\xff"[..]), 0..5)
}

fn text() -> impl Strategy<Value = String> {
    vec(
        prop::sample::select(&['a', 'b', ' ', '1', '\u{e9}'][..]),
        0..5,
    )
    .prop_map(|c| c.into_iter().collect())
}

fn argv() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(bytes(), 1..5)
}

/// The argv's bytes cut into arguments at other places: `["a b"]`
/// against `["a", "b"]`, `["ab", ""]` against `["a", "b"]`.
fn resplit(argv: &[Vec<u8>], cuts: &[usize]) -> Vec<Vec<u8>> {
    let joined = argv.concat();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (joined.len() + 1)).collect();
    cuts.sort();
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        out.push(joined[from..cut].to_vec());
        from = cut;
    }
    out.push(joined[from..].to_vec());
    out
}

/// `derive` on a command line and `--key` texts, without the working
/// directory: the bytes its key is the hash of.
fn derived(argv: &[Vec<u8>], extra: &[String], name: Option<&str>) -> (KeyMaterial, Vec<u8>) {
    let opts = KeySpec {
        no_cwd: true,
        extra: extra.to_vec(),
        name: name.map(str::to_string),
        ..KeySpec::default()
    };
    let command: Vec<OsString> = argv.iter().cloned().map(OsString::from_vec).collect();
    let material = derive(&opts, &command).unwrap_or_else(|e| panic!("derive: {e:#}"));
    let framed = key_frame(&material.components);
    (material, framed)
}

/// Environment components for `vars` (name to value; absent is unset).
fn env_frame(patterns: &[String], all: bool, vars: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let list: Vec<(OsString, OsString)> = vars
        .iter()
        .map(|(k, v)| (k.into(), OsString::from_vec(v.clone())))
        .collect();
    let lookup = |name: &str| vars.get(name).map(|v| OsString::from_vec(v.clone()));
    let mut parts = Vec::new();
    if let Err(e) = env::from_vars(patterns, all, &list, lookup, &mut parts) {
        panic!("env components: {e:#}");
    }
    key_frame(&parts)
}

/// A few variables named from a small set (`AB` beside `A` and `B`).
fn vars() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let names = prop::sample::select(&["A", "B", "AB", "A B", "a"][..]);
    btree_map(names.prop_map(str::to_string), bytes(), 0..4)
}

proptest! {
    #[test]
    fn argv_frames_differ_when_the_arguments_do(a in argv(), b in argv()) {
        let (ka, fa) = derived(&a, &[], Some("n"));
        let (kb, fb) = derived(&b, &[], Some("n"));
        prop_assert_eq!(fa == fb, a == b);
        prop_assert_eq!(ka.key == kb.key, a == b);
    }

    #[test]
    fn argv_split_differently_frames_differently(
        a in argv(),
        cuts in vec(any::<usize>(), 0..4),
    ) {
        let b = resplit(&a, &cuts);
        let (_, fa) = derived(&a, &[], Some("n"));
        let (_, fb) = derived(&b, &[], Some("n"));
        prop_assert_eq!(fa == fb, a == b, "{:?} {:?}", a, b);
    }

    #[test]
    fn name_argv_and_key_texts_all_count(
        a in (argv(), vec(text(), 0..3), prop::option::of(text())),
        b in (argv(), vec(text(), 0..3), prop::option::of(text())),
    ) {
        let (ma, fa) = derived(&a.0, &a.1, a.2.as_deref());
        let (mb, fb) = derived(&b.0, &b.1, b.2.as_deref());
        // The namespace (`--name`, else the program's base name) is what
        // the name option changes.
        let same = (&ma.namespace, &a.0, &a.1) == (&mb.namespace, &b.0, &b.1);
        prop_assert_eq!(fa == fb, same);
    }

    #[test]
    fn named_variables_frame_set_unset_and_empty_apart(
        a in vars(),
        b in vars(),
        all in any::<bool>(),
    ) {
        let named: Vec<String> = ["A", "B", "AB", "A B", "a"].map(String::from).to_vec();
        prop_assert_eq!(env_frame(&named, all, &a) == env_frame(&named, all, &b), a == b);
    }

    #[test]
    fn a_glob_frames_the_names_it_matches_and_their_values(a in vars(), b in vars()) {
        let glob = vec!["*".to_string()];
        prop_assert_eq!(env_frame(&glob, false, &a) == env_frame(&glob, false, &b), a == b);
    }

    #[test]
    fn input_path_and_content_frame_apart(
        a in (bytes(), any::<[u8; 32]>()),
        b in (bytes(), any::<[u8; 32]>()),
    ) {
        let fa = frame(&(&a.0[..], a.1));
        let fb = frame(&(&b.0[..], b.1));
        prop_assert_eq!(fa == fb, a == b);
    }

    #[test]
    fn component_lists_frame_apart(
        a in vec((text(), any::<[u8; 2]>()), 0..4),
        b in vec((text(), any::<[u8; 2]>()), 0..4),
    ) {
        let parts = |list: &[(String, [u8; 2])]| -> Vec<Component> {
            list.iter()
                .map(|(label, h)| {
                    let mut hash = [0; 32];
                    hash[..2].copy_from_slice(h);
                    Component { label: label.clone(), hash, shown: String::new() }
                })
                .collect()
        };
        prop_assert_eq!(key_frame(&parts(&a)) == key_frame(&parts(&b)), a == b);
    }
}

#[test]
fn the_cases_named_in_the_issue_differ() {
    let named = vec!["A".to_string()];
    let empty = BTreeMap::from([("A".to_string(), Vec::new())]);
    assert_ne!(
        env_frame(&named, false, &BTreeMap::new()),
        env_frame(&named, false, &empty)
    );
    let (_, one) = derived(&[b"a b".to_vec()], &[], Some("n"));
    let (_, two) = derived(&[b"a".to_vec(), b"b".to_vec()], &[], Some("n"));
    assert_ne!(one, two);
    let (_, one) = derived(&[b"a".to_vec()], &["x y".into()], Some("n"));
    let (_, two) = derived(&[b"a".to_vec()], &["x".into(), "y".into()], Some("n"));
    assert_ne!(one, two);
}
