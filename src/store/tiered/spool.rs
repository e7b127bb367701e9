//! Writing a computed result to every working tier at once.
use std::io;
use std::rc::Rc;

use anyhow::Result;

use super::Shared;
use crate::entry::{Meta, Stream};
use crate::key::Key;
use crate::store::Spool;

struct Fanout {
    shared: Rc<Shared>,
    /// Each working tier's spool, by tier index.
    spools: Vec<(usize, Box<dyn Spool>)>,
}

pub fn begin(shared: &Rc<Shared>, key: &Key) -> Result<Box<dyn Spool>> {
    let mut spools = Vec::new();
    for (i, level) in shared.levels.iter().enumerate() {
        if !shared.up(i) || !level.store.writable() {
            continue;
        }
        match level.store.begin(key) {
            Ok(spool) => spools.push((i, spool)),
            Err(e) => shared.trouble(i, e)?,
        }
    }
    if spools.is_empty() {
        anyhow::bail!("no tier of the backend stack can store entries");
    }
    Ok(Box::new(Fanout {
        shared: Rc::clone(shared),
        spools,
    }))
}

impl Spool for Fanout {
    /// A tier whose write fails is dropped (its entry discarded); the
    /// write fails only when no tier is left.
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let mut failed = Vec::new();
        for (n, (i, spool)) in self.spools.iter_mut().enumerate() {
            if let Err(e) = spool.write(stream, data) {
                failed.push(n);
                if let Err(e) = self.shared.trouble(*i, e.into()) {
                    return Err(io::Error::other(format!("{e:#}")));
                }
            }
        }
        for n in failed.into_iter().rev() {
            self.spools.remove(n);
        }
        if self.spools.is_empty() {
            return Err(io::Error::other(
                "no tier of the backend stack could store it",
            ));
        }
        Ok(())
    }

    fn commit(self: Box<Self>, meta: &Meta) -> Result<()> {
        let mut stored = 0;
        for (i, spool) in self.spools {
            match spool.commit(meta) {
                Ok(()) => stored += 1,
                Err(e) => self.shared.trouble(i, e)?,
            }
        }
        if stored == 0 {
            anyhow::bail!("no tier of the backend stack stored the entry");
        }
        Ok(())
    }
}
