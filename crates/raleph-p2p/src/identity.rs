//! The node's libp2p identity key file.
//!
//! Reference nodes accept only RSA and Ed25519 identities (p2p.md §1.3): with a secp256k1 or
//! ECDSA key they reset the connection right after Noise. A new node gets an Ed25519 key; an
//! operator replacing a pyaleph node points `key` at its `node-secret.pkcs8.der` (RSA-2048,
//! PKCS#8 DER) so the peer id registered in the `corechannel` aggregate stays the same.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use libp2p::identity::{KeyType, Keypair};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("identity key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "identity key file {path} holds a {kind} key; reference Aleph nodes accept only RSA and \
         Ed25519 identities (p2p.md §1.3)"
    )]
    UnsupportedKeyType { path: PathBuf, kind: String },
    #[error(
        "identity key file {path} is neither a protobuf-encoded libp2p keypair nor an RSA \
         PKCS#8 DER private key"
    )]
    Unreadable { path: PathBuf },
    #[error("cannot encode the new identity key: {0}")]
    Encode(String),
}

/// DER of the id-ecPublicKey algorithm OID (1.2.840.10045.2.1), found in EC PKCS#8 keys.
const EC_PUBLIC_KEY_OID: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];

/// Loads the identity at `path`, or creates an Ed25519 one there if the file does not exist.
///
/// The file may hold a protobuf-encoded libp2p keypair (what this function writes) or an RSA
/// PKCS#8 DER private key (the reference's `node-secret.pkcs8.der`). A new key is written with
/// mode 0600 through a temporary file and a rename, so a crash never leaves half a key.
pub fn load_or_create_identity(path: &Path) -> Result<Keypair, IdentityError> {
    let io_err = |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    };
    match fs::read(path) {
        Ok(bytes) => decode_identity(path, bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let encoded = keypair
                .to_protobuf_encoding()
                .map_err(|e| IdentityError::Encode(e.to_string()))?;
            write_private(path, &encoded).map_err(io_err)?;
            Ok(keypair)
        }
        Err(e) => Err(io_err(e)),
    }
}

fn decode_identity(path: &Path, mut bytes: Vec<u8>) -> Result<Keypair, IdentityError> {
    let unsupported = |kind: &str| IdentityError::UnsupportedKeyType {
        path: path.to_path_buf(),
        kind: kind.to_string(),
    };
    // A protobuf keypair starts with field 1 (the key type) as a varint: 0x08 then the type.
    // Refuse secp256k1 (2) and ECDSA (3) by name rather than with a generic decoding error.
    match bytes.as_slice() {
        [0x08, 2, ..] => return Err(unsupported("secp256k1")),
        [0x08, 3, ..] => return Err(unsupported("ECDSA")),
        _ => {}
    }
    let keypair = if bytes.first() == Some(&0x30) {
        // DER starts with a SEQUENCE tag; try PKCS#8 first.
        if bytes
            .windows(EC_PUBLIC_KEY_OID.len())
            .any(|w| w == EC_PUBLIC_KEY_OID)
        {
            return Err(unsupported("elliptic-curve (ECDSA or secp256k1)"));
        }
        Keypair::rsa_from_pkcs8(&mut bytes.clone())
            .or_else(|_| Keypair::from_protobuf_encoding(&bytes))
    } else {
        Keypair::from_protobuf_encoding(&bytes).or_else(|_| Keypair::rsa_from_pkcs8(&mut bytes))
    }
    .map_err(|_| IdentityError::Unreadable {
        path: path.to_path_buf(),
    })?;
    match keypair.key_type() {
        KeyType::Ed25519 | KeyType::RSA => Ok(keypair),
        other => Err(unsupported(&format!("{other:?}"))),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "key path has no file name"))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reloads_the_same_ed25519_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/node.key");
        let created = load_or_create_identity(&path).unwrap();
        assert_eq!(created.key_type(), KeyType::Ed25519);
        let loaded = load_or_create_identity(&path).unwrap();
        assert_eq!(created.public().to_peer_id(), loaded.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn loads_an_rsa_pkcs8_der_key() {
        use rsa::pkcs8::EncodePrivateKey;
        let mut rng = rand::thread_rng();
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let der = key.to_pkcs8_der().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-secret.pkcs8.der");
        fs::write(&path, der.as_bytes()).unwrap();
        let keypair = load_or_create_identity(&path).unwrap();
        assert_eq!(keypair.key_type(), KeyType::RSA);
        // RSA peer ids are SHA2-256 multihashes: "Qm…".
        assert!(keypair.public().to_peer_id().to_base58().starts_with("Qm"));
    }

    #[test]
    fn garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk");
        for junk in [&b""[..], b"hello world", &[0x30, 0x82, 0xff], &[0xff; 64]] {
            fs::write(&path, junk).unwrap();
            let err = load_or_create_identity(&path).unwrap_err();
            assert!(
                matches!(err, IdentityError::Unreadable { .. }),
                "{junk:?}: {err}"
            );
        }
    }

    #[test]
    fn secp256k1_and_ecdsa_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        // Protobuf-encoded keypairs of the refused types (type 2 and 3, dummy data).
        for (bytes, name) in [
            (vec![0x08, 2, 0x12, 1, 0], "secp256k1"),
            (vec![0x08, 3], "ECDSA"),
        ] {
            fs::write(&path, bytes).unwrap();
            let err = load_or_create_identity(&path).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
