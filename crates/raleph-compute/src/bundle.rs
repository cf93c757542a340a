//! Zip archives (code bundles, data, volumes) unpacked into a directory, within limits: no
//! path leaves the directory, and the unpacked size and the number of entries are bounded
//! whatever the archive claims.

use std::io::{Read, Write};
use std::path::Path;

/// Most entries an archive may have.
pub const MAX_ENTRIES: usize = 10_000;

/// Unpacks `zip` into `dest` (created; must not exist). On error nothing is left at `dest`.
pub fn unpack_zip(zip: &[u8], dest: &Path, max_bytes: u64) -> Result<(), String> {
    let partial = dest.with_extension("unpacking");
    let _ = std::fs::remove_dir_all(&partial);
    let result = unpack_into(zip, &partial, max_bytes);
    match result.and_then(|()| std::fs::rename(&partial, dest).map_err(|e| e.to_string())) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

fn unpack_into(zip: &[u8], dir: &Path, max_bytes: u64) -> Result<(), String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| format!("not a zip: {e}"))?;
    if archive.len() > MAX_ENTRIES {
        return Err(format!("more than {MAX_ENTRIES} entries"));
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut left = max_bytes;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(format!("entry {i} leaves the archive: {:?}", entry.name()));
        };
        let path = dir.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        // Read one byte past what is left: an entry larger than its budget is refused
        // without inflating more than that.
        let mut limited = (&mut entry).take(left + 1);
        let mut buffer = [0u8; 64 * 1024];
        loop {
            let n = limited
                .read(&mut buffer)
                .map_err(|e| format!("entry {i}: {e}"))?;
            if n == 0 {
                break;
            }
            if n as u64 > left {
                return Err(format!("unpacks to more than {max_bytes} bytes"));
            }
            left -= n as u64;
            file.write_all(&buffer[..n]).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut out);
        for (name, data) in entries {
            writer
                .start_file(*name, SimpleFileOptions::default())
                .unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn unpacks_files_in_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let zip = zip_of(&[("app.wasm", b"\0asm"), ("static/index.html", b"<p>hi</p>")]);
        unpack_zip(&zip, &dest, 1 << 20).unwrap();
        assert_eq!(std::fs::read(dest.join("app.wasm")).unwrap(), b"\0asm");
        assert_eq!(
            std::fs::read(dest.join("static/index.html")).unwrap(),
            b"<p>hi</p>"
        );
    }

    #[test]
    fn refuses_paths_that_leave_and_bombs() {
        let tmp = tempfile::tempdir().unwrap();
        let escape = zip_of(&[("../evil", b"x")]);
        assert!(unpack_zip(&escape, &tmp.path().join("a"), 1 << 20).is_err());
        assert!(!tmp.path().join("evil").exists());
        assert!(!tmp.path().join("a").exists());
        let big = vec![0u8; 2 << 20];
        let bomb = zip_of(&[("zeros", &big)]);
        let err = unpack_zip(&bomb, &tmp.path().join("b"), 1 << 20).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        assert!(!tmp.path().join("b").exists());
        assert!(unpack_zip(b"not a zip", &tmp.path().join("c"), 1 << 20).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let tmp = tempfile::tempdir().unwrap();
            let _ = unpack_zip(&bytes, &tmp.path().join("x"), 1 << 16);
        }
    }
}
