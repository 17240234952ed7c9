//! `supctl keys init`: the Ed25519 key pair that signs tokens, and the registry's personal-data
//! key (64 hex digits) that encrypts and blind-indexes experts' personal data.

use std::{fs, path::PathBuf};

use anyhow::Context;
use clap::Subcommand;
use supervision_kit::{auth::generate_key_pair, personal::PersonalDataKey};

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Creates `token-private.pem`, `token-public.pem` and `personal-data.key` in DIR unless they
    /// exist (an existing personal-data key is never replaced: data encrypted with it would be
    /// lost).
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
    let personal = dir.join("personal-data.key");
    let personal_created = if personal.exists() {
        false
    } else {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_private(&personal, &format!("{}\n", PersonalDataKey::generate_hex()))?;
        true
    };
    out.record(&serde_json::json!({
        "private_key": private.display().to_string(),
        "public_key": public.display().to_string(),
        "created": created.to_string(),
        "personal_data_key": personal.display().to_string(),
        "personal_data_key_created": personal_created.to_string(),
    }));
    Ok(())
}

/// Writes a secret readable by its owner only (0600 on Unix), refusing to overwrite a file.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_private_personal_data_key_once() {
        let dir = std::env::temp_dir().join(format!("supctl-keys-{}", uuid::Uuid::new_v4().simple()));
        let out = Output::new(crate::output::Format::Json);
        run(KeysCommand::Init { dir: dir.clone() }, &out).unwrap();
        let path = dir.join("personal-data.key");
        let first = fs::read_to_string(&path).unwrap();
        assert!(PersonalDataKey::from_hex(first.trim()).is_ok(), "64 hex digits");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        run(KeysCommand::Init { dir: dir.clone() }, &out).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), first, "an existing key is kept");
        fs::remove_dir_all(dir).unwrap();
    }
}
