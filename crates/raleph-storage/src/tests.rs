use super::*;

fn store() -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open(dir.path()).expect("open");
    (dir, store)
}

#[test]
fn known_identifiers() -> Result<(), StorageError> {
    let (_dir, store) = store();
    let info = store.put_bytes(br#"{"hello":"world"}"#, false)?;
    assert_eq!(
        info.sha256,
        "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588"
    );
    assert_eq!(
        info.cid_v0,
        "QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen"
    );
    assert_eq!(
        store.put_bytes(b"", false)?.cid_v0,
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    );
    for id in info.ids() {
        assert_eq!(
            store.get(id)?.as_deref(),
            Some(&br#"{"hello":"world"}"#[..])
        );
    }
    Ok(())
}

#[test]
fn streaming_equals_one_shot() -> Result<(), StorageError> {
    let (_dir, store) = store();
    // Larger than the size past which CIDs are hashed on a second thread.
    let bytes: Vec<u8> = (0..9_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let one_shot = store.put_bytes(&bytes, true)?;
    let mut writer = store.writer(u64::MAX, true)?;
    for chunk in bytes.chunks(65_521) {
        writer.write(chunk)?;
    }
    let streamed = writer.finish()?.commit()?;
    assert_eq!(one_shot, streamed);
    assert!(
        streamed
            .cid_v1
            .as_deref()
            .is_some_and(|c| c.starts_with("bafy"))
    );
    Ok(())
}

#[test]
fn limits_and_discards_leave_nothing() -> Result<(), StorageError> {
    let (dir, store) = store();
    let mut writer = store.writer(10, false)?;
    assert!(writer.write(b"0123456789").is_ok());
    assert!(matches!(
        writer.write(b"x"),
        Err(StorageError::TooLarge { limit: 10 })
    ));
    drop(writer);
    let pending = store.writer(100, false)?;
    let mut pending = pending;
    pending.write(b"refused later")?;
    let pending = pending.finish()?;
    let sha = pending.info().sha256.clone();
    drop(pending);
    assert!(!store.contains(&sha));
    assert_eq!(std::fs::read_dir(dir.path().join("tmp"))?.count(), 0);
    assert!(store.list()?.is_empty());
    Ok(())
}

#[test]
fn hostile_names_are_refused() -> Result<(), StorageError> {
    let (_dir, store) = store();
    for name in ["../../etc/passwd", "sha256/../meta", "", "QmXXXX/../../x"] {
        assert!(store.get(name)?.is_none());
        assert!(store.resolve(name).is_err());
    }
    assert_eq!(store.get(&"0".repeat(64))?, None);
    Ok(())
}

#[test]
fn delete_removes_every_name() -> Result<(), StorageError> {
    let (_dir, store) = store();
    let info = store.put_bytes(b"to be deleted", true)?;
    store.delete(&info.sha256)?;
    for id in info.ids() {
        assert!(!store.contains(id));
    }
    assert!(store.list()?.is_empty());
    Ok(())
}

#[test]
fn interrupted_uploads_are_swept() -> Result<(), StorageError> {
    let (dir, store) = store();
    let kept = store.put_bytes(b"kept", false)?;
    let mut interrupted = store.writer(u64::MAX, false)?;
    interrupted.write(b"half an upload")?;
    // A stop: the writer's temporary file is left behind.
    std::mem::forget(interrupted);
    std::fs::write(dir.path().join("tmp").join("stray"), b"x")?;
    assert!(store.sweep_temporary()? >= 2);
    assert_eq!(std::fs::read_dir(dir.path().join("tmp"))?.count(), 0);
    assert!(store.contains(&kept.sha256));
    Ok(())
}
