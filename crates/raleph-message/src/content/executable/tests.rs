use proptest::prelude::*;
use serde_json::{Value, json};

use super::python_regex::python_regex_error;
use super::*;
use crate::content::ContentError;

const CODE: &str = "QmbhQsbQGPsA7rzeA5WGZfU7PKGGiobqFdJ9vodYmWTRs3";
const RUNTIME: &str = "63f07193e6ee9d207b7d1fcf8286f9aee34e6f12f101d2ec77c1229f92964696";
const DEBIAN_12: &str = "b6ff5c3a8205d1ca4c7c3369300eeafff498b558f71b851aa2114afd0a532717";
const LIBRARIES: &str = "5f31b0706f59404fad3d0bff97ef89ddf24da4761608ea0646329362c662ba51";
const NODE: &str = "dc3d1d194a990b5c54380c3c0439562fefa42f5a46807cba1c500ec3affecf04";
const FIRMWARE: &str = "ba5bb13f3abca960b101a759be162b229e2b7e93ecad9d1307e54de887f177ff";
const OWNER: &str = "0x51A58800b26AA1451aaA803d1746687cB88E0501";

/// What aleph-sdk-python `create_program(program_ref, "main:app", runtime)` sends with its
/// defaults (`make_program_content`, dumped without nulls).
fn sdk_program() -> Value {
    json!({
        "address": OWNER, "time": 1717000000.123, "allow_amend": false, "authorized_keys": [],
        "environment": {"reproducible": false, "internet": true, "aleph_api": true, "shared_cache": false},
        "resources": {"vcpus": 1, "memory": 256, "seconds": 30},
        "payment": {"chain": "ETH", "type": "hold"},
        "volumes": [],
        "type": "vm-function",
        "code": {"encoding": "zip", "entrypoint": "main:app", "ref": CODE, "use_latest": true},
        "runtime": {"ref": RUNTIME, "use_latest": true, "comment": "Official aleph.im runtime"},
        "on": {"http": true, "persistent": false}
    })
}

/// `create_program` with metadata, variables, subscriptions and the three volume kinds.
fn rich_program() -> Value {
    json!({
        "address": OWNER, "time": 1717000000.123, "allow_amend": true,
        "metadata": {"name": "my-program", "tags": ["api"]}, "authorized_keys": [],
        "variables": {"FOO": "bar"},
        "environment": {"reproducible": false, "internet": true, "aleph_api": true, "shared_cache": false},
        "resources": {"vcpus": 2, "memory": 2048, "seconds": 30, "published_ports": [{"protocol": "tcp", "port": 8080}]},
        "payment": {"chain": "ETH", "type": "hold"},
        "volumes": [
            {"comment": "Python libraries", "mount": "/opt/packages", "ref": LIBRARIES, "use_latest": true},
            {"comment": "Working data", "mount": "/data", "ephemeral": true, "size_mib": 5},
            {"comment": "Persistent", "mount": "/var/lib/ex", "persistence": "host", "name": "ex", "size_mib": 100},
            {"mount": "/seed", "parent": {"ref": DEBIAN_12, "use_latest": false}, "persistence": "store", "name": "seed", "size_mib": 2048}
        ],
        "type": "vm-function",
        "code": {"encoding": "squashfs", "entrypoint": "run.sh", "ref": CODE, "interface": "binary", "args": ["--port", "8080"]},
        "runtime": {"ref": RUNTIME, "use_latest": true, "comment": "Official aleph.im runtime"},
        "data": {"encoding": "zip", "mount": "/input", "ref": LIBRARIES},
        "export": {"encoding": "zip", "mount": "/output"},
        "on": {"http": true, "message": [{"sender": "0xabc", "channel": "TEST"}], "persistent": true}
    })
}

/// What `create_instance(rootfs=DEBIAN_12, rootfs_size=20480, ssh_keys=[…])` sends with its
/// defaults: hold payment, qemu.
fn sdk_instance() -> Value {
    json!({
        "address": OWNER, "time": 1717000000.456, "allow_amend": false,
        "metadata": {"name": "vm", "tags": ["web", "debian"]},
        "authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0f user@host"],
        "environment": {"internet": true, "aleph_api": true, "hypervisor": "qemu", "reproducible": false, "shared_cache": false},
        "resources": {"vcpus": 1, "memory": 2048, "seconds": 30},
        "payment": {"chain": "ETH", "type": "hold"},
        "volumes": [],
        "rootfs": {"parent": {"ref": DEBIAN_12, "use_latest": true}, "persistence": "host", "size_mib": 20480}
    })
}

/// A pay-as-you-go confidential (SEV) instance pinned to a node with terms and conditions.
fn confidential_instance() -> Value {
    let mut v = sdk_instance();
    set(
        &mut v,
        "/environment/trusted_execution",
        json!({"firmware": FIRMWARE, "policy": 1}),
    );
    set(
        &mut v,
        "/payment",
        json!({"chain": "AVAX", "receiver": "0xA07B1214bAe0D5ccAA25449C3149c0aC83658874", "type": "superfluid"}),
    );
    set(
        &mut v,
        "/requirements",
        json!({"node": {"node_hash": NODE, "terms_and_conditions": CODE}}),
    );
    v
}

/// A credit-paid GPU instance: no node needed since aleph-message 1.7.
fn gpu_instance() -> Value {
    let mut v = sdk_instance();
    set(&mut v, "/payment", json!({"type": "credit"}));
    set(
        &mut v,
        "/requirements",
        json!({
            "cpu": {"architecture": "x86_64", "vendor": "AuthenticAMD", "features": ["sev"]},
            "gpu": [{"vendor": "NVIDIA", "device_name": "AD102GL [L40S]", "device_class": "0302", "device_id": "10de:26b9"}]
        }),
    );
    set(
        &mut v,
        "/volumes",
        json!([{"mount": "/data", "parent": {"ref": DEBIAN_12, "use_latest": false}, "persistence": "host", "name": "data", "size_mib": 1024}]),
    );
    v
}

/// A measured SEV-SNP instance with a confidential GPU, credit-paid.
fn snp_instance() -> Value {
    let mut v = sdk_instance();
    set(&mut v, "/payment", json!({"type": "credit"}));
    set(
        &mut v,
        "/environment/trusted_execution",
        json!({
            "policy": 196608, "mode": "sev_snp", "runtime": RUNTIME,
            "measurements": [{"platform": "sev_snp", "registers": {"launch": "ab".repeat(48)}, "vcpu_type": "EPYC-v4"}],
            "attestation_port": 8443,
            "gpu": {"vendor": "nvidia", "arch": "blackwell", "count": 1, "models": ["10de:2bb5"], "mode": "cc"}
        }),
    );
    v
}

fn tdx_tee() -> Value {
    let register = "0f".repeat(48);
    json!({
        "mode": "tdx", "runtime": RUNTIME,
        "measurements": [{"platform": "tdx", "registers": {"mrtd": register, "rtmr1": register, "rtmr2": register, "mrconfigid": register}}]
    })
}

/// Sets the value at a JSON pointer, creating the last key if needed.
fn set(v: &mut Value, pointer: &str, new: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    match v.pointer_mut(parent).expect("the parent exists") {
        Value::Object(map) => {
            map.insert(key.to_owned(), new);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("an index")] = new,
        other => panic!("cannot set {key} in {other}"),
    }
}

fn unset(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("an object")
        .remove(key);
}

fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    set(&mut v, pointer, new);
    v
}

fn without(mut v: Value, pointer: &str) -> Value {
    unset(&mut v, pointer);
    v
}

fn program(v: &Value) -> Result<ExecutableContent, ContentError> {
    parse_program(v.as_object().expect("an object"))
}

fn instance(v: &Value) -> Result<ExecutableContent, ContentError> {
    parse_instance(v.as_object().expect("an object"))
}

fn field(e: &ContentError) -> &str {
    match e {
        ContentError::Missing(f) | ContentError::Unexpected(f) => f,
        ContentError::Invalid { field, .. } => field,
        _ => "",
    }
}

/// Each case must be refused, naming `field`.
#[track_caller]
fn check_refused(
    parse: fn(&Value) -> Result<ExecutableContent, ContentError>,
    cases: Vec<(Value, &str)>,
) {
    for (i, (content, expected)) in cases.into_iter().enumerate() {
        match parse(&content) {
            Ok(_) => panic!("case {i} ({expected}) was accepted"),
            Err(e) => assert_eq!(field(&e), expected, "case {i}: {e}"),
        }
    }
}

#[track_caller]
fn check_accepted(parse: fn(&Value) -> Result<ExecutableContent, ContentError>, cases: Vec<Value>) {
    for (i, content) in cases.into_iter().enumerate() {
        if let Err(e) = parse(&content) {
            panic!("case {i} was refused: {e}");
        }
    }
}

fn refs(content: &ExecutableContent) -> Vec<(&str, &str, bool, Option<u64>)> {
    content
        .volumes
        .iter()
        .map(|v| (v.role, v.reference.as_str(), v.use_latest, v.size_mib))
        .collect()
}

#[test]
fn sdk_programs_pass() {
    let p = program(&sdk_program()).expect("the SDK's default program");
    assert!(!p.allow_amend);
    assert_eq!(p.replaces, None);
    assert_eq!(
        refs(&p),
        [("code", CODE, true, None), ("runtime", RUNTIME, true, None)]
    );
    assert_eq!(p.payment_type, Some("hold"));
    assert!(!p.persistent && !p.confidential);
    assert_eq!((p.vcpus, p.memory_mib, p.seconds), (1, 256, 30));
    assert!(p.on_message.is_empty());

    let p = program(&rich_program()).expect("a program with every section");
    assert!(p.allow_amend && p.persistent);
    assert_eq!(
        refs(&p),
        [
            ("code", CODE, false, None),
            ("runtime", RUNTIME, true, None),
            ("data", LIBRARIES, false, None),
            ("volume", LIBRARIES, true, None),
            ("volume", DEBIAN_12, false, Some(2048)),
        ]
    );
    assert_eq!(
        p.on_message,
        [json!({"sender": "0xabc", "channel": "TEST"})
            .as_object()
            .cloned()
            .expect("object")]
    );
}

#[test]
fn sdk_instances_pass() {
    let i = instance(&sdk_instance()).expect("the SDK's default instance");
    assert_eq!(refs(&i), [("rootfs", DEBIAN_12, true, Some(20480))]);
    assert_eq!(i.payment_type, Some("hold"));
    assert!(i.persistent && !i.confidential);
    assert_eq!((i.vcpus, i.memory_mib, i.seconds), (1, 2048, 30));

    let i = instance(&confidential_instance()).expect("a confidential PAYG instance");
    assert!(i.confidential);
    assert_eq!(i.payment_type, Some("superfluid"));

    let i = instance(&gpu_instance()).expect("a credit GPU instance without a node");
    assert_eq!(
        refs(&i),
        [
            ("rootfs", DEBIAN_12, true, Some(20480)),
            ("volume", DEBIAN_12, false, Some(1024))
        ]
    );

    let i = instance(&snp_instance()).expect("a measured SEV-SNP instance");
    assert!(i.confidential);
    let tdx = with(snp_instance(), "/environment/trusted_execution", tdx_tee());
    instance(&tdx).expect("a measured TDX instance");
}

#[test]
fn through_content_parse() {
    let raw = without(without(sdk_program(), "/address"), "/time").to_string();
    let c = super::super::Content::parse(crate::MessageType::Program, raw.as_bytes(), OWNER, 1.0)
        .expect("valid");
    assert!(matches!(c.typed, super::super::TypedContent::Program(ref p) if p.volumes.len() == 2));
    let raw = sdk_instance().to_string();
    let c = super::super::Content::parse(crate::MessageType::Instance, raw.as_bytes(), OWNER, 1.0)
        .expect("valid");
    assert_eq!(c.tags(), ["web", "debian"]);
    // An instance is not a program and the other way round.
    assert!(
        super::super::Content::parse(crate::MessageType::Program, raw.as_bytes(), OWNER, 1.0)
            .is_err()
    );
}

#[test]
fn defaults_and_nulls() {
    // Optional sections may be null; defaulted ones may be absent.
    let p = program(&json!({
        "address": OWNER, "time": 1.0, "allow_amend": false, "type": "vm-function",
        "environment": {}, "resources": {},
        "code": {"encoding": "plain", "entrypoint": "main:app", "ref": CODE},
        "runtime": {"ref": RUNTIME, "comment": ""},
        "on": {"http": false, "message": null, "persistent": null},
        "metadata": null, "authorized_keys": null, "variables": null, "payment": null,
        "requirements": null, "replaces": null, "data": null, "export": null
    }))
    .expect("minimal program");
    assert_eq!((p.vcpus, p.memory_mib, p.seconds), (1, 128, 1));
    assert_eq!(
        refs(&p),
        [
            ("code", CODE, false, None),
            ("runtime", RUNTIME, true, None)
        ]
    );
    assert_eq!(p.payment_type, None);
    let i =
        instance(&without(without(sdk_instance(), "/payment"), "/volumes")).expect("no payment");
    assert_eq!(i.payment_type, None);
    let data = with(rich_program(), "/data/use_latest", Value::Null);
    assert!(!program(&data).expect("null use_latest").volumes[2].use_latest);

    check_refused(
        program,
        vec![
            (with(sdk_program(), "/volumes", Value::Null), "volumes"),
            (
                with(sdk_program(), "/allow_amend", Value::Null),
                "allow_amend",
            ),
            (
                with(sdk_program(), "/resources/vcpus", Value::Null),
                "resources.vcpus",
            ),
            (
                with(sdk_program(), "/environment/internet", Value::Null),
                "environment.internet",
            ),
            (
                with(sdk_program(), "/code/use_latest", Value::Null),
                "code.use_latest",
            ),
        ],
    );
}

#[test]
fn lax_values_as_the_reference_coerces_them() {
    let lax = with(
        with(
            with(sdk_program(), "/allow_amend", json!("yes")),
            "/resources/vcpus",
            json!("2"),
        ),
        "/resources/memory",
        json!(512.0),
    );
    let p = program(&lax).expect("coerced");
    assert!(p.allow_amend);
    assert_eq!((p.vcpus, p.memory_mib), (2, 512));
    check_accepted(
        program,
        vec![
            with(sdk_program(), "/on/http", json!(1)),
            with(sdk_program(), "/environment/internet", json!("OFF")),
            with(sdk_program(), "/resources/seconds", json!(" 1_000 ")),
            with(sdk_program(), "/resources/seconds", json!("60.00")),
            with(sdk_program(), "/resources/vcpus", json!(true)),
            with(
                sdk_program(),
                "/volumes",
                json!([{"ephemeral": 1, "size_mib": 5}]),
            ),
        ],
    );
    check_refused(
        program,
        vec![
            (with(sdk_program(), "/allow_amend", json!(2)), "allow_amend"),
            (
                with(sdk_program(), "/allow_amend", json!(" true")),
                "allow_amend",
            ),
            (
                with(sdk_program(), "/resources/vcpus", json!(1.5)),
                "resources.vcpus",
            ),
            (
                with(sdk_program(), "/resources/vcpus", json!("1e1")),
                "resources.vcpus",
            ),
            (
                with(sdk_program(), "/resources/vcpus", json!("1.")),
                "resources.vcpus",
            ),
            (
                with(sdk_program(), "/resources/vcpus", json!("1__0")),
                "resources.vcpus",
            ),
            // Volume sizes are strict integers.
            (
                with(
                    sdk_program(),
                    "/volumes",
                    json!([{"ephemeral": true, "size_mib": 5.0}]),
                ),
                "volumes[0].size_mib",
            ),
            (
                with(
                    sdk_program(),
                    "/volumes",
                    json!([{"ephemeral": true, "size_mib": "5"}]),
                ),
                "volumes[0].size_mib",
            ),
            // Strings and enums are never coerced.
            (
                with(sdk_program(), "/code/entrypoint", json!(1)),
                "code.entrypoint",
            ),
            (
                with(sdk_program(), "/code/encoding", json!("ZIP")),
                "code.encoding",
            ),
        ],
    );
}

#[test]
fn program_rules() {
    let p = sdk_program;
    let long = |n: usize| "x".repeat(n);
    let many = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect());
    check_accepted(
        program,
        vec![
            with(p(), "/metadata", many(256)),
            with(
                p(),
                "/metadata",
                json!({"a": 1, "b": 2.5, "c": true, "d": null, "e": long(512)}),
            ),
            with(p(), "/variables", json!({long(128): long(4096)})),
            with(p(), "/authorized_keys", json!([long(8192)])),
            with(p(), "/replaces", json!(long(128))),
            with(
                p(),
                "/resources",
                json!({"vcpus": 256, "memory": 1048576, "seconds": 315360000}),
            ),
            with(p(), "/on/message", json!([many(32)])),
            with(p(), "/payment", json!({"type": "credit", "anything": 1})),
            with(p(), "/code/extra", json!("ignored")),
            with(
                p(),
                "/environment/hypervisor",
                json!("not read for programs"),
            ),
            with(
                p(),
                "/requirements",
                json!({"node": {"address_regex": "^0x[0-9a-fA-F]{40}$", "owner": OWNER}}),
            ),
            with(p(), "/volumes", json!([{"size_mib": 1953125}])),
        ],
    );
    check_refused(
        program,
        vec![
            (with(p(), "/type", json!("vm-instance")), "type"),
            (without(p(), "/type"), "type"),
            (with(p(), "/tags", json!(["a"])), "tags"),
            (with(p(), "/rootfs", json!({})), "rootfs"),
            (without(p(), "/allow_amend"), "allow_amend"),
            (without(p(), "/environment"), "environment"),
            (without(p(), "/resources"), "resources"),
            (without(p(), "/code"), "code"),
            (without(p(), "/runtime"), "runtime"),
            (without(p(), "/on"), "on"),
            (without(p(), "/runtime/comment"), "runtime.comment"),
            (without(p(), "/code/entrypoint"), "code.entrypoint"),
            (with(p(), "/code/ref", json!("not-a-hash")), "code.ref"),
            (
                with(p(), "/code/ref", json!(RUNTIME.to_uppercase())),
                "code.ref",
            ),
            (
                with(p(), "/code/interface", json!("wsgi")),
                "code.interface",
            ),
            (with(p(), "/code/args", json!(["a", 1])), "code.args[1]"),
            (
                with(p(), "/runtime/use_latest", json!("maybe")),
                "runtime.use_latest",
            ),
            (
                with(p(), "/data", json!({"encoding": "zip", "ref": CODE})),
                "data.mount",
            ),
            (
                with(p(), "/export", json!({"encoding": "tar", "mount": "/out"})),
                "export.encoding",
            ),
            (with(p(), "/on/http", json!(null)), "on.http"),
            (with(p(), "/on/cron", json!("* * * * *")), "on.cron"),
            (with(p(), "/on/message", json!([1])), "on.message[0]"),
            (with(p(), "/on/message", json!([many(33)])), "on.message[0]"),
            (with(p(), "/metadata", many(257)), "metadata"),
            (
                with(p(), "/metadata", json!({long(65): 1})),
                &*format!("metadata.{}", long(65)),
            ),
            (
                with(p(), "/metadata", json!({"a": long(513)})),
                "metadata.a",
            ),
            (
                with(p(), "/metadata", json!({"a": {"nested": 1}})),
                "metadata.a",
            ),
            (with(p(), "/metadata", json!({"a": [1]})), "metadata.a"),
            (
                with(p(), "/metadata", json!({"tags": null})),
                "metadata.tags",
            ),
            (
                with(p(), "/metadata", json!({"tags": [""]})),
                "metadata.tags[0]",
            ),
            (
                with(p(), "/metadata", json!({"tags": [long(257)]})),
                "metadata.tags[0]",
            ),
            (
                with(p(), "/metadata", json!({"tags": vec!["t"; 17]})),
                "metadata.tags",
            ),
            (
                with(p(), "/authorized_keys", json!(vec!["k"; 257])),
                "authorized_keys",
            ),
            (
                with(p(), "/authorized_keys", json!([long(8193)])),
                "authorized_keys[0]",
            ),
            (
                with(p(), "/authorized_keys", json!("ssh-ed25519 AAAA")),
                "authorized_keys",
            ),
            (with(p(), "/variables", many(257)), "variables"),
            (
                with(p(), "/variables", json!({long(129): "v"})),
                &*format!("variables.{}", long(129)),
            ),
            (
                with(p(), "/variables", json!({"K": long(4097)})),
                "variables.K",
            ),
            (with(p(), "/variables", json!({"K": 1})), "variables.K"),
            (with(p(), "/replaces", json!(long(129))), "replaces"),
            (with(p(), "/environment", json!("internet")), "environment"),
            (
                with(p(), "/environment/aleph_api", json!("sometimes")),
                "environment.aleph_api",
            ),
        ],
    );
}

#[test]
fn resources_payment_and_requirements() {
    let p = sdk_program;
    check_refused(
        program,
        vec![
            (with(p(), "/resources/vcpus", json!(0)), "resources.vcpus"),
            (with(p(), "/resources/vcpus", json!(257)), "resources.vcpus"),
            (with(p(), "/resources/memory", json!(0)), "resources.memory"),
            (
                with(p(), "/resources/memory", json!(1048577)),
                "resources.memory",
            ),
            (
                with(p(), "/resources/seconds", json!(315360001)),
                "resources.seconds",
            ),
            (
                with(p(), "/resources/seconds", json!(-1)),
                "resources.seconds",
            ),
            (
                with(p(), "/resources/vcpus", json!(1e30)),
                "resources.vcpus",
            ),
            (
                with(p(), "/resources/published_ports", json!([{"port": 0}])),
                "resources.published_ports[0].port",
            ),
            (
                with(p(), "/resources/published_ports", json!([{"port": 65536}])),
                "resources.published_ports[0].port",
            ),
            (
                with(
                    p(),
                    "/resources/published_ports",
                    json!([{"protocol": "sctp", "port": 80}]),
                ),
                "resources.published_ports[0].protocol",
            ),
            (
                with(
                    p(),
                    "/resources/published_ports",
                    json!([{"protocol": "tcp"}]),
                ),
                "resources.published_ports[0].port",
            ),
            (
                with(p(), "/payment", json!({"chain": "ETH"})),
                "payment.type",
            ),
            (
                with(p(), "/payment", json!({"type": "stream"})),
                "payment.type",
            ),
            (
                with(p(), "/payment", json!({"type": "hold", "chain": "eth"})),
                "payment.chain",
            ),
            (
                with(p(), "/payment", json!({"type": "hold", "receiver": 5})),
                "payment.receiver",
            ),
            (with(p(), "/payment", json!("hold")), "payment"),
            (
                with(p(), "/requirements", json!({"memory": 1})),
                "requirements.memory",
            ),
            (
                with(
                    p(),
                    "/requirements",
                    json!({"cpu": {"architecture": "riscv64"}}),
                ),
                "requirements.cpu.architecture",
            ),
            (
                with(p(), "/requirements", json!({"cpu": {"cores": 4}})),
                "requirements.cpu.cores",
            ),
            (
                with(p(), "/requirements", json!({"cpu": {"features": "sev"}})),
                "requirements.cpu.features",
            ),
            (
                with(p(), "/requirements", json!({"node": {"node_hash": "abc"}})),
                "requirements.node.node_hash",
            ),
            (
                with(
                    p(),
                    "/requirements",
                    json!({"node": {"terms_and_conditions": 1}}),
                ),
                "requirements.node.terms_and_conditions",
            ),
            (
                with(p(), "/requirements", json!({"node": {"name": "x"}})),
                "requirements.node.name",
            ),
            (
                with(
                    p(),
                    "/requirements",
                    json!({"node": {"address_regex": "x".repeat(257)}}),
                ),
                "requirements.node.address_regex",
            ),
            (
                with(
                    p(),
                    "/requirements",
                    json!({"node": {"address_regex": "^(0x"}}),
                ),
                "requirements.node.address_regex",
            ),
            (
                with(
                    p(),
                    "/requirements",
                    json!({"gpu": [{"vendor": "NVIDIA", "device_name": "L40S", "device_class": "0301", "device_id": "10de:26b9"}]}),
                ),
                "requirements.gpu[0].device_class",
            ),
            (
                with(
                    p(),
                    "/requirements",
                    json!({"gpu": [{"vendor": "NVIDIA", "device_class": "0300", "device_id": "x"}]}),
                ),
                "requirements.gpu[0].device_name",
            ),
            (
                with(
                    p(),
                    "/requirements",
                    json!({"gpu": [{"vendor": "NVIDIA", "device_name": "L40S", "device_class": "0300", "device_id": "x", "vram": 48}]}),
                ),
                "requirements.gpu[0].vram",
            ),
        ],
    );
}

#[test]
fn volume_rules() {
    let vol = |v: Value| with(sdk_program(), "/volumes", json!([v]));
    check_accepted(
        program,
        vec![
            vol(json!({"ref": CODE})),
            vol(
                json!({"ref": CODE, "use_latest": false, "comment": "x".repeat(256), "mount": "/m"}),
            ),
            vol(json!({"ephemeral": true, "size_mib": 1000})),
            vol(json!({"size_mib": 1})),
            vol(
                json!({"parent": {"ref": CODE}, "size_mib": 10, "name": "n", "persistence": "store"}),
            ),
            vol(json!({"parent": null, "persistence": null, "name": null, "size_mib": 10})),
        ],
    );
    let too_many = with(
        sdk_program(),
        "/volumes",
        Value::Array(vec![json!({"ref": CODE}); 257]),
    );
    check_refused(
        program,
        vec![
            (too_many, "volumes"),
            (
                with(sdk_program(), "/volumes", json!({"ref": CODE})),
                "volumes",
            ),
            (vol(json!("ref")), "volumes[0]"),
            (vol(json!({})), "volumes[0].size_mib"),
            (vol(json!({"ref": "nope"})), "volumes[0].ref"),
            (
                vol(json!({"ref": CODE, "size_mib": 5})),
                "volumes[0].size_mib",
            ),
            (
                vol(json!({"ref": CODE, "comment": "x".repeat(257)})),
                "volumes[0].comment",
            ),
            (
                vol(json!({"ref": CODE, "mount": "x".repeat(257)})),
                "volumes[0].mount",
            ),
            (
                vol(json!({"ephemeral": true, "size_mib": 1001})),
                "volumes[0].size_mib",
            ),
            (
                vol(json!({"ephemeral": true, "size_mib": 0})),
                "volumes[0].size_mib",
            ),
            (
                vol(json!({"ephemeral": false, "size_mib": 5})),
                "volumes[0].ephemeral",
            ),
            (
                vol(json!({"ephemeral": "true", "size_mib": 5})),
                "volumes[0].ephemeral",
            ),
            (vol(json!({"ephemeral": true})), "volumes[0].size_mib"),
            (vol(json!({"size_mib": 1953126})), "volumes[0].size_mib"),
            (
                vol(json!({"persistence": "cloud", "size_mib": 10})),
                "volumes[0].persistence",
            ),
            (
                vol(json!({"name": "x".repeat(257), "size_mib": 10})),
                "volumes[0].name",
            ),
            (
                vol(json!({"parent": {"use_latest": true}, "size_mib": 10})),
                "volumes[0].parent.ref",
            ),
            (vol(json!({"parent": {"ref": CODE}})), "volumes[0].size_mib"),
            (
                vol(json!({"name": "n", "size_mib": 10, "ephemeral": true})),
                "volumes[0].name",
            ),
            (
                vol(json!({"name": "n", "size_mib": 10, "readonly": true})),
                "volumes[0].readonly",
            ),
        ],
    );
}

#[test]
fn instance_rules() {
    let i = sdk_instance;
    check_accepted(
        instance,
        vec![
            with(i(), "/rootfs/size_mib", json!(1953125)),
            with(i(), "/rootfs/forgotten_by", json!(["a"])),
            with(i(), "/rootfs/extra", json!("ignored")),
            with(i(), "/environment/hypervisor", json!("firecracker")),
            without(i(), "/environment/hypervisor"),
            // An empty trusted_execution slips past the hypervisor check.
            with(
                with(i(), "/environment/hypervisor", json!("firecracker")),
                "/environment/trusted_execution",
                json!({}),
            ),
            with(
                i(),
                "/environment/trusted_execution",
                json!({"policy": "5"}),
            ),
            with(
                i(),
                "/environment/trusted_execution",
                json!({"mode": "sev", "policy": -3}),
            ),
            // Superfluid without requirements is left to the node.
            with(i(), "/payment", json!({"type": "superfluid"})),
            // Confidential GPUs (aleph-message 1.7).
            with(
                confidential_instance(),
                "/requirements/gpu",
                json!([{"vendor": "NVIDIA", "device_name": "H100", "device_class": "0302", "device_id": "10de:2331"}]),
            ),
            // Terms and conditions of a credit or confidential instance.
            with(
                with(i(), "/payment", json!({"type": "credit"})),
                "/requirements",
                json!({"node": {"node_hash": NODE, "terms_and_conditions": CODE}}),
            ),
            with(confidential_instance(), "/payment", json!({"type": "hold"})),
        ],
    );
    let gpu = json!([{"vendor": "NVIDIA", "device_name": "L40S", "device_class": "0302", "device_id": "10de:26b9"}]);
    check_refused(
        instance,
        vec![
            (with(i(), "/type", json!("vm-instance")), "type"),
            (with(i(), "/code", json!({})), "code"),
            (without(i(), "/rootfs"), "rootfs"),
            (without(i(), "/environment"), "environment"),
            (without(i(), "/rootfs/persistence"), "rootfs.persistence"),
            (without(i(), "/rootfs/parent"), "rootfs.parent"),
            (without(i(), "/rootfs/size_mib"), "rootfs.size_mib"),
            (with(i(), "/rootfs/size_mib", json!(0)), "rootfs.size_mib"),
            (
                with(i(), "/rootfs/size_mib", json!(1953126)),
                "rootfs.size_mib",
            ),
            (
                with(i(), "/rootfs/size_mib", json!(20480.0)),
                "rootfs.size_mib",
            ),
            (
                with(i(), "/rootfs/parent/ref", json!(DEBIAN_12.to_uppercase())),
                "rootfs.parent.ref",
            ),
            (
                with(i(), "/rootfs/parent/use_latest", json!(null)),
                "rootfs.parent.use_latest",
            ),
            (
                with(i(), "/environment/hypervisor", json!("kvm")),
                "environment.hypervisor",
            ),
            (
                without(
                    with(i(), "/environment/trusted_execution", json!({"policy": 1})),
                    "/environment/hypervisor",
                ),
                "environment.trusted_execution",
            ),
            (
                with(
                    with(i(), "/environment/hypervisor", json!("firecracker")),
                    "/environment/trusted_execution",
                    json!({"policy": 1}),
                ),
                "environment.trusted_execution",
            ),
            (
                with(
                    i(),
                    "/environment/trusted_execution",
                    json!({"firmware": "nope"}),
                ),
                "environment.trusted_execution.firmware",
            ),
            (
                with(
                    i(),
                    "/environment/trusted_execution",
                    json!({"debug": true}),
                ),
                "environment.trusted_execution.debug",
            ),
            (
                with(
                    i(),
                    "/environment/trusted_execution",
                    json!({"policy": 1.5}),
                ),
                "environment.trusted_execution.policy",
            ),
            // Payment and node rules.
            (
                with(
                    with(i(), "/payment", json!({"type": "superfluid"})),
                    "/requirements",
                    json!({}),
                ),
                "requirements.node.node_hash",
            ),
            (
                with(i(), "/requirements", json!({"gpu": gpu})),
                "requirements.node.node_hash",
            ),
            (
                with(
                    with(
                        i(),
                        "/requirements",
                        json!({"gpu": gpu, "node": {"node_hash": NODE}}),
                    ),
                    "/environment/hypervisor",
                    json!("firecracker"),
                ),
                "environment.hypervisor",
            ),
            (
                without(
                    with(
                        i(),
                        "/requirements",
                        json!({"gpu": gpu, "node": {"node_hash": NODE}}),
                    ),
                    "/environment/hypervisor",
                ),
                "environment.hypervisor",
            ),
            (
                with(
                    i(),
                    "/requirements",
                    json!({"node": {"terms_and_conditions": CODE}}),
                ),
                "requirements.node.node_hash",
            ),
            (
                with(
                    i(),
                    "/requirements",
                    json!({"node": {"node_hash": NODE, "terms_and_conditions": CODE}}),
                ),
                "requirements.node.terms_and_conditions",
            ),
            (
                with(snp_instance(), "/requirements", json!({"gpu": gpu})),
                "requirements.gpu",
            ),
        ],
    );
}

#[test]
fn trusted_execution_rules() {
    let tee = |v: Value| with(snp_instance(), "/environment/trusted_execution", v);
    let snp = || snp_instance()["environment"]["trusted_execution"].clone();
    let measurement = snp()["measurements"][0].clone();
    let t = "environment.trusted_execution";
    check_accepted(
        instance,
        vec![
            tee(without(snp(), "/gpu")),
            tee(without(
                without(snp(), "/attestation_port"),
                "/measurements/0/vcpu_type",
            )),
            tee(with(snp(), "/policy", json!(u64::MAX))),
            tee(with(
                snp(),
                "/measurements",
                Value::Array(vec![measurement.clone(); 16]),
            )),
            tee(with(snp(), "/gpu/models", Value::Null)),
        ],
    );
    let gpu = |key: &str, value: Value| tee(with(snp(), &format!("/gpu/{key}"), value));
    check_refused(
        instance,
        vec![
            (
                with(snp_instance(), "/payment", json!({"type": "hold"})),
                "payment.type",
            ),
            (without(snp_instance(), "/payment"), "payment.type"),
            (tee(without(snp(), "/runtime")), &*format!("{t}.runtime")),
            (
                tee(without(snp(), "/measurements")),
                &*format!("{t}.measurements"),
            ),
            (
                tee(with(snp(), "/measurements", json!([]))),
                &*format!("{t}.measurements"),
            ),
            (
                tee(with(snp(), "/firmware", json!(FIRMWARE))),
                &*format!("{t}.firmware"),
            ),
            (
                tee(with(snp(), "/mode", json!("sgx"))),
                &*format!("{t}.mode"),
            ),
            (
                tee(with(snp(), "/policy", json!(1))),
                &*format!("{t}.policy"),
            ),
            (
                tee(with(snp(), "/policy", json!(-196608))),
                &*format!("{t}.policy"),
            ),
            (
                tee(with(snp(), "/policy", json!("36893488147419103232"))),
                &*format!("{t}.policy"),
            ),
            (
                tee(with(snp(), "/attestation_port", json!(0))),
                &*format!("{t}.attestation_port"),
            ),
            (
                tee(with(
                    snp(),
                    "/measurements",
                    Value::Array(vec![measurement; 17]),
                )),
                &*format!("{t}.measurements"),
            ),
            (
                tee(with(snp(), "/measurements/0/platform", json!("tdx"))),
                &*format!("{t}.measurements[0].registers"),
            ),
            (
                tee(with(snp(), "/measurements/0/platform", json!("sev"))),
                &*format!("{t}.measurements[0].platform"),
            ),
            (
                tee(with(
                    snp(),
                    "/measurements/0/registers/launch",
                    json!("AB".repeat(48)),
                )),
                &*format!("{t}.measurements[0].registers.launch"),
            ),
            (
                tee(with(
                    snp(),
                    "/measurements/0/registers/launch",
                    json!("ab".repeat(47)),
                )),
                &*format!("{t}.measurements[0].registers.launch"),
            ),
            (
                tee(with(snp(), "/measurements/0/registers/mrtd", json!("ab"))),
                &*format!("{t}.measurements[0].registers.mrtd"),
            ),
            (
                tee(with(
                    snp(),
                    "/measurements/0/vcpu_type",
                    json!("x".repeat(65)),
                )),
                &*format!("{t}.measurements[0].vcpu_type"),
            ),
            (
                tee(with(snp(), "/measurements/0/extra", json!(1))),
                &*format!("{t}.measurements[0].extra"),
            ),
            (gpu("vendor", json!("amd")), &*format!("{t}.gpu.vendor")),
            (gpu("arch", json!("ampere")), &*format!("{t}.gpu.arch")),
            (gpu("count", json!(0)), &*format!("{t}.gpu.count")),
            (gpu("count", json!(9)), &*format!("{t}.gpu.count")),
            (gpu("count", json!(1.0)), &*format!("{t}.gpu.count")),
            (gpu("models", json!([])), &*format!("{t}.gpu.models")),
            (
                gpu("models", json!(["10DE:2BB5"])),
                &*format!("{t}.gpu.models[0]"),
            ),
            (
                gpu("models", json!(["10de:2bb5", "10de:2bb5"])),
                &*format!("{t}.gpu.models[1]"),
            ),
            (gpu("mode", json!("ppcie")), &*format!("{t}.gpu.mode")),
            (tee(without(snp(), "/gpu/mode")), &*format!("{t}.gpu.mode")),
            // TDX: default policy, exactly one measurement, no GPU.
            (
                tee(with(tdx_tee(), "/policy", json!(196608))),
                &*format!("{t}.policy"),
            ),
            (
                tee(with(
                    tdx_tee(),
                    "/measurements",
                    Value::Array(vec![tdx_tee()["measurements"][0].clone(); 2]),
                )),
                &*format!("{t}.measurements"),
            ),
            (
                tee(with(tdx_tee(), "/gpu", snp()["gpu"].clone())),
                &*format!("{t}.gpu"),
            ),
            // Legacy SEV carries none of the measured fields.
            (
                tee(json!({"firmware": FIRMWARE, "runtime": RUNTIME})),
                &*format!("{t}.runtime"),
            ),
            (
                tee(json!({"mode": "sev", "measurements": []})),
                &*format!("{t}.measurements"),
            ),
            (
                tee(json!({"attestation_port": 8443})),
                &*format!("{t}.attestation_port"),
            ),
            (
                tee(json!({"gpu": snp()["gpu"].clone()})),
                &*format!("{t}.gpu"),
            ),
        ],
    );
}

#[test]
fn chains_of_the_reference() {
    for chain in [
        "ARB",
        "AURORA",
        "AVAX",
        "BASE",
        "BLAST",
        "BOB",
        "BSC",
        "CSDK",
        "CYBER",
        "DOT",
        "ES",
        "ETH",
        "ETHERLINK",
        "FRAX",
        "HYPE",
        "INK",
        "LENS",
        "LINEA",
        "LISK",
        "METIS",
        "MODE",
        "NEO",
        "NULS",
        "NULS2",
        "OP",
        "POL",
        "SOL",
        "STT",
        "SONIC",
        "TEZOS",
        "UNICHAIN",
        "WLD",
        "ZORA",
    ] {
        let content = with(sdk_instance(), "/payment/chain", json!(chain));
        assert!(instance(&content).is_ok(), "{chain}");
    }
}

#[test]
fn address_regex_syntax() {
    for good in [
        "^0x[0-9a-fA-F]{40}$",
        "",
        "a{,}",
        "x{}",
        "x{a}",
        "[]a]",
        "[^]]",
        "[a-]",
        "[\\d-]",
        "a*?b+?c??d*+",
        "(?:a|b)*",
        "(?P<name>a)(?P=name)",
        "(a)\\1",
        "\\101",
        "(?i)abc",
        "(?#c)(?i)(?m)a",
        "(?i:a)*",
        "(?=a)*",
        "(?#comment)",
        "\\x41\\u0041\\U00000041\\N{LATIN SMALL LETTER A}",
        "[\\x00-\\x7f]",
        "\\.\\-\\[",
        "(?(1)a|b)",
        "é+",
        "(?x) a # verbose, not modelled",
    ] {
        assert_eq!(python_regex_error(good), None, "{good:?}");
    }
    for bad in [
        "(",
        "(a",
        "a)",
        "[a",
        "[]",
        "*a",
        "a|*",
        "(*)",
        "^*",
        "\\b+",
        "a**",
        "a{2}{3}",
        "{2}",
        "a{3,2}",
        "a{4294967295}",
        "\\",
        "\\q",
        "[\\A]",
        "[\\8]",
        "\\x4",
        "\\u004",
        "\\U00110000",
        "\\N",
        "[z-a]",
        "[\\d-z]",
        "[a-\\w]",
        "\\1",
        "(a\\1)",
        "\\400",
        "(?",
        "(?Q)",
        "(?<n>a)",
        "(?P<1a>x)",
        "(?P<>x)",
        "(?P<n",
        "(?Px)",
        "(?#unterminated",
        "a(?i)",
        "|(?i)",
        "((?i))",
        "(?i)*",
        "(?a",
        "(?i!)",
    ] {
        assert!(python_regex_error(bad).is_some(), "{bad:?}");
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9_ .:-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("ref".to_owned()),
                        Just("size_mib".to_owned()),
                        Just("parent".to_owned()),
                        Just("type".to_owned()),
                        "[a-z_]{1,8}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Pointers of the realistic content where random values are planted.
const POINTERS: [&str; 14] = [
    "/allow_amend",
    "/metadata",
    "/variables",
    "/environment",
    "/environment/trusted_execution",
    "/resources",
    "/payment",
    "/requirements",
    "/volumes",
    "/rootfs",
    "/rootfs/parent",
    "/code",
    "/on",
    "/replaces",
];

proptest! {
    #[test]
    fn never_panics_on_arbitrary_values(pointer in prop::sample::select(&POINTERS[..]), value in json_value()) {
        for base in [sdk_program(), rich_program(), sdk_instance(), snp_instance()] {
            let mut content = base;
            if content.pointer(pointer.rsplit_once('/').map_or("", |(parent, _)| parent)).is_some_and(Value::is_object) {
                set(&mut content, pointer, value.clone());
            }
            let _ = program(&content);
            let _ = instance(&content);
        }
        if let Value::Object(map) = &value {
            let _ = parse_program(map);
            let _ = parse_instance(map);
        }
    }

    #[test]
    fn regex_check_never_panics(pattern in "[-a-z0-9()\\[\\]{}?*+|^$\\\\.,:=!<>#PNxuU]{0,24}") {
        let _ = python_regex_error(&pattern);
    }

    #[test]
    fn integers_from_strings(n in any::<i64>()) {
        prop_assert_eq!(super::super::lax::int_from_str(&n.to_string()), Some(i128::from(n)));
        prop_assert_eq!(super::super::lax::int_from_str(&format!(" {n}.0 ")), Some(i128::from(n)));
    }
}
