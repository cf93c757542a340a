//! The PROGRAM and INSTANCE schema: the reference's content models, field by field, and what
//! the node keeps of a valid executable (`ExecutableContent`).

use serde_json::{Map, Value};

use super::fields::{
    Object, Res, bool_field, boolean, bounded_int, bounded_str, choice, defaulted, index, int,
    invalid, item_hash, join, list, object, only_keys, optional, required, strict_bounded_int,
    string, string_list, truthy,
};
use super::python_regex::python_regex_error;
use crate::Chain;
use crate::content::ContentError;

/// What the node needs from a program or instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutableContent {
    pub allow_amend: bool,
    /// The original this message updates, if it is an update.
    pub replaces: Option<String>,
    /// Every file the executable needs, in the order the reference checks them: code, runtime,
    /// data, rootfs parent, then immutable volumes and persistent-volume parents.
    pub volumes: Vec<VolumeRef>,
    /// `payment.type`: `hold`, `superfluid` or `credit`; `None` when there is no payment.
    pub payment_type: Option<&'static str>,
    /// Runs continuously: every instance, and a program with `on.persistent`.
    pub persistent: bool,
    /// An instance with `environment.trusted_execution` (a confidential VM).
    pub confidential: bool,
    /// `resources.vcpus` (default 1).
    pub vcpus: u32,
    /// `resources.memory` in MiB (default 128).
    pub memory_mib: u32,
    /// `resources.seconds` (default 1).
    pub seconds: u32,
    /// `on.message` of a program: the message filters that trigger it (empty when none).
    pub on_message: Vec<Map<String, Value>>,
}

/// A file an executable refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRef {
    /// Where it is used: `code`, `runtime`, `data`, `rootfs`, `volume`.
    pub role: &'static str,
    /// A STORE message item hash, or a file tag when `use_latest`.
    pub reference: String,
    pub use_latest: bool,
    /// For persistent volumes and rootfs: the size the parent must fit in.
    pub size_mib: Option<u64>,
}

/// Keys every executable may carry (`BaseContent` and `BaseExecutableContent`).
const COMMON_KEYS: [&str; 12] = [
    "address",
    "time",
    "allow_amend",
    "metadata",
    "authorized_keys",
    "variables",
    "environment",
    "resources",
    "payment",
    "requirements",
    "volumes",
    "replaces",
];
const PROGRAM_KEYS: [&str; 6] = ["type", "code", "runtime", "data", "export", "on"];
const INSTANCE_KEYS: [&str; 1] = ["rootfs"];

const MAX_METADATA_ENTRIES: usize = 256;
const MAX_METADATA_KEY_CHARS: usize = 64;
const MAX_METADATA_VALUE_CHARS: usize = 512;
const MAX_TAGS: usize = 16;
const MAX_TAG_CHARS: usize = 256;
const MAX_AUTHORIZED_KEYS: usize = 256;
const MAX_AUTHORIZED_KEY_CHARS: usize = 8192;
const MAX_VARIABLES: usize = 256;
const MAX_VARIABLE_KEY_CHARS: usize = 128;
const MAX_VARIABLE_VALUE_CHARS: usize = 4096;
const MAX_VOLUMES: usize = 256;
const MAX_REPLACES_CHARS: usize = 128;
const MAX_VOLUME_LABEL_CHARS: usize = 256;
const MAX_ADDRESS_REGEX_CHARS: usize = 256;
const MAX_SUBSCRIPTION_KEYS: usize = 32;
const MAX_VCPUS: i128 = 256;
const MAX_MEMORY_MIB: i128 = 1024 * 1024;
/// About ten years.
const MAX_SECONDS: i128 = 10 * 365 * 24 * 3600;
const MAX_EPHEMERAL_MIB: i128 = 1000;
/// 2048 GB expressed in MiB, rounded up: 2048·10⁹ / 2²⁰.
const MAX_PERSISTENT_MIB: i128 = 1_953_125;
const MAX_MEASUREMENTS: usize = 16;
const MAX_VCPU_TYPE_CHARS: usize = 64;
const MAX_CONFIDENTIAL_GPUS: i128 = 8;
const MAX_CONFIDENTIAL_GPU_MODELS: usize = 16;
/// The SEV policy value that disallows debugging, the default of `trusted_execution.policy`.
const DEFAULT_TEE_POLICY: i128 = 1;
/// SEV-SNP guest policies must set this reserved bit.
const SNP_RESERVED_BIT: i128 = 1 << 17;

const ENCODINGS: [&str; 3] = ["plain", "zip", "squashfs"];
const PAYMENT_TYPES: [&str; 3] = ["hold", "superfluid", "credit"];
const PERSISTENCES: [&str; 2] = ["host", "store"];

pub(crate) fn parse_program(map: &Object) -> Result<ExecutableContent, ContentError> {
    only_keys(map, "", &[&COMMON_KEYS[..], &PROGRAM_KEYS[..]])?;
    let common = parse_common(map)?;
    let (machine_type, at) = required(map, "", "type")?;
    choice(machine_type, &at, &["vm-function"])?;
    let (environment, at) = required(map, "", "environment")?;
    // The model accepts a function or an instance environment; the function one is the more
    // lenient (it ignores `hypervisor` and `trusted_execution`), so it decides.
    function_environment(environment, &at)?;

    let (code, at) = required(map, "", "code")?;
    let code = code_ref(code, &at)?;
    let (runtime, at) = required(map, "", "runtime")?;
    let runtime = runtime_ref(runtime, &at)?;
    let data = match optional(map, "data") {
        Some(data) => Some(data_ref(data, "data")?),
        None => None,
    };
    if let Some(export) = optional(map, "export") {
        export_section(export, "export")?;
    }
    let (on, at) = required(map, "", "on")?;
    let (persistent, on_message) = triggers(on, &at)?;

    let mut volumes = vec![code, runtime];
    volumes.extend(data);
    volumes.extend(common.volumes);
    Ok(ExecutableContent {
        allow_amend: common.allow_amend,
        replaces: common.replaces,
        volumes,
        payment_type: common.payment_type,
        persistent,
        confidential: false,
        vcpus: common.resources.vcpus,
        memory_mib: common.resources.memory_mib,
        seconds: common.resources.seconds,
        on_message,
    })
}

pub(crate) fn parse_instance(map: &Object) -> Result<ExecutableContent, ContentError> {
    only_keys(map, "", &[&COMMON_KEYS[..], &INSTANCE_KEYS[..]])?;
    let common = parse_common(map)?;
    let (environment, at) = required(map, "", "environment")?;
    let environment = instance_environment(environment, &at)?;
    let (rootfs, at) = required(map, "", "rootfs")?;
    let rootfs = rootfs_ref(rootfs, &at)?;
    check_instance_rules(&common, &environment)?;

    let mut volumes = vec![rootfs];
    volumes.extend(common.volumes);
    Ok(ExecutableContent {
        allow_amend: common.allow_amend,
        replaces: common.replaces,
        volumes,
        payment_type: common.payment_type,
        persistent: true,
        confidential: environment.tee.is_some(),
        vcpus: common.resources.vcpus,
        memory_mib: common.resources.memory_mib,
        seconds: common.resources.seconds,
        on_message: Vec::new(),
    })
}

/// The fields shared by programs and instances, validated.
struct Common {
    allow_amend: bool,
    replaces: Option<String>,
    payment_type: Option<&'static str>,
    resources: Resources,
    requirements: Option<Requirements>,
    volumes: Vec<VolumeRef>,
}

struct Resources {
    vcpus: u32,
    memory_mib: u32,
    seconds: u32,
}

/// What the instance rules need from `requirements`.
struct Requirements {
    has_node_hash: bool,
    has_terms_and_conditions: bool,
    gpus: usize,
}

struct InstanceEnvironment {
    hypervisor: Option<&'static str>,
    tee: Option<Tee>,
}

struct Tee {
    mode: Option<&'static str>,
    has_gpu: bool,
}

impl Tee {
    /// Measured-boot modes: a runtime bundle and declared launch measurements.
    fn is_measured(&self) -> bool {
        matches!(self.mode, Some("sev_snp" | "tdx"))
    }
}

fn parse_common(map: &Object) -> Res<Common> {
    let (allow_amend, at) = required(map, "", "allow_amend")?;
    let allow_amend = boolean(allow_amend, &at)?;
    if let Some(metadata) = optional(map, "metadata") {
        check_metadata(metadata, "metadata")?;
    }
    if let Some(keys) = optional(map, "authorized_keys") {
        for (i, key) in list(keys, "authorized_keys", MAX_AUTHORIZED_KEYS)?
            .iter()
            .enumerate()
        {
            bounded_str(key, &index("authorized_keys", i), MAX_AUTHORIZED_KEY_CHARS)?;
        }
    }
    if let Some(variables) = optional(map, "variables") {
        check_variables(variables, "variables")?;
    }
    let (resources, at) = required(map, "", "resources")?;
    let resources = parse_resources(resources, &at)?;
    let payment_type = match optional(map, "payment") {
        Some(payment) => Some(parse_payment(payment, "payment")?),
        None => None,
    };
    let requirements = match optional(map, "requirements") {
        Some(requirements) => Some(parse_requirements(requirements, "requirements")?),
        None => None,
    };
    let mut volumes = Vec::new();
    if let Some(list_value) = defaulted(map, "", "volumes")? {
        for (i, volume) in list(list_value, "volumes", MAX_VOLUMES)?.iter().enumerate() {
            volumes.extend(machine_volume(volume, &index("volumes", i))?);
        }
    }
    let replaces = match optional(map, "replaces") {
        Some(replaces) => Some(bounded_str(replaces, "replaces", MAX_REPLACES_CHARS)?.to_owned()),
        None => None,
    };
    Ok(Common {
        allow_amend,
        replaces,
        payment_type,
        resources,
        requirements,
        volumes,
    })
}

/// `metadata`: at most 256 entries with keys of at most 64 characters; values are scalars
/// (strings of at most 512 characters), except `tags`, a list of at most 16 tags.
fn check_metadata(value: &Value, at: &str) -> Res<()> {
    let map = object(value, at)?;
    if map.len() > MAX_METADATA_ENTRIES {
        return invalid(at, format!("at most {MAX_METADATA_ENTRIES} entries"));
    }
    for (key, value) in map {
        let here = join(at, key);
        if key.chars().count() > MAX_METADATA_KEY_CHARS {
            return invalid(
                &here,
                format!("keys are at most {MAX_METADATA_KEY_CHARS} characters"),
            );
        }
        if key == "tags" {
            for (i, tag) in list(value, &here, MAX_TAGS)?.iter().enumerate() {
                let tag_at = index(&here, i);
                if string(tag, &tag_at)?.is_empty() {
                    return invalid(&tag_at, "a tag is not empty");
                }
                bounded_str(tag, &tag_at, MAX_TAG_CHARS)?;
            }
            continue;
        }
        match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
            Value::String(_) => {
                bounded_str(value, &here, MAX_METADATA_VALUE_CHARS)?;
            }
            Value::Array(_) | Value::Object(_) => {
                return invalid(&here, "must be a string, number, boolean or null");
            }
        }
    }
    Ok(())
}

/// `variables`: at most 256 string values, keys of at most 128 and values of at most 4096
/// characters.
fn check_variables(value: &Value, at: &str) -> Res<()> {
    let map = object(value, at)?;
    if map.len() > MAX_VARIABLES {
        return invalid(at, format!("at most {MAX_VARIABLES} entries"));
    }
    for (key, value) in map {
        let here = join(at, key);
        if key.chars().count() > MAX_VARIABLE_KEY_CHARS {
            return invalid(
                &here,
                format!("names are at most {MAX_VARIABLE_KEY_CHARS} characters"),
            );
        }
        bounded_str(value, &here, MAX_VARIABLE_VALUE_CHARS)?;
    }
    Ok(())
}

/// `resources` (unknown keys ignored).
fn parse_resources(value: &Value, at: &str) -> Res<Resources> {
    let map = object(value, at)?;
    let vcpus = int_field(map, at, "vcpus", 1, 1, MAX_VCPUS)?;
    let memory_mib = int_field(map, at, "memory", 128, 1, MAX_MEMORY_MIB)?;
    let seconds = int_field(map, at, "seconds", 1, 1, MAX_SECONDS)?;
    let ports_at = join(at, "published_ports");
    if let Some(ports) = optional(map, "published_ports") {
        for (i, port) in list(ports, &ports_at, usize::MAX)?.iter().enumerate() {
            let port_at = index(&ports_at, i);
            let port = object(port, &port_at)?;
            if let Some(protocol) = defaulted(port, &port_at, "protocol")? {
                choice(protocol, &join(&port_at, "protocol"), &["tcp", "udp"])?;
            }
            let (number, number_at) = required(port, &port_at, "port")?;
            bounded_int(number, &number_at, 1, 65535)?;
        }
    }
    Ok(Resources {
        vcpus,
        memory_mib,
        seconds,
    })
}

/// An integer field with a default and bounds that all fit a `u32`.
fn int_field(map: &Object, at: &str, key: &str, default: u32, min: i128, max: i128) -> Res<u32> {
    match defaulted(map, at, key)? {
        None => Ok(default),
        Some(value) => {
            let here = join(at, key);
            let n = bounded_int(value, &here, min, max)?;
            u32::try_from(n).map_err(|_| ContentError::invalid(here, "out of range"))
        }
    }
}

/// `payment` (unknown keys ignored): its type.
fn parse_payment(value: &Value, at: &str) -> Res<&'static str> {
    let map = object(value, at)?;
    if let Some(chain) = optional(map, "chain") {
        let chain_at = join(at, "chain");
        string(chain, &chain_at)?
            .parse::<Chain>()
            .map_err(|e| ContentError::invalid(chain_at, e.to_string()))?;
    }
    if let Some(receiver) = optional(map, "receiver") {
        string(receiver, &join(at, "receiver"))?;
    }
    let (kind, kind_at) = required(map, at, "type")?;
    choice(kind, &kind_at, &PAYMENT_TYPES)
}

/// `requirements`: `cpu`, `node` and `gpu`, each refusing unknown keys.
fn parse_requirements(value: &Value, at: &str) -> Res<Requirements> {
    let map = object(value, at)?;
    only_keys(map, at, &[&["cpu", "node", "gpu"]])?;
    if let Some(cpu) = optional(map, "cpu") {
        let cpu_at = join(at, "cpu");
        let cpu = object(cpu, &cpu_at)?;
        only_keys(cpu, &cpu_at, &[&["architecture", "vendor", "features"]])?;
        if let Some(architecture) = optional(cpu, "architecture") {
            choice(
                architecture,
                &join(&cpu_at, "architecture"),
                &["x86_64", "arm64"],
            )?;
        }
        if let Some(vendor) = optional(cpu, "vendor") {
            string(vendor, &join(&cpu_at, "vendor"))?;
        }
        if let Some(features) = optional(cpu, "features") {
            string_list(features, &join(&cpu_at, "features"))?;
        }
    }
    let mut requirements = Requirements {
        has_node_hash: false,
        has_terms_and_conditions: false,
        gpus: 0,
    };
    if let Some(node) = optional(map, "node") {
        let node_at = join(at, "node");
        let node = object(node, &node_at)?;
        only_keys(
            node,
            &node_at,
            &[&[
                "owner",
                "address_regex",
                "node_hash",
                "terms_and_conditions",
            ]],
        )?;
        if let Some(owner) = optional(node, "owner") {
            string(owner, &join(&node_at, "owner"))?;
        }
        if let Some(regex) = optional(node, "address_regex") {
            let regex_at = join(&node_at, "address_regex");
            let pattern = bounded_str(regex, &regex_at, MAX_ADDRESS_REGEX_CHARS)?;
            if let Some(error) = python_regex_error(pattern) {
                return invalid(
                    &regex_at,
                    format!("not a valid regular expression: {error}"),
                );
            }
        }
        if let Some(node_hash) = optional(node, "node_hash") {
            item_hash(node_hash, &join(&node_at, "node_hash"))?;
            requirements.has_node_hash = true;
        }
        if let Some(terms) = optional(node, "terms_and_conditions") {
            item_hash(terms, &join(&node_at, "terms_and_conditions"))?;
            requirements.has_terms_and_conditions = true;
        }
    }
    if let Some(gpus) = optional(map, "gpu") {
        let gpus_at = join(at, "gpu");
        let gpus = list(gpus, &gpus_at, usize::MAX)?;
        for (i, gpu) in gpus.iter().enumerate() {
            let gpu_at = index(&gpus_at, i);
            let gpu = object(gpu, &gpu_at)?;
            only_keys(
                gpu,
                &gpu_at,
                &[&["vendor", "device_name", "device_class", "device_id"]],
            )?;
            for key in ["vendor", "device_name", "device_id"] {
                let (field, field_at) = required(gpu, &gpu_at, key)?;
                string(field, &field_at)?;
            }
            let (class, class_at) = required(gpu, &gpu_at, "device_class")?;
            choice(class, &class_at, &["0300", "0302"])?;
        }
        requirements.gpus = gpus.len();
    }
    Ok(requirements)
}

/// One entry of `volumes`: immutable, ephemeral or persistent. Valid when any of the three
/// shapes accepts it; when none does, the error is the one of the shape it most looks like.
fn machine_volume(value: &Value, at: &str) -> Res<Option<VolumeRef>> {
    let map = object(value, at)?;
    let immutable = immutable_volume(map, at);
    if let Ok(reference) = immutable {
        return Ok(Some(reference));
    }
    let ephemeral = ephemeral_volume(map, at);
    if ephemeral.is_ok() {
        return Ok(None);
    }
    let persistent = persistent_volume(map, at);
    if let Ok(parent) = persistent {
        return Ok(parent);
    }
    let error = if map.contains_key("ref") || map.contains_key("use_latest") {
        immutable.err()
    } else if map.contains_key("ephemeral") {
        ephemeral.err()
    } else {
        persistent.err()
    };
    Err(error.unwrap_or_else(|| {
        ContentError::invalid(at, "not an immutable, ephemeral or persistent volume")
    }))
}

/// `comment` and `mount`, shared by every volume shape.
fn volume_labels(map: &Object, at: &str) -> Res<()> {
    for key in ["comment", "mount"] {
        if let Some(label) = optional(map, key) {
            bounded_str(label, &join(at, key), MAX_VOLUME_LABEL_CHARS)?;
        }
    }
    Ok(())
}

fn immutable_volume(map: &Object, at: &str) -> Res<VolumeRef> {
    only_keys(map, at, &[&["comment", "mount", "ref", "use_latest"]])?;
    volume_labels(map, at)?;
    let (reference, ref_at) = required(map, at, "ref")?;
    let reference = item_hash(reference, &ref_at)?;
    let use_latest = bool_field(map, at, "use_latest", true)?;
    Ok(VolumeRef {
        role: "volume",
        reference,
        use_latest,
        size_mib: None,
    })
}

fn ephemeral_volume(map: &Object, at: &str) -> Res<()> {
    only_keys(map, at, &[&["comment", "mount", "ephemeral", "size_mib"]])?;
    volume_labels(map, at)?;
    if let Some(flag) = defaulted(map, at, "ephemeral")? {
        // `Literal[True]`: the reference compares by equality, so `1` and `1.0` pass too.
        let is_true = match flag {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() == Some(1.0),
            _ => false,
        };
        if !is_true {
            return invalid(&join(at, "ephemeral"), "must be true");
        }
    }
    let (size, size_at) = required(map, at, "size_mib")?;
    strict_bounded_int(size, &size_at, 1, MAX_EPHEMERAL_MIB)?;
    Ok(())
}

/// A persistent volume; its parent, if it has one.
fn persistent_volume(map: &Object, at: &str) -> Res<Option<VolumeRef>> {
    only_keys(
        map,
        at,
        &[&[
            "comment",
            "mount",
            "parent",
            "persistence",
            "name",
            "size_mib",
        ]],
    )?;
    volume_labels(map, at)?;
    let parent = match optional(map, "parent") {
        Some(parent) => Some(parent_volume(parent, &join(at, "parent"))?),
        None => None,
    };
    if let Some(persistence) = optional(map, "persistence") {
        choice(persistence, &join(at, "persistence"), &PERSISTENCES)?;
    }
    if let Some(name) = optional(map, "name") {
        bounded_str(name, &join(at, "name"), MAX_VOLUME_LABEL_CHARS)?;
    }
    let (size, size_at) = required(map, at, "size_mib")?;
    let size = strict_bounded_int(size, &size_at, 1, MAX_PERSISTENT_MIB)?;
    Ok(parent.map(|(reference, use_latest)| VolumeRef {
        role: "volume",
        reference,
        use_latest,
        size_mib: u64::try_from(size).ok(),
    }))
}

/// A parent image (unknown keys ignored): its reference and `use_latest` (default true).
fn parent_volume(value: &Value, at: &str) -> Res<(String, bool)> {
    let map = object(value, at)?;
    let (reference, ref_at) = required(map, at, "ref")?;
    let reference = item_hash(reference, &ref_at)?;
    Ok((reference, bool_field(map, at, "use_latest", true)?))
}

/// `rootfs` of an instance (unknown keys ignored).
fn rootfs_ref(value: &Value, at: &str) -> Res<VolumeRef> {
    let map = object(value, at)?;
    let (parent, parent_at) = required(map, at, "parent")?;
    let (reference, use_latest) = parent_volume(parent, &parent_at)?;
    let (persistence, persistence_at) = required(map, at, "persistence")?;
    choice(persistence, &persistence_at, &PERSISTENCES)?;
    let (size, size_at) = required(map, at, "size_mib")?;
    let size = strict_bounded_int(size, &size_at, 1, MAX_PERSISTENT_MIB)?;
    if let Some(forgotten_by) = optional(map, "forgotten_by") {
        string_list(forgotten_by, &join(at, "forgotten_by"))?;
    }
    Ok(VolumeRef {
        role: "rootfs",
        reference,
        use_latest,
        size_mib: u64::try_from(size).ok(),
    })
}

/// `code` of a program (unknown keys ignored).
fn code_ref(value: &Value, at: &str) -> Res<VolumeRef> {
    let map = object(value, at)?;
    let (encoding, encoding_at) = required(map, at, "encoding")?;
    choice(encoding, &encoding_at, &ENCODINGS)?;
    let (entrypoint, entrypoint_at) = required(map, at, "entrypoint")?;
    string(entrypoint, &entrypoint_at)?;
    let (reference, ref_at) = required(map, at, "ref")?;
    let reference = item_hash(reference, &ref_at)?;
    if let Some(interface) = optional(map, "interface") {
        choice(interface, &join(at, "interface"), &["asgi", "binary"])?;
    }
    if let Some(args) = optional(map, "args") {
        string_list(args, &join(at, "args"))?;
    }
    let use_latest = bool_field(map, at, "use_latest", false)?;
    Ok(VolumeRef {
        role: "code",
        reference,
        use_latest,
        size_mib: None,
    })
}

/// `runtime` of a program (unknown keys ignored); `comment` is required.
fn runtime_ref(value: &Value, at: &str) -> Res<VolumeRef> {
    let map = object(value, at)?;
    let (reference, ref_at) = required(map, at, "ref")?;
    let reference = item_hash(reference, &ref_at)?;
    let use_latest = bool_field(map, at, "use_latest", true)?;
    let (comment, comment_at) = required(map, at, "comment")?;
    string(comment, &comment_at)?;
    Ok(VolumeRef {
        role: "runtime",
        reference,
        use_latest,
        size_mib: None,
    })
}

/// `data` of a program (unknown keys ignored); a null `use_latest` means false.
fn data_ref(value: &Value, at: &str) -> Res<VolumeRef> {
    let map = object(value, at)?;
    export_section(value, at)?;
    let (reference, ref_at) = required(map, at, "ref")?;
    let reference = item_hash(reference, &ref_at)?;
    let use_latest = match optional(map, "use_latest") {
        Some(flag) => boolean(flag, &join(at, "use_latest"))?,
        None => false,
    };
    Ok(VolumeRef {
        role: "data",
        reference,
        use_latest,
        size_mib: None,
    })
}

/// `export` of a program, and the part of `data` it shares: `encoding` and `mount`.
fn export_section(value: &Value, at: &str) -> Res<()> {
    let map = object(value, at)?;
    let (encoding, encoding_at) = required(map, at, "encoding")?;
    choice(encoding, &encoding_at, &ENCODINGS)?;
    let (mount, mount_at) = required(map, at, "mount")?;
    string(mount, &mount_at)?;
    Ok(())
}

/// `on` of a program (unknown keys refused): whether it is persistent, and its subscriptions.
fn triggers(value: &Value, at: &str) -> Res<(bool, Vec<Object>)> {
    let map = object(value, at)?;
    only_keys(map, at, &[&["http", "message", "persistent"]])?;
    let (http, http_at) = required(map, at, "http")?;
    boolean(http, &http_at)?;
    let mut subscriptions = Vec::new();
    if let Some(message) = optional(map, "message") {
        let message_at = join(at, "message");
        for (i, subscription) in list(message, &message_at, usize::MAX)?.iter().enumerate() {
            let subscription_at = index(&message_at, i);
            let subscription = object(subscription, &subscription_at)?;
            if subscription.len() > MAX_SUBSCRIPTION_KEYS {
                return invalid(
                    &subscription_at,
                    format!("at most {MAX_SUBSCRIPTION_KEYS} entries"),
                );
            }
            subscriptions.push(subscription.clone());
        }
    }
    let persistent = match optional(map, "persistent") {
        Some(flag) => boolean(flag, &join(at, "persistent"))?,
        None => false,
    };
    Ok((persistent, subscriptions))
}

const ENVIRONMENT_FLAGS: [&str; 4] = ["reproducible", "internet", "aleph_api", "shared_cache"];

/// The environment of a program (unknown keys ignored): four booleans.
fn function_environment(value: &Value, at: &str) -> Res<()> {
    let map = object(value, at)?;
    for key in ENVIRONMENT_FLAGS {
        bool_field(map, at, key, false)?;
    }
    Ok(())
}

/// The environment of an instance (unknown keys ignored).
fn instance_environment(value: &Value, at: &str) -> Res<InstanceEnvironment> {
    let map = object(value, at)?;
    for key in ENVIRONMENT_FLAGS {
        bool_field(map, at, key, false)?;
    }
    let hypervisor = match optional(map, "hypervisor") {
        Some(hypervisor) => Some(choice(
            hypervisor,
            &join(at, "hypervisor"),
            &["qemu", "firecracker"],
        )?),
        None => None,
    };
    let tee_at = join(at, "trusted_execution");
    // The reference refuses any non-empty value here unless the hypervisor is qemu; an empty
    // object slips through that check and is then read as a default TEE.
    if map.get("trusted_execution").is_some_and(truthy) && hypervisor != Some("qemu") {
        return invalid(
            &tee_at,
            "a trusted execution environment needs the qemu hypervisor",
        );
    }
    let tee = match optional(map, "trusted_execution") {
        Some(tee) => Some(trusted_execution(tee, &tee_at)?),
        None => None,
    };
    Ok(InstanceEnvironment { hypervisor, tee })
}

/// `environment.trusted_execution`: legacy SEV (`mode` absent or `sev`, with `firmware`) or a
/// measured mode (`sev_snp`, `tdx`, with `runtime` and `measurements`).
fn trusted_execution(value: &Value, at: &str) -> Res<Tee> {
    let map = object(value, at)?;
    only_keys(
        map,
        at,
        &[&[
            "firmware",
            "policy",
            "mode",
            "runtime",
            "measurements",
            "attestation_port",
            "gpu",
        ]],
    )?;
    if let Some(firmware) = optional(map, "firmware") {
        item_hash(firmware, &join(at, "firmware"))?;
    }
    let policy = match defaulted(map, at, "policy")? {
        Some(policy) => int(policy, &join(at, "policy"))?,
        None => DEFAULT_TEE_POLICY,
    };
    let mode = match optional(map, "mode") {
        Some(mode) => Some(choice(mode, &join(at, "mode"), &["sev", "sev_snp", "tdx"])?),
        None => None,
    };
    if let Some(runtime) = optional(map, "runtime") {
        item_hash(runtime, &join(at, "runtime"))?;
    }
    let measurements_at = join(at, "measurements");
    let mut platforms = Vec::new();
    if let Some(measurements) = optional(map, "measurements") {
        for (i, measurement) in list(measurements, &measurements_at, MAX_MEASUREMENTS)?
            .iter()
            .enumerate()
        {
            platforms.push(launch_measurement(
                measurement,
                &index(&measurements_at, i),
            )?);
        }
    }
    if let Some(port) = optional(map, "attestation_port") {
        bounded_int(port, &join(at, "attestation_port"), 1, 65535)?;
    }
    if let Some(gpu) = optional(map, "gpu") {
        confidential_gpu(gpu, &join(at, "gpu"))?;
    }

    let tee = Tee {
        mode,
        has_gpu: optional(map, "gpu").is_some(),
    };
    let Some(mode) = mode.filter(|_| tee.is_measured()) else {
        for key in ["runtime", "measurements", "attestation_port", "gpu"] {
            if optional(map, key).is_some() {
                return invalid(
                    &join(at, key),
                    "only valid in the measured modes (sev_snp, tdx)",
                );
            }
        }
        return Ok(tee);
    };
    if optional(map, "firmware").is_some() {
        return invalid(
            &join(at, "firmware"),
            format!("belongs to SEV; {mode} uses runtime"),
        );
    }
    if optional(map, "runtime").is_none() {
        return Err(ContentError::Missing(join(at, "runtime")));
    }
    if platforms.is_empty() {
        return Err(ContentError::Missing(measurements_at));
    }
    if let Some(i) = platforms.iter().position(|platform| *platform != mode) {
        return invalid(
            &index(&measurements_at, i),
            format!("its platform does not match mode {mode}"),
        );
    }
    if tee.has_gpu && mode != "sev_snp" {
        return invalid(&join(at, "gpu"), "confidential GPUs need the sev_snp mode");
    }
    let policy_at = join(at, "policy");
    if mode == "sev_snp" {
        if !(0..1i128 << 64).contains(&policy) {
            return invalid(
                &policy_at,
                "an SEV-SNP guest policy is an unsigned 64-bit integer",
            );
        }
        if policy & SNP_RESERVED_BIT == 0 {
            return invalid(
                &policy_at,
                "an SEV-SNP guest policy sets the reserved bit 17",
            );
        }
    } else {
        if policy != DEFAULT_TEE_POLICY {
            return invalid(&policy_at, "tdx has no launch policy: leave the default");
        }
        if platforms.len() != 1 {
            return invalid(&measurements_at, "tdx declares exactly one measurement");
        }
    }
    Ok(tee)
}

/// One expected launch measurement; its platform.
fn launch_measurement(value: &Value, at: &str) -> Res<&'static str> {
    let map = object(value, at)?;
    only_keys(map, at, &[&["platform", "registers", "vcpu_type"]])?;
    let (platform, platform_at) = required(map, at, "platform")?;
    let platform = choice(platform, &platform_at, &["sev_snp", "tdx"])?;
    let (registers, registers_at) = required(map, at, "registers")?;
    let registers = object(registers, &registers_at)?;
    // Two register sets with disjoint keys; the platform must name the one given.
    let (declared, names): (&str, &[&str]) = if registers.contains_key("launch") {
        ("sev_snp", &["launch"])
    } else {
        ("tdx", &["mrtd", "rtmr1", "rtmr2", "mrconfigid"])
    };
    only_keys(registers, &registers_at, &[names])?;
    for name in names {
        let (register, register_at) = required(registers, &registers_at, name)?;
        let register = string(register, &register_at)?;
        if register.len() != 96
            || !register
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return invalid(&register_at, "a register is 96 lowercase hex characters");
        }
    }
    if let Some(vcpu_type) = optional(map, "vcpu_type") {
        bounded_str(vcpu_type, &join(at, "vcpu_type"), MAX_VCPU_TYPE_CHARS)?;
    }
    if declared != platform {
        return invalid(
            &registers_at,
            format!("platform {platform} declares other registers"),
        );
    }
    Ok(platform)
}

/// `trusted_execution.gpu`: a family and count of cards in confidential-computing mode.
fn confidential_gpu(value: &Value, at: &str) -> Res<()> {
    let map = object(value, at)?;
    only_keys(map, at, &[&["vendor", "arch", "count", "models", "mode"]])?;
    let (vendor, vendor_at) = required(map, at, "vendor")?;
    choice(vendor, &vendor_at, &["nvidia"])?;
    let (arch, arch_at) = required(map, at, "arch")?;
    choice(arch, &arch_at, &["hopper", "blackwell"])?;
    let (count, count_at) = required(map, at, "count")?;
    strict_bounded_int(count, &count_at, 1, MAX_CONFIDENTIAL_GPUS)?;
    if let Some(models) = optional(map, "models") {
        let models_at = join(at, "models");
        let models = list(models, &models_at, MAX_CONFIDENTIAL_GPU_MODELS)?;
        if models.is_empty() {
            return invalid(&models_at, "names at least one model when present");
        }
        let mut seen = Vec::with_capacity(models.len());
        for (i, model) in models.iter().enumerate() {
            let model_at = index(&models_at, i);
            let model = string(model, &model_at)?;
            if !is_pci_id(model) {
                return invalid(
                    &model_at,
                    "a lowercase PCI vendor:device id such as 10de:2b85",
                );
            }
            if seen.contains(&model) {
                return invalid(&model_at, "repeats a device id");
            }
            seen.push(model);
        }
    }
    let (mode, mode_at) = required(map, at, "mode")?;
    choice(mode, &mode_at, &["cc"])?;
    Ok(())
}

/// `xxxx:xxxx`, lowercase hex.
fn is_pci_id(s: &str) -> bool {
    let hex4 = |part: &str| {
        part.len() == 4 && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    s.split_once(':')
        .is_some_and(|(vendor, device)| hex4(vendor) && hex4(device))
}

/// The instance rules that span several fields (aleph-message 1.7).
fn check_instance_rules(common: &Common, environment: &InstanceEnvironment) -> Res<()> {
    let payment = common.payment_type;
    let streamed = payment == Some("superfluid");
    let credit = payment == Some("credit");
    if let Some(requirements) = &common.requirements {
        if streamed && !requirements.has_node_hash {
            return Err(ContentError::invalid(
                "requirements.node.node_hash",
                "a pay-as-you-go (superfluid) instance must name its node",
            ));
        }
        if requirements.gpus > 0 {
            if environment.tee.as_ref().is_some_and(|tee| tee.has_gpu) {
                return invalid(
                    "requirements.gpu",
                    "a confidential instance declares its GPUs in environment.trusted_execution.gpu",
                );
            }
            if !credit && !requirements.has_node_hash {
                return invalid(
                    "requirements.node.node_hash",
                    "a GPU instance not paid with credit must name its node",
                );
            }
            if environment.hypervisor != Some("qemu") {
                return invalid("environment.hypervisor", "GPUs need the qemu hypervisor");
            }
        }
        if requirements.has_terms_and_conditions {
            if !requirements.has_node_hash {
                return invalid(
                    "requirements.node.node_hash",
                    "terms_and_conditions need a node_hash",
                );
            }
            if !streamed && !credit && environment.tee.is_none() {
                return invalid(
                    "requirements.node.terms_and_conditions",
                    "only pay-as-you-go, credit or confidential instances have terms and conditions",
                );
            }
        }
    }
    if environment.tee.as_ref().is_some_and(Tee::is_measured) && !credit {
        return invalid(
            "payment.type",
            "measured confidential instances (sev_snp, tdx) pay with credit",
        );
    }
    Ok(())
}
