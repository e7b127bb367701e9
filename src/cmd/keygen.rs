//! `cachier keygen FILE`: a new Ed25519 key pair for signed entries. The
//! private key (the seed and its public key, 128 hex digits: a hit then
//! never derives the public key) goes to a new 0600 file (or to stdout when
//! it is a pipe, for a secret store), the public key to stdout (stderr in
//! that case).
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Result;
use zeroize::Zeroizing;

use crate::cli::KeygenArgs;
use crate::error::Exit;
use crate::sign;

pub fn run(args: &KeygenArgs) -> Result<u8> {
    let key = sign::generate()?;
    let seed = Zeroizing::new(format!("{}\n", hex::encode(key.to_keypair_bytes())));
    let public = hex::encode(key.verifying_key().to_bytes());
    let fingerprint = sign::fingerprint(&key.verifying_key().to_bytes());
    if args.out.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        if out.is_terminal() {
            return Err(Exit::usage(
                "keygen -: will not print a private key on a terminal; name a file, or pipe it to your secret store",
            ));
        }
        out.write_all(seed.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Exit::failed(format!("keygen: cannot write the private key: {e}")))?;
        crate::warn::line(&format!("public key {public} ({fingerprint})"));
        return Ok(0);
    }
    let shown = args.out.display();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Exit::usage(format!(
                "keygen: {shown} exists; keygen never overwrites a key, name a new file"
            )),
            _ => Exit::failed(format!("keygen: cannot create {shown}: {e}")),
        })?;
    if let Err(e) = file
        .write_all(seed.as_bytes())
        .and_then(|()| file.sync_all())
    {
        let _ = std::fs::remove_file(&args.out);
        return Err(Exit::failed(format!("keygen: cannot write {shown}: {e}")));
    }
    println!("{public}");
    crate::warn::line(&format!(
        "wrote the private key to {shown} (mode 0600): give writers signing_key_file = \"{shown}\" \
         or CACHIER_SIGNING_KEY, and every reader CACHIER_TRUSTED_KEYS={public} ({fingerprint})"
    ));
    Ok(0)
}
