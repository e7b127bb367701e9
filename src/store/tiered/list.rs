//! Merging what each tier lists into one list of entries, each once with
//! the tiers that hold it.
use std::collections::HashMap;

use crate::key::Key;
use crate::store::Listed;

/// Entries listed per tier, in lookup order, merged: each key once (the
/// highest tier's copy), with the names of the tiers that hold it.
pub fn merge(per_tier: Vec<(&'static str, Vec<Listed>)>) -> Vec<(Listed, Vec<&'static str>)> {
    let mut at: HashMap<Key, usize> = HashMap::new();
    let mut all: Vec<(Listed, Vec<&'static str>)> = Vec::new();
    for (name, listed) in per_tier {
        for l in listed {
            match at.get(&l.meta.key) {
                Some(&i) => all[i].1.push(name),
                None => {
                    at.insert(l.meta.key, all.len());
                    all.push((l, vec![name]));
                }
            }
        }
    }
    all
}
