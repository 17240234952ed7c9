//! `supctl keys init`: the Ed25519 key pair that signs tokens.

use std::{fs, path::PathBuf};

use anyhow::Context;
use clap::Subcommand;
use supervision_kit::auth::generate_key_pair;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Creates `token-private.pem` and `token-public.pem` in DIR unless they exist.
    Init {
        #[arg(long, default_value = "data/dev-keys")]
        dir: PathBuf,
    },
}

pub fn run(command: KeysCommand, out: &Output) -> anyhow::Result<()> {
    let KeysCommand::Init { dir } = command;
    let private = dir.join("token-private.pem");
    let public = dir.join("token-public.pem");
    let created = if private.exists() && public.exists() {
        false
    } else {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let (private_pem, public_pem) = generate_key_pair()?;
        write_private(&private, &private_pem)?;
        fs::write(&public, public_pem).with_context(|| format!("cannot write {}", public.display()))?;
        true
    };
    out.record(&serde_json::json!({
        "private_key": private.display().to_string(),
        "public_key": public.display().to_string(),
        "created": created.to_string(),
    }));
    Ok(())
}

fn write_private(path: &PathBuf, pem: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(pem.as_bytes())?;
        Ok(())
    }
    #[cfg(not(unix))]
    {
        fs::write(path, pem).with_context(|| format!("cannot write {}", path.display()))
    }
}
