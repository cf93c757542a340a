//! Zip and squashfs archives (code bundles, data, volumes) unpacked into a directory, within
//! limits: no path leaves the directory, and the unpacked size and the number of entries are
//! bounded whatever the archive claims. Symlinks, devices, pipes and sockets are not unpacked.

use std::io::{Read, Write};

use std::path::Path;

/// Most entries an archive may have.
pub const MAX_ENTRIES: usize = 10_000;

/// Whether these bytes are a squashfs image (its magic, little-endian `hsqs`).
pub fn is_squashfs(bytes: &[u8]) -> bool {
    bytes.starts_with(b"hsqs")
}

/// Unpacks a zip or squashfs image (by its magic) into `dest` (created; must not exist). On
/// error nothing is left at `dest`.
pub fn unpack(archive: &[u8], dest: &Path, max_bytes: u64) -> Result<(), String> {
    if is_squashfs(archive) {
        unpack_with(dest, |dir| unpack_squashfs_into(archive, dir, max_bytes))
    } else {
        unpack_zip(archive, dest, max_bytes)
    }
}

/// Unpacks `zip` into `dest` (created; must not exist). On error nothing is left at `dest`.
pub fn unpack_zip(zip: &[u8], dest: &Path, max_bytes: u64) -> Result<(), String> {
    unpack_with(dest, |dir| unpack_into(zip, dir, max_bytes))
}

/// Runs `unpack` into a temporary directory next to `dest`, renamed to `dest` on success.
fn unpack_with(
    dest: &Path,
    unpack: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let partial = dest.with_extension("unpacking");
    let _ = std::fs::remove_dir_all(&partial);
    let result = unpack(&partial);
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
        write_bounded(&mut entry, &path, &mut left, max_bytes, i)?;
    }
    Ok(())
}

/// Writes one entry's bytes to `path`, taking them from the archive's budget `left`. Reads one
/// byte past what is left: an entry larger than its budget is refused without inflating more.
fn write_bounded(
    entry: &mut impl Read,
    path: &Path,
    left: &mut u64,
    max_bytes: u64,
    index: usize,
) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let mut file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut limited = entry.take(*left + 1);
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let n = limited
            .read(&mut buffer)
            .map_err(|e| format!("entry {index}: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        if n as u64 > *left {
            return Err(format!("unpacks to more than {max_bytes} bytes"));
        }
        *left -= n as u64;
        file.write_all(&buffer[..n]).map_err(|e| e.to_string())?;
    }
}

/// A squashfs image's regular files and directories, within the same bounds as zip.
fn unpack_squashfs_into(image: &[u8], dir: &Path, max_bytes: u64) -> Result<(), String> {
    // The reader parses untrusted tables: a panic inside it is an invalid image, not a crash
    // (only files under `dir`, which the caller deletes on error, are touched meanwhile).
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_squashfs_into(image, dir, max_bytes)
    }))
    .unwrap_or_else(|_| Err("not a squashfs image this node can read".to_owned()))
}

fn read_squashfs_into(image: &[u8], dir: &Path, max_bytes: u64) -> Result<(), String> {
    let parsed = backhand::FilesystemReader::from_reader(std::io::Cursor::new(image.to_vec()))
        .map_err(|e| format!("not a squashfs image: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut left = max_bytes;
    for (i, node) in parsed.files().enumerate() {
        if i > MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} entries"));
        }
        let mut relative = std::path::PathBuf::new();
        for part in node.fullpath.components() {
            match part {
                std::path::Component::Normal(name) => relative.push(name),
                std::path::Component::RootDir | std::path::Component::CurDir => {}
                _ => return Err(format!("entry {i} leaves the image: {:?}", node.fullpath)),
            }
        }
        let path = dir.join(&relative);
        match &node.inner {
            backhand::InnerNode::Dir(_) => {
                std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            }
            backhand::InnerNode::File(file) => {
                let mut reader = parsed.file(file).reader();
                write_bounded(&mut reader, &path, &mut left, max_bytes, i)?;
            }
            // Links could point outside; devices, pipes and sockets mean nothing here.
            _ => {}
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

    /// A squashfs image made by `mksquashfs` (squashfs-tools), when it is installed (the test
    /// command installs it for the microVM runtime).
    fn squashfs_of(dir: &Path) -> Option<Vec<u8>> {
        let image = dir.with_extension("sqsh");
        let status = std::process::Command::new("mksquashfs")
            .arg(dir)
            .arg(&image)
            .args(["-noappend", "-quiet"])
            .stdout(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| std::fs::read(&image).ok())?
    }

    #[test]
    fn unpacks_squashfs_images_within_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("src");
        std::fs::create_dir_all(source.join("static")).unwrap();
        std::fs::write(source.join("app.wasm"), b"\0asm").unwrap();
        std::fs::write(source.join("static/big"), vec![7u8; 300_000]).unwrap();
        let Some(image) = squashfs_of(&source) else {
            // The test command installs squashfs-tools (with the microVM runtime) first.
            assert!(
                std::env::var_os("RALEPH_PYTHON_RUNTIME_DIR").is_none(),
                "mksquashfs is missing"
            );
            return;
        };
        assert!(is_squashfs(&image));
        let dest = tmp.path().join("out");
        unpack(&image, &dest, 1 << 20).unwrap();
        assert_eq!(std::fs::read(dest.join("app.wasm")).unwrap(), b"\0asm");
        assert_eq!(
            std::fs::read(dest.join("static/big")).unwrap().len(),
            300_000
        );
        let err = unpack(&image, &tmp.path().join("small"), 100_000).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        assert!(!tmp.path().join("small").exists());
        let mut broken = image.clone();
        broken.truncate(200);
        assert!(unpack(&broken, &tmp.path().join("broken"), 1 << 20).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_squashfs_bytes_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let tmp = tempfile::tempdir().unwrap();
            let mut bytes = b"hsqs".to_vec();
            bytes.extend(tail);
            let _ = unpack(&bytes, &tmp.path().join("x"), 1 << 16);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let tmp = tempfile::tempdir().unwrap();
            let _ = unpack_zip(&bytes, &tmp.path().join("x"), 1 << 16);
        }
    }
}
