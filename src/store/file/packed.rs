//! An entry's metadata packed for the listing index (index.rs): every field
//! of [`Meta`] in a fixed order, without names, so a listing decodes it in
//! a fraction of what the CBOR costs. Both directions name every field (no
//! `..`): a field added to `Meta` does not compile until it is packed too.
//! What is unpacked gets the checks `Meta::decode` makes (format, key,
//! lengths); the index's own checks say it is what was packed.
use serde_bytes::ByteBuf;

use crate::entry::{Corrupt, Encoding, FORMAT, Meta, NewerFormat, Run, Stream};
use crate::key::{Component, Key};
use crate::outputs::Outputs;
use crate::sign::Seal;

pub fn pack(meta: &Meta, out: &mut Vec<u8>) {
    let Meta {
        key,
        namespace,
        argv,
        components,
        exit_code,
        stdout_len,
        stderr_len,
        runs,
        duration_ms,
        created_ms,
        host,
        pid,
        user,
        stdout_blake3,
        stderr_blake3,
        format,
        outputs,
        seal,
        encoding,
    } = meta;
    let Outputs {
        len,
        blake3,
        count,
        size,
    } = outputs;
    out.extend_from_slice(&key.0);
    bytes(out, namespace.as_bytes());
    u64s(out, &[argv.len() as u64]);
    for arg in argv {
        bytes(out, arg);
    }
    u64s(out, &[components.len() as u64]);
    for Component { label, hash, .. } in components {
        bytes(out, label.as_bytes());
        out.extend_from_slice(hash);
    }
    out.extend_from_slice(&exit_code.to_le_bytes());
    u64s(out, &[*stdout_len, *stderr_len, runs.len() as u64]);
    for Run { stream, len } in runs {
        out.push(*stream as u8);
        u64s(out, &[*len]);
    }
    u64s(out, &[*duration_ms, *created_ms]);
    bytes(out, host.as_bytes());
    out.extend_from_slice(&pid.to_le_bytes());
    bytes(out, user.as_bytes());
    out.extend_from_slice(stdout_blake3);
    out.extend_from_slice(stderr_blake3);
    out.extend_from_slice(&format.to_le_bytes());
    u64s(out, &[*len]);
    out.extend_from_slice(blake3);
    u64s(out, &[*count, *size]);
    match seal {
        None => out.push(0),
        Some(Seal { public, signature }) => {
            out.push(1);
            out.extend_from_slice(public);
            out.extend_from_slice(signature);
        }
    }
    out.push(match encoding {
        Encoding::Raw => 0,
        Encoding::Zstd => 1,
    });
}

/// The metadata packed in `b`, stored under `key`; an error like
/// `Meta::decode`'s when it is not sound.
pub fn unpack(b: &[u8], key: &Key) -> anyhow::Result<Meta> {
    let bad = || Corrupt {
        key: key.short(),
        why: "unreadable metadata".to_string(),
    };
    let meta = Cursor(b).meta().ok_or_else(bad)?;
    if meta.format > FORMAT {
        return Err(NewerFormat {
            key: key.short(),
            format: meta.format,
        }
        .into());
    }
    if &meta.key != key {
        return Err(bad().into());
    }
    meta.check_lengths().map_err(|why| Corrupt {
        key: key.short(),
        why: why.to_string(),
    })?;
    Ok(meta)
}

fn u64s(out: &mut Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    u64s(out, &[b.len() as u64]);
    out.extend_from_slice(b);
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = usize::try_from(self.u64()?).ok()?;
        let (head, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(head.to_vec())
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }

    /// A count of things each at least `min` bytes long, if that many fit.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.0.len() / min).then_some(n)
    }

    fn meta(&mut self) -> Option<Meta> {
        let key = Key(self.take()?);
        let namespace = self.string()?;
        let n = self.count(8)?;
        let argv = (0..n)
            .map(|_| self.bytes().map(ByteBuf::from))
            .collect::<Option<Vec<_>>>()?;
        let n = self.count(40)?;
        let components = (0..n)
            .map(|_| {
                Some(Component {
                    label: self.string()?,
                    hash: self.take()?,
                    shown: String::new(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let exit_code = i32::from_le_bytes(self.take()?);
        let (stdout_len, stderr_len) = (self.u64()?, self.u64()?);
        let n = self.count(9)?;
        let runs = (0..n)
            .map(|_| {
                let stream = match self.u8()? {
                    0 => Stream::Stdout,
                    1 => Stream::Stderr,
                    _ => return None,
                };
                Some(Run {
                    stream,
                    len: self.u64()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let (duration_ms, created_ms) = (self.u64()?, self.u64()?);
        let host = self.string()?;
        let pid = self.u32()?;
        let user = self.string()?;
        let (stdout_blake3, stderr_blake3) = (self.take()?, self.take()?);
        let format = self.u32()?;
        let outputs = Outputs {
            len: self.u64()?,
            blake3: self.take()?,
            count: self.u64()?,
            size: self.u64()?,
        };
        let seal = match self.u8()? {
            0 => None,
            1 => Some(Seal {
                public: self.take()?,
                signature: self.take()?,
            }),
            _ => return None,
        };
        let encoding = match self.u8()? {
            0 => Encoding::Raw,
            1 => Encoding::Zstd,
            _ => return None,
        };
        if !self.0.is_empty() {
            return None;
        }
        Some(Meta {
            key,
            namespace,
            argv,
            components,
            exit_code,
            stdout_len,
            stderr_len,
            runs,
            duration_ms,
            created_ms,
            host,
            pid,
            user,
            stdout_blake3,
            stderr_blake3,
            format,
            outputs,
            seal,
            encoding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cbor(meta: &Meta) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(meta, &mut out).unwrap();
        out
    }

    /// Every field comes back as it went (compared through the CBOR the
    /// entry file holds), and a packing cut anywhere is refused.
    #[test]
    fn round_trips_every_field() {
        let key = Key([7; 32]);
        let mut meta = Meta::blank(key);
        meta.namespace = "ns".into();
        meta.argv = vec![
            ByteBuf::from(b"echo".to_vec()),
            ByteBuf::from(vec![0xff, 0]),
        ];
        meta.components = vec![Component {
            label: "argv".into(),
            hash: [3; 32],
            shown: String::new(),
        }];
        meta.exit_code = -3;
        meta.stdout_len = 5;
        meta.stderr_len = 2;
        meta.runs = vec![
            Run {
                stream: Stream::Stdout,
                len: 5,
            },
            Run {
                stream: Stream::Stderr,
                len: 2,
            },
        ];
        (meta.duration_ms, meta.created_ms, meta.pid) = (9, 10, 11);
        (meta.host, meta.user) = ("h".into(), "u".into());
        (meta.stdout_blake3, meta.stderr_blake3) = ([4; 32], [5; 32]);
        meta.outputs = Outputs {
            len: 0,
            blake3: [6; 32],
            count: 2,
            size: 3,
        };
        meta.seal = Some(Seal {
            public: [8; 32],
            signature: [9; 64],
        });
        meta.encoding = Encoding::Zstd;
        let mut packed = Vec::new();
        pack(&meta, &mut packed);
        assert_eq!(cbor(&unpack(&packed, &key).unwrap()), cbor(&meta));
        for cut in 0..packed.len() {
            assert!(unpack(&packed[..cut], &key).is_err(), "cut at {cut}");
        }
        assert!(unpack(&packed, &Key([1; 32])).is_err(), "another key");
    }
}
