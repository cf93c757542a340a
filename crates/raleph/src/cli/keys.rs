//! `raleph key`: make, import and show signing keys. Secrets never come from the command
//! line (where `ps` and shell history would keep them): `import` reads them from stdin or a
//! file. Key files are written readable by their owner only, and never overwritten.

use std::path::PathBuf;

use anyhow::Context;
use raleph_sdk::{Chain, Signer};
use serde_json::json;

use super::output::{self, out};
use super::settings::{Settings, parse_key, write_key};

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Create a new key (ETH unless --chain SOL) and print its address.
    New {
        /// Where to write it [default: --key, the profile's key, else ./raleph-key.hex].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a key read from stdin (or --from-file): hex, a BIP-39 mnemonic (ETH at
    /// m/44'/60'/0'/0/0 as eth_account and MetaMask, SOL at m/44'/501'/0'/0' as Phantom), or
    /// for SOL a keypair (a JSON array of 64 bytes, or its base58 text).
    Import {
        /// Where to write it [default: as for `key new`].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Read the secret from this file instead of stdin.
        #[arg(long, value_name = "PATH")]
        from_file: Option<PathBuf>,
        /// Another derivation path for a mnemonic (every index hardened for SOL).
        #[arg(long, value_name = "PATH")]
        derivation_path: Option<String>,
        /// A file holding the mnemonic's passphrase (BIP-39 "25th word"), if it has one.
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
    },
    /// Show the key's address, chain and public key.
    Show,
}

/// A key file's text: hex for ETH (as before), the `solana-keygen` JSON array for SOL.
fn key_file_text(signer: &Signer) -> String {
    match signer {
        Signer::Eth(_) => hex::encode(signer.secret_bytes()),
        Signer::Sol(inner) => {
            let mut bytes = signer.secret_bytes().to_vec();
            bytes.extend(inner.public_key());
            serde_json::to_string(&bytes).unwrap_or_default()
        }
    }
}

fn describe(signer: &Signer, path: &std::path::Path) -> serde_json::Value {
    json!({
        "address": signer.address(),
        "chain": signer.chain().as_str(),
        "public_key": signer.public_key(),
        "key_file": path,
    })
}

fn save(settings: &Settings, signer: &Signer, out: Option<PathBuf>) -> anyhow::Result<()> {
    let path = out.unwrap_or_else(|| settings.key.value.clone());
    write_key(&path, &key_file_text(signer))?;
    output::print(settings.json, &describe(signer, &path), || {
        out!("{}", signer.address());
        eprintln!("{} key written to {}", signer.chain(), path.display());
    })
}

/// The secret's text, as given: a mnemonic, hex, or a SOL keypair.
fn import(
    text: &str,
    chain: Chain,
    path: Option<&str>,
    passphrase: &str,
) -> anyhow::Result<Signer> {
    let text = text.trim();
    anyhow::ensure!(
        !text.is_empty(),
        "no key given: pipe it on stdin, or pass --from-file PATH"
    );
    // A keypair file's JSON array may be written with spaces: not a mnemonic.
    if text.starts_with('[') {
        anyhow::ensure!(
            path.is_none() && passphrase.is_empty(),
            "--derivation-path and --passphrase-file apply to a mnemonic only"
        );
        return parse_key(text, chain);
    }
    let words = text.split_whitespace().count();
    if words >= 12 {
        let signer = match path {
            Some(path) => Signer::from_mnemonic_path(chain, text, passphrase, path)?,
            None => Signer::from_mnemonic(chain, text, passphrase)?,
        };
        return Ok(signer);
    }
    anyhow::ensure!(
        path.is_none() && passphrase.is_empty(),
        "--derivation-path and --passphrase-file apply to a mnemonic only"
    );
    anyhow::ensure!(
        words == 1,
        "not a key: expected hex, a mnemonic of 12 to 24 words, or a SOL keypair"
    );
    let is_hex = text
        .trim_start_matches("0x")
        .bytes()
        .all(|b| b.is_ascii_hexdigit());
    if chain == Chain::Sol && !is_hex {
        // Phantom's "export private key": base58 of the 64-byte keypair.
        if let Ok(bytes) = bs58::decode(text).into_vec() {
            return Ok(Signer::from_bytes(Chain::Sol, &bytes)?);
        }
    }
    parse_key(text, chain)
}

pub fn run(cmd: KeyCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::New { out } => {
            let signer = Signer::generate(settings.chain.value)?;
            save(settings, &signer, out)
        }
        KeyCommand::Import {
            out,
            from_file,
            derivation_path,
            passphrase_file,
        } => {
            let text = match &from_file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("read {}", path.display()))?,
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        eprintln!("paste the key or mnemonic, then a new line and ctrl-d:");
                    }
                    std::io::read_to_string(std::io::stdin()).context("read the key from stdin")?
                }
            };
            let passphrase = match &passphrase_file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("read {}", path.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                None => String::new(),
            };
            let signer = import(
                &text,
                settings.chain.value,
                derivation_path.as_deref(),
                &passphrase,
            )?;
            save(settings, &signer, out)
        }
        KeyCommand::Show => {
            let signer = settings.signer()?;
            let path = &settings.key.value;
            output::print(settings.json, &describe(&signer, path), || {
                out!("address:    {}", signer.address());
                out!("chain:      {}", signer.chain());
                out!("public key: {}", signer.public_key());
                out!("key file:   {}", path.display());
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports() {
        let phrase = "test test test test test test test test test test test junk";
        let eth = import(&format!("  {phrase}\n"), Chain::Eth, None, "").unwrap();
        assert_eq!(eth.address(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        let hex_key = import(&hex::encode(eth.secret_bytes()), Chain::Eth, None, "").unwrap();
        assert_eq!(hex_key.address(), eth.address());

        let sol = Signer::generate(Chain::Sol).unwrap();
        let file = key_file_text(&sol);
        assert_eq!(
            import(&file, Chain::Eth, None, "").unwrap().address(),
            sol.address()
        );
        let spaced = file.replace(',', ", ");
        assert_eq!(
            import(&spaced, Chain::Sol, None, "").unwrap().address(),
            sol.address()
        );
        let Signer::Sol(inner) = &sol else {
            unreachable!()
        };
        let mut keypair = sol.secret_bytes().to_vec();
        keypair.extend(inner.public_key());
        let b58 = bs58::encode(&keypair).into_string();
        assert_eq!(
            import(&b58, Chain::Sol, None, "").unwrap().address(),
            sol.address()
        );

        for bad in [
            "",
            "one two",
            "xyz",
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon",
        ] {
            assert!(import(bad, Chain::Eth, None, "").is_err(), "{bad}");
        }
    }
}
