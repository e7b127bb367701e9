//! `cachier precache`: store a given result under the key the same options
//! would compute, so a later `run` hits it (Python cachier's precache_value).
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::PrecacheArgs;
use crate::entry::{Meta, Output, Run, Stream};
use crate::error::Exit;
use crate::key;
use crate::settings::Settings;
use crate::store::{self, Spool};

pub fn run(settings: &Settings, args: &PrecacheArgs) -> Result<u8> {
    let from_stdin = args.stdout_file == Path::new("-");
    if from_stdin && args.key.opts.stdin {
        return Err(Exit::usage(
            "--stdout - and --stdin both want standard input; give --stdout a file",
        ));
    }
    let mut stdout = open(&args.stdout_file, from_stdin)?;
    let mut stderr = match &args.stderr_file {
        Some(path) => Some(open(path, false)?),
        None => None,
    };
    let trust = crate::sign::Trust::load(settings.signing_key_file.as_deref())?;
    trust.ready()?;
    let material = key::derive(
        &super::key_spec(&args.key.opts, settings),
        &args.key.command,
    )?;
    let store = store::open(settings);
    super::writable(&store, "precache")?;
    let mut spool = store.begin(&material.key)?;
    let mut lens = [0u64; 2];
    let mut hashes = [[0u8; 32]; 2];
    for (i, (stream, input)) in [
        (Stream::Stdout, Some(&mut stdout)),
        (Stream::Stderr, stderr.as_mut()),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(input) = input {
            (lens[i], hashes[i]) = copy(input.as_mut(), stream, spool.as_mut())?;
        } else {
            hashes[i] = *blake3::hash(b"").as_bytes();
        }
    }
    let runs = [(Stream::Stdout, lens[0]), (Stream::Stderr, lens[1])]
        .into_iter()
        .filter(|(_, len)| *len > 0)
        .map(|(stream, len)| Run { stream, len })
        .collect();
    // `--output`: the files as they are now, as a run would have left them.
    let declared = crate::outputs::Declared::parse(&args.key.opts.output)?;
    let files = if declared.is_empty() {
        Default::default()
    } else {
        crate::outputs::capture_into(&declared, spool.as_mut(), None)
            .map_err(|why| Exit::usage(format!("cannot store the --output files: {why}")))?
    };
    let mut meta = Meta::made_now(
        &material,
        args.exit_code,
        Output { lens, hashes, runs },
        Duration::ZERO,
    );
    meta.outputs = files;
    // (Signed last: the seal covers the outputs.)
    trust.sign(&mut meta)?;
    spool.commit(&meta)?;
    writeln!(std::io::stdout(), "{}", material.key)?;
    Ok(0)
}

fn open(path: &Path, stdin: bool) -> Result<Box<dyn Read>> {
    if stdin {
        return Ok(Box::new(io::stdin().lock()));
    }
    let file = File::open(path)
        .map_err(|e| Exit::usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(Box::new(file))
}

/// Stream `input` into the spool, hashing it; constant memory.
fn copy(input: &mut dyn Read, stream: Stream, spool: &mut dyn Spool) -> Result<(u64, [u8; 32])> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read the output to store"),
        };
        hasher.update(&buf[..n]);
        spool
            .write(stream, &buf[..n])
            .context("cannot write the cache entry")?;
        len += n as u64;
    }
    Ok((len, *hasher.finalize().as_bytes()))
}
