//! What a PROGRAM asks of the node, read from its stored (already validated) content.

use raleph_message::content::lax;
use raleph_message::{Content, MessageType, TypedContent};
use serde_json::{Map, Value};

/// A file named by a STORE message: its item hash, or with `use_latest` the newest file the
/// same owner stored under that reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileRef {
    pub reference: String,
    pub use_latest: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Zip,
    Squashfs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    pub file: FileRef,
    pub encoding: Encoding,
    /// `main:app` (ASGI), a path in a bundle, or `wasi:http/proxy` for a plain component.
    pub entrypoint: String,
    /// `asgi` or `binary`; absent: ASGI when the entrypoint has a `:`.
    pub interface: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Volume {
    /// A STORE'd file or archive, read-only.
    Immutable { file: FileRef, mount: String },
    /// Scratch space of one execution.
    Ephemeral { mount: String, size_mib: u64 },
    /// A writable directory kept between executions, per program and volume name.
    Persistent {
        name: String,
        mount: String,
        size_mib: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgramSpec {
    pub item_hash: String,
    /// `content.address`.
    pub owner: String,
    pub code: Code,
    pub runtime: FileRef,
    /// Input data, unpacked read-only at its mount (default `/data`).
    pub data: Option<(FileRef, Encoding, String)>,
    pub volumes: Vec<Volume>,
    pub variables: Vec<(String, String)>,
    pub internet: bool,
    pub aleph_api: bool,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub seconds: u32,
    pub http: bool,
    pub persistent: bool,
    pub on_message: Vec<Map<String, Value>>,
    pub allow_amend: bool,
    pub replaces: Option<String>,
}

impl ProgramSpec {
    /// Reads a PROGRAM's content, checked by the same rules the pipeline applied.
    pub fn parse(
        item_hash: &str,
        content: &str,
        sender: &str,
        time: f64,
    ) -> Result<ProgramSpec, String> {
        let parsed = Content::parse(MessageType::Program, content.as_bytes(), sender, time)
            .map_err(|e| e.to_string())?;
        let TypedContent::Program(executable) = &parsed.typed else {
            return Err("not a program".into());
        };
        let value = &parsed.value;
        let code = value.get("code").ok_or("no code")?;
        let code = Code {
            file: file_ref(code, false)?,
            encoding: encoding(code.get("encoding"))?,
            entrypoint: string(code.get("entrypoint")).unwrap_or_default(),
            interface: string(code.get("interface")),
        };
        let runtime = file_ref(value.get("runtime").ok_or("no runtime")?, true)?;
        let data = match value.get("data") {
            Some(data @ Value::Object(_)) => Some((
                file_ref(data, false)?,
                encoding(data.get("encoding"))?,
                string(data.get("mount")).unwrap_or_else(|| "/data".to_owned()),
            )),
            _ => None,
        };
        let environment = value.get("environment");
        let flag = |name: &str| {
            environment
                .and_then(|e| e.get(name))
                .and_then(lax::bool_from_value)
                .unwrap_or(false)
        };
        let on = value.get("on");
        Ok(ProgramSpec {
            item_hash: item_hash.to_owned(),
            owner: parsed.address.clone(),
            code,
            runtime,
            data,
            volumes: volumes(value.get("volumes"))?,
            variables: variables(value.get("variables")),
            internet: flag("internet"),
            aleph_api: flag("aleph_api"),
            vcpus: executable.vcpus,
            memory_mib: executable.memory_mib,
            seconds: executable.seconds,
            http: on
                .and_then(|o| o.get("http"))
                .and_then(lax::bool_from_value)
                .unwrap_or(false),
            persistent: executable.persistent,
            on_message: executable.on_message.clone(),
            allow_amend: executable.allow_amend,
            replaces: executable.replaces.clone(),
        })
    }

    /// Every file the program runs from: code, runtime, data and immutable volumes. An
    /// update to any of them (with `use_latest`) must reach the running program.
    pub fn files(&self) -> impl Iterator<Item = &FileRef> {
        let volumes = self.volumes.iter().filter_map(|v| match v {
            Volume::Immutable { file, .. } => Some(file),
            _ => None,
        });
        [&self.code.file, &self.runtime]
            .into_iter()
            .chain(self.data.as_ref().map(|(file, _, _)| file))
            .chain(volumes)
    }
}

fn string(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

fn file_ref(object: &Value, default_latest: bool) -> Result<FileRef, String> {
    let reference = string(object.get("ref")).ok_or("a file reference has no ref")?;
    let use_latest = object
        .get("use_latest")
        .and_then(lax::bool_from_value)
        .unwrap_or(default_latest);
    Ok(FileRef {
        reference,
        use_latest,
    })
}

fn encoding(value: Option<&Value>) -> Result<Encoding, String> {
    match value.and_then(Value::as_str) {
        Some("plain") => Ok(Encoding::Plain),
        Some("zip") => Ok(Encoding::Zip),
        Some("squashfs") => Ok(Encoding::Squashfs),
        other => Err(format!("unknown encoding {other:?}")),
    }
}

fn variables(value: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Object(map)) = value else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
        .collect()
}

fn volumes(value: Option<&Value>) -> Result<Vec<Volume>, String> {
    let Some(Value::Array(list)) = value else {
        return Ok(Vec::new());
    };
    let mut volumes = Vec::with_capacity(list.len());
    for (i, volume) in list.iter().enumerate() {
        let mount = string(volume.get("mount")).unwrap_or_else(|| format!("/volume{i}"));
        let size_mib = volume
            .get("size_mib")
            .and_then(lax::int_from_value)
            .and_then(|n| u64::try_from(n).ok());
        let ephemeral = volume
            .get("ephemeral")
            .and_then(lax::bool_from_value)
            .unwrap_or(false);
        volumes.push(if ephemeral {
            Volume::Ephemeral {
                mount,
                size_mib: size_mib.unwrap_or(1),
            }
        } else if volume.get("ref").is_some() {
            Volume::Immutable {
                file: file_ref(volume, true)?,
                mount,
            }
        } else {
            // A persistent volume's `parent` (its first contents) is not copied in yet.
            Volume::Persistent {
                name: string(volume.get("name")).unwrap_or_else(|| format!("volume{i}")),
                mount,
                size_mib: size_mib.unwrap_or(1),
            }
        });
    }
    Ok(volumes)
}
