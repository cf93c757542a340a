//! Files: records of the files the node holds, STORE pins and file tags, grace pins, and the
//! volumes programs and instances use.

use super::{Session, Value, first, strings};
use crate::conn::exists;
use crate::{FilePinFacts, FileRecord, NewFilePin, NewVm, Result, VmFacts};

/// The file is held by a message now: a grace pin has done its job.
pub(crate) fn claim(s: &mut dyn Session, file: &str) -> Result<()> {
    s.execute(
        "DELETE FROM grace_pins WHERE file_hash IN
             (SELECT hash FROM files WHERE hash = $1 OR cid_v0 = $1 OR cid_v1 = $1)",
        &[Value::Text(file)],
    )
    .map(drop)
}

/// A pin on `file` (any of its identifiers) went away: if none remains, the file lives on
/// until `grace_until`, then the garbage collector may delete it.
pub(crate) fn release(s: &mut dyn Session, file: &str, grace_until: f64) -> Result<()> {
    let sha256 = first(
        s,
        "SELECT hash FROM files WHERE hash = $1 OR cid_v0 = $1 OR cid_v1 = $1 LIMIT 1",
        &[Value::Text(file)],
        |r| r.text(0),
    )?;
    match sha256 {
        Some(sha256) if !is_pinned(s, &sha256)? => grace_pin(s, &sha256, grace_until),
        _ => Ok(()),
    }
}

/// Whether a message holds the file: a STORE pin or a message whose content it is.
pub(crate) fn is_pinned(s: &mut dyn Session, sha256: &str) -> Result<bool> {
    exists(
        s,
        "SELECT 1 FROM files f WHERE f.hash = $1 AND (
             EXISTS (SELECT 1 FROM file_pins p WHERE p.file_hash IN (f.hash, f.cid_v0, coalesce(f.cid_v1, '')))
             OR EXISTS (SELECT 1 FROM messages m WHERE m.item_hash IN (f.hash, f.cid_v0, coalesce(f.cid_v1, ''))
                        AND m.item_type != 'inline'))",
        &[Value::Text(sha256)],
    )
}

/// Keeps the file alive until `until` without a pin (the later of two grace pins wins).
pub(crate) fn grace_pin(s: &mut dyn Session, sha256: &str, until: f64) -> Result<()> {
    s.execute(
        "INSERT INTO grace_pins (file_hash, until) VALUES ($1, $2)
         ON CONFLICT (file_hash) DO UPDATE SET until = CASE
             WHEN excluded.until > grace_pins.until THEN excluded.until ELSE grace_pins.until END",
        &[Value::Text(sha256), Value::Real(until)],
    )
    .map(drop)
}

pub(crate) fn insert_pin(s: &mut dyn Session, pin: &NewFilePin) -> Result<()> {
    let is_update = pin.tag != pin.message_hash.as_str();
    s.execute(
        "INSERT INTO file_pins (message_hash, file_hash, owner, tag, created, is_update)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            (&pin.message_hash).into(),
            (&pin.file_hash).into(),
            (&pin.owner).into(),
            (&pin.tag).into(),
            pin.created.into(),
            Value::Bool(is_update),
        ],
    )?;
    claim(s, &pin.file_hash)?;
    refresh_tag(s, &pin.tag)
}

pub(crate) fn pin(s: &mut dyn Session, message_hash: &str) -> Result<Option<FilePinFacts>> {
    first(
        s,
        "SELECT file_hash, owner, tag, is_update FROM file_pins WHERE message_hash = $1",
        &[Value::Text(message_hash)],
        |r| {
            Ok(FilePinFacts {
                file_hash: r.text(0)?,
                owner: r.text(1)?,
                tag: r.text(2)?,
                is_update: r.boolean(3)?,
            })
        },
    )
}

pub(crate) fn tag_exists(s: &mut dyn Session, tag: &str) -> Result<bool> {
    exists(
        s,
        "SELECT 1 FROM file_tags WHERE tag = $1",
        &[Value::Text(tag)],
    )
}

/// Points the tag at its newest pin (none left: the tag goes).
pub(crate) fn refresh_tag(s: &mut dyn Session, tag: &str) -> Result<()> {
    s.execute("DELETE FROM file_tags WHERE tag = $1", &[Value::Text(tag)])?;
    s.execute(
        "INSERT INTO file_tags (tag, owner, file_hash, message_hash, last_updated)
         SELECT tag, owner, file_hash, message_hash, created FROM file_pins WHERE tag = $1
         ORDER BY created DESC, message_hash DESC LIMIT 1",
        &[Value::Text(tag)],
    )
    .map(drop)
}

/// Records a file the node holds; `grace_until` keeps it alive until then without pins.
pub(crate) fn record(
    s: &mut dyn Session,
    file: &FileRecord,
    grace_until: Option<f64>,
) -> Result<()> {
    s.execute(
        "INSERT INTO files (hash, size, cid_v0, cid_v1, created) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (hash) DO UPDATE SET cid_v1 = coalesce(excluded.cid_v1, files.cid_v1)",
        &[
            (&file.sha256).into(),
            Value::Int(i64::try_from(file.size).unwrap_or(i64::MAX)),
            (&file.cid_v0).into(),
            (&file.cid_v1).into(),
            file.created.into(),
        ],
    )?;
    // A grace pin only keeps an unclaimed file alive: a file a message holds needs none.
    if let Some(until) = grace_until
        && !is_pinned(s, &file.sha256)?
    {
        grace_pin(s, &file.sha256, until)?;
    }
    Ok(())
}

/// The size of the file a volume reference designates (a STORE message hash, or a file tag
/// when `use_latest`), when the node knows it.
pub(crate) fn volume_size(
    s: &mut dyn Session,
    reference: &str,
    use_latest: bool,
) -> Result<Option<u64>> {
    let tagged = if use_latest {
        strings(
            s,
            "SELECT file_hash FROM file_tags WHERE tag = $1",
            &[Value::Text(reference)],
        )?
        .into_iter()
        .next()
    } else {
        None
    };
    let file_hash = match tagged {
        Some(hash) => Some(hash),
        None => pin(s, reference)?.map(|p| p.file_hash),
    };
    let Some(file_hash) = file_hash else {
        return Ok(None);
    };
    first(
        s,
        "SELECT size FROM files WHERE hash = $1 OR cid_v0 = $1 OR cid_v1 = $1 LIMIT 1",
        &[Value::Text(&file_hash)],
        |r| r.count(0),
    )
}

pub(crate) fn known(s: &mut dyn Session, sha256: &str) -> Result<bool> {
    exists(
        s,
        "SELECT 1 FROM files WHERE hash = $1",
        &[Value::Text(sha256)],
    )
}

pub(crate) fn insert_vm(s: &mut dyn Session, vm: &NewVm) -> Result<()> {
    s.execute(
        "INSERT INTO vms (item_hash, owner, type, allow_amend, replaces, created)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            (&vm.item_hash).into(),
            (&vm.owner).into(),
            (&vm.vm_type).into(),
            Value::Bool(vm.allow_amend),
            (&vm.replaces).into(),
            vm.created.into(),
        ],
    )?;
    for reference in &vm.volume_refs {
        s.execute(
            "INSERT INTO vm_volumes (vm_hash, ref) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[(&vm.item_hash).into(), reference.into()],
        )?;
    }
    Ok(())
}

pub(crate) fn vm_facts(s: &mut dyn Session, item_hash: &str) -> Result<Option<VmFacts>> {
    first(
        s,
        "SELECT owner, allow_amend, replaces FROM vms WHERE item_hash = $1",
        &[Value::Text(item_hash)],
        |r| {
            Ok(VmFacts {
                owner: r.text(0)?,
                allow_amend: r.boolean(1)?,
                replaces: r.opt_text(2)?,
            })
        },
    )
}

/// Whether a program or instance uses this STORE message (or its file tag) as a volume.
pub(crate) fn store_used_by_vm(s: &mut dyn Session, store_hash: &str) -> Result<bool> {
    let tag = pin(s, store_hash)?.map(|p| p.tag);
    let tag = tag.as_deref().unwrap_or(store_hash);
    exists(
        s,
        "SELECT 1 FROM vm_volumes WHERE ref = $1 OR ref = $2 LIMIT 1",
        &[Value::Text(store_hash), Value::Text(tag)],
    )
}

/// Deletes the records of files with no pin and no unexpired grace pin, and the expired
/// grace pins; returns the deleted files' sha256 so their bytes can be deleted.
pub(crate) fn collect_unpinned(s: &mut dyn Session, now: f64) -> Result<Vec<String>> {
    let unpinned = strings(
        s,
        "SELECT f.hash FROM files f
         WHERE NOT EXISTS (SELECT 1 FROM grace_pins g WHERE g.file_hash = f.hash AND g.until > $1)
           AND NOT EXISTS (SELECT 1 FROM file_pins p
                           WHERE p.file_hash IN (f.hash, f.cid_v0, coalesce(f.cid_v1, '')))
           AND NOT EXISTS (SELECT 1 FROM messages m
                           WHERE m.item_hash IN (f.hash, f.cid_v0, coalesce(f.cid_v1, ''))
                             AND m.item_type != 'inline')
         ORDER BY f.hash",
        &[now.into()],
    )?;
    for hash in &unpinned {
        s.execute("DELETE FROM files WHERE hash = $1", &[hash.into()])?;
        s.execute(
            "DELETE FROM grace_pins WHERE file_hash = $1",
            &[hash.into()],
        )?;
    }
    s.execute("DELETE FROM grace_pins WHERE until <= $1", &[now.into()])?;
    Ok(unpinned)
}
