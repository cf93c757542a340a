//! Building and signing messages of every type, inline, as the Python SDK builds them:
//! the content's fields in the order its models dump them (`address`, `time`, then the
//! type's own), serialized by [`crate::json::python_compact`], hashed as those exact bytes.

use raleph_crypto::SignedFields;
use raleph_message::{MessageType, sha256_hex};
use serde_json::{Map, Value, json};

use crate::json::python_compact;
use crate::signer::Sign;

/// A message before signing: its type, its content (without `address` and `time`, which
/// signing adds unless set), its channel and time.
///
/// ```
/// use raleph_sdk::{Chain, Draft, Signer};
/// use serde_json::json;
///
/// let signer = Signer::generate(Chain::Eth)?;
/// let post = Draft::post("note", json!({"title": "hello"}))
///     .channel("TEST")
///     .sign(&signer);
/// assert_eq!(post.item_hash().len(), 64);
/// let amend = Draft::amend(post.item_hash(), json!({"title": "hello again"})).sign(&signer);
/// assert_eq!(amend.json()["type"], "POST");
/// # Ok::<(), raleph_sdk::KeyError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a draft does nothing until it is signed"]
pub struct Draft {
    message_type: MessageType,
    fields: Map<String, Value>,
    channel: Option<String>,
    time: Option<f64>,
    address: Option<String>,
}

impl Draft {
    /// A draft of any type with this content (the builders below are the usual way).
    pub fn new(message_type: MessageType, content: Map<String, Value>) -> Self {
        Draft {
            message_type,
            fields: content,
            channel: None,
            time: None,
            address: None,
        }
    }

    /// A POST of this type (`post_type`, the content's `type`) carrying `content`.
    pub fn post(post_type: &str, content: Value) -> Self {
        let mut fields = Map::new();
        fields.insert("content".into(), content);
        fields.insert("type".into(), post_type.into());
        Self::new(MessageType::Post, fields)
    }

    /// A POST that amends `original` (an item hash): its content replaces the original's.
    pub fn amend(original: &str, content: Value) -> Self {
        let mut fields = Map::new();
        fields.insert("content".into(), content);
        fields.insert("ref".into(), original.into());
        fields.insert("type".into(), "amend".into());
        Self::new(MessageType::Post, fields)
    }

    /// An AGGREGATE: `content`'s keys are merged into the owner's aggregate `key`.
    pub fn aggregate(key: &str, content: Map<String, Value>) -> Self {
        let mut fields = Map::new();
        fields.insert("key".into(), key.into());
        fields.insert("content".into(), Value::Object(content));
        Self::new(MessageType::Aggregate, fields)
    }

    /// A STORE pinning the file with this sha256 (hex) in the node's storage.
    pub fn store(file_sha256: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("item_type".into(), "storage".into());
        fields.insert("item_hash".into(), file_sha256.into());
        Self::new(MessageType::Store, fields)
    }

    /// A PROGRAM running what `spec` says.
    pub fn program(spec: &ProgramSpec) -> Self {
        Self::new(MessageType::Program, spec.content())
    }

    /// An INSTANCE booting what `spec` says.
    pub fn instance(spec: &InstanceSpec) -> Self {
        Self::new(MessageType::Instance, spec.content())
    }

    /// A FORGET of these messages (item hashes), with an optional reason.
    pub fn forget<S: AsRef<str>>(hashes: &[S], reason: Option<&str>) -> Self {
        let mut fields = Map::new();
        fields.insert(
            "hashes".into(),
            hashes.iter().map(|h| Value::from(h.as_ref())).collect(),
        );
        // The SDK's model always writes the (empty) list of aggregate keys.
        fields.insert("aggregates".into(), json!([]));
        if let Some(reason) = reason {
            fields.insert("reason".into(), reason.into());
        }
        Self::new(MessageType::Forget, fields)
    }

    /// Also forget these aggregate keys of the owner (every element of each). The reference's
    /// model types these as item hashes, so nodes reject a FORGET naming any other key.
    pub fn forget_aggregates<S: AsRef<str>>(mut self, keys: &[S]) -> Self {
        self.fields.insert(
            "aggregates".into(),
            keys.iter().map(|k| Value::from(k.as_ref())).collect(),
        );
        self
    }

    /// The `ref` field: for a STORE, the file it is a new version of (an item hash) or a
    /// free-text reference; for a POST, what it refers to.
    pub fn reference(self, reference: &str) -> Self {
        self.field("ref", reference)
    }

    /// Sets any content field (e.g. a STORE's `metadata`, a POST's `tags` in its content).
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// The envelope's channel (none by default).
    pub fn channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_owned());
        self
    }

    /// The message's time, seconds since the epoch (default: now, at signing).
    pub fn time(mut self, time: f64) -> Self {
        self.time = Some(time);
        self
    }

    /// Publish on behalf of `owner` (the content's `address`): the owner's `security`
    /// aggregate must grant the signer this kind of message, or the node rejects it.
    pub fn on_behalf_of(mut self, owner: &str) -> Self {
        self.address = Some(owner.to_owned());
        self
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// Signs: completes the content (`address`, `time` first, as the SDK's models dump
    /// them), serializes it as `item_content`, hashes it and signs the result. The message is
    /// inline whatever its size; [`Client::sign_and_publish`](crate::Client::sign_and_publish)
    /// stores large content apart, as the Python SDK does.
    pub fn sign(self, signer: &impl Sign) -> SignedMessage {
        let sender = signer.address();
        let (content, parts) = self.complete(&sender);
        let item_content = python_compact(&Value::Object(content));
        let item_hash = sha256_hex(item_content.as_bytes());
        envelope(signer, &sender, &parts, &item_hash, Some(item_content))
    }

    /// The full content (`address` and `time` first), and what the envelope needs.
    pub(crate) fn complete(self, sender: &str) -> (Map<String, Value>, EnvelopeParts) {
        let time = self.time.unwrap_or_else(now);
        let mut content = Map::new();
        content.insert(
            "address".into(),
            self.address.unwrap_or_else(|| sender.to_owned()).into(),
        );
        content.insert("time".into(), json!(time));
        for (name, value) in self.fields {
            content.insert(name, value);
        }
        let parts = EnvelopeParts {
            message_type: self.message_type,
            channel: self.channel,
            time,
        };
        (content, parts)
    }
}

/// The envelope fields a draft decides.
pub(crate) struct EnvelopeParts {
    pub message_type: MessageType,
    pub channel: Option<String>,
    pub time: f64,
}

/// The signed envelope: inline around this exact `item_content`, or, without one, naming
/// content stored on the node under `item_hash` (its sha256).
pub(crate) fn envelope(
    signer: &impl Sign,
    sender: &str,
    parts: &EnvelopeParts,
    item_hash: &str,
    item_content: Option<String>,
) -> SignedMessage {
    let chain = signer.chain();
    let message_type = parts.message_type.as_str();
    let signature = signer.sign_fields(&SignedFields {
        chain,
        sender,
        message_type,
        item_hash,
        time: parts.time,
    });
    let mut json = json!({
        "sender": sender,
        "chain": chain.as_str(),
        "signature": signature,
        "type": message_type,
        "item_type": if item_content.is_some() { "inline" } else { "storage" },
        "item_hash": item_hash,
        "time": parts.time,
        "channel": parts.channel,
    });
    if let Some(item_content) = item_content {
        json["item_content"] = Value::String(item_content);
    }
    SignedMessage { json }
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A signed message, ready to submit: the envelope's JSON as `POST /api/v0/messages` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedMessage {
    json: Value,
}

impl SignedMessage {
    /// Its item hash (the sha256 of its `item_content`).
    pub fn item_hash(&self) -> &str {
        self.json["item_hash"].as_str().unwrap_or_default()
    }

    /// The envelope.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The envelope, owned.
    pub fn into_json(self) -> Value {
        self.json
    }
}

/// What a PROGRAM runs and how: the fields `raleph program deploy` sets.
#[derive(Debug, Clone)]
pub struct ProgramSpec {
    /// The STORE message of the code.
    pub code_ref: String,
    /// `plain` (a component) or `zip` (a bundle).
    pub encoding: String,
    /// What to run in the code: `module:app` for Python, the component's path in a bundle.
    pub entrypoint: String,
    /// Follow new versions of the code (a STORE whose `ref` is `code_ref`).
    pub use_latest: bool,
    /// The STORE message of the runtime.
    pub runtime_ref: String,
    /// A note on the runtime (the SDK writes its name).
    pub runtime_comment: String,
    /// Memory, MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Longest a request may run, seconds.
    pub seconds: u32,
    /// Outbound internet access.
    pub internet: bool,
    /// Environment variables.
    pub variables: Map<String, Value>,
    /// `on.message` subscriptions.
    pub on_message: Vec<Value>,
    /// Extra volumes, as the message carries them.
    pub volumes: Vec<Value>,
    /// Whether later versions (`replaces`) may update it.
    pub allow_amend: bool,
    /// The original this is a new version of.
    pub replaces: Option<String>,
}

impl ProgramSpec {
    /// The PROGRAM content, in the shape the Python SDK builds.
    pub fn content(&self) -> Map<String, Value> {
        let mut on = json!({"http": true, "persistent": false});
        if !self.on_message.is_empty() {
            on["message"] = Value::Array(self.on_message.clone());
        }
        let mut content = json!({
            "type": "vm-function",
            "allow_amend": self.allow_amend,
            "code": {
                "encoding": self.encoding,
                "entrypoint": self.entrypoint,
                "ref": self.code_ref,
                "use_latest": self.use_latest,
            },
            "on": on,
            "environment": {
                "reproducible": false,
                "internet": self.internet,
                "aleph_api": true,
                "shared_cache": false,
            },
            "resources": {"vcpus": self.vcpus, "memory": self.memory_mib, "seconds": self.seconds},
            "runtime": {"ref": self.runtime_ref, "use_latest": true, "comment": self.runtime_comment},
            "volumes": self.volumes,
            "variables": self.variables,
        });
        if let Some(original) = &self.replaces {
            content["replaces"] = json!(original);
        }
        match content {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// What an INSTANCE boots: its root filesystem (a copy of a STORE'd image, grown to
/// `rootfs_size_mib`) and its resources. The minimum the reference's model takes; add
/// fields with [`Draft::field`].
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// The STORE message of the root filesystem image.
    pub rootfs_ref: String,
    /// Follow new versions of the image.
    pub rootfs_use_latest: bool,
    /// The root filesystem's size, MiB (at least the image's).
    pub rootfs_size_mib: u64,
    /// Memory, MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Outbound internet access.
    pub internet: bool,
    /// `qemu` or `firecracker`.
    pub hypervisor: String,
    /// SSH public keys let in.
    pub authorized_keys: Vec<String>,
    /// `hold`, `superfluid` or `credit` (the reference takes only `credit` for new instances
    /// since 2026-03-11; a raleph node without payments takes any).
    pub payment: Option<String>,
    /// Whether later versions may update it.
    pub allow_amend: bool,
}

impl InstanceSpec {
    /// A spec with the SDK's defaults (qemu, 2048 MiB, 1 vCPU, internet) for this image.
    pub fn new(rootfs_ref: &str, rootfs_size_mib: u64) -> Self {
        InstanceSpec {
            rootfs_ref: rootfs_ref.to_owned(),
            rootfs_use_latest: false,
            rootfs_size_mib,
            memory_mib: 2048,
            vcpus: 1,
            internet: true,
            hypervisor: "qemu".into(),
            authorized_keys: Vec::new(),
            payment: None,
            allow_amend: false,
        }
    }

    /// The INSTANCE content.
    pub fn content(&self) -> Map<String, Value> {
        let mut content = json!({
            "allow_amend": self.allow_amend,
            "environment": {
                "reproducible": false,
                "internet": self.internet,
                "aleph_api": true,
                "shared_cache": false,
                "hypervisor": self.hypervisor,
            },
            "resources": {"vcpus": self.vcpus, "memory": self.memory_mib, "seconds": 30},
            "rootfs": {
                "parent": {"ref": self.rootfs_ref, "use_latest": self.rootfs_use_latest},
                "persistence": "host",
                "size_mib": self.rootfs_size_mib,
            },
            "volumes": [],
        });
        if !self.authorized_keys.is_empty() {
            content["authorized_keys"] = json!(self.authorized_keys);
        }
        if let Some(payment) = &self.payment {
            content["payment"] = json!({"type": payment, "chain": "ETH"});
        }
        match content {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Signer;
    use raleph_message::Chain;

    fn verify(message: &SignedMessage) {
        let m = message.json();
        let chain: Chain = m["chain"].as_str().unwrap().parse().unwrap();
        let fields = SignedFields {
            chain,
            sender: m["sender"].as_str().unwrap(),
            message_type: m["type"].as_str().unwrap(),
            item_hash: m["item_hash"].as_str().unwrap(),
            time: m["time"].as_f64().unwrap(),
        };
        raleph_crypto::verify(&fields, m["signature"].as_str().unwrap()).unwrap();
        assert_eq!(
            sha256_hex(m["item_content"].as_str().unwrap().as_bytes()),
            message.item_hash()
        );
    }

    #[test]
    fn signatures_verify_for_eth_and_sol() {
        for chain in [Chain::Eth, Chain::Sol] {
            let signer = Signer::generate(chain).unwrap();
            for draft in [
                Draft::post("note", json!({"a": 1})),
                Draft::amend(&"a".repeat(64), json!({"a": 2})),
                Draft::aggregate("profile", Map::new()),
                Draft::store(&"b".repeat(64)),
                Draft::instance(&InstanceSpec::new(&"c".repeat(64), 100)),
                Draft::forget(&["d".repeat(64)], Some("why")),
            ] {
                let message = draft.channel("TEST").sign(&signer);
                verify(&message);
                assert_eq!(message.json()["chain"], chain.as_str());
            }
        }
    }

    #[test]
    fn signatures_are_the_python_sdks() {
        // shared/spec/protocol.md 3.3: made with aleph-sdk-python 2.4.0.
        let mut content = Map::new();
        content.insert("type".into(), json!("test"));
        content.insert("content".into(), json!({"hello": "world"}));
        let eth = Signer::from_bytes(Chain::Eth, &[1; 32]).unwrap();
        let message = Draft::new(MessageType::Post, content.clone())
            .time(1700000000.0)
            .channel("TEST")
            .sign(&eth);
        assert_eq!(
            message.item_hash(),
            "acdcf62bccef79ac2df0627c0e1f82eb2a1ef8911e2a45003f61724d96f38be7"
        );
        assert_eq!(
            message.json()["signature"],
            "0xe0c1fc646fae42532a805444e572bf1e1eeac801d74e34b50dca87d48b78eb17379e3ce093928aa67f0491a143925151b469edf07aff0c2804cd811273f1897f1c"
        );
        let sol = Signer::from_bytes(Chain::Sol, &[2; 32]).unwrap();
        let message = Draft::new(MessageType::Post, content)
            .time(1700000000.0)
            .sign(&sol);
        assert_eq!(
            message.item_hash(),
            "f657fb968187e1ddb27c1c8fa73dae90cb291454de613e9b438b6e390373b716"
        );
        assert_eq!(
            message.json()["signature"],
            r#"{"publicKey": "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu", "signature": "58u7WoMoPxX38zesr5f5pmKLksb2j9Kc3ECT3fDnAaMgyrFNH5LVQxLjkXd3ATi4WmhTmPUwF1EzLRBUzuB3dMjw"}"#
        );
    }

    #[test]
    fn builders_write_the_sdk_models_bytes() {
        // What aleph-message 1.7.0's models dump (`model_dump(exclude_none=True)`, then
        // `json.dumps(..., separators=(",", ":"))`) for the same content.
        let signer = Signer::from_mnemonic(
            Chain::Eth,
            "test test test test test test test test test test test junk",
            "",
        )
        .unwrap();
        let a = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        let h = "ab".repeat(32);
        let mut aggregate = Map::new();
        aggregate.insert("n".into(), json!(1));
        for (draft, expected) in [
            (
                Draft::post("note", json!({"t": "é"})),
                format!(
                    r#"{{"address":"{a}","time":1700000000.5,"content":{{"t":"\u00e9"}},"type":"note"}}"#
                ),
            ),
            (
                Draft::amend(&h, json!({"t": 1})),
                format!(
                    r#"{{"address":"{a}","time":1700000000.5,"content":{{"t":1}},"ref":"{h}","type":"amend"}}"#
                ),
            ),
            (
                Draft::aggregate("profile", aggregate),
                format!(
                    r#"{{"address":"{a}","time":1700000000.5,"key":"profile","content":{{"n":1}}}}"#
                ),
            ),
            (
                Draft::store(&h),
                format!(
                    r#"{{"address":"{a}","time":1700000000.5,"item_type":"storage","item_hash":"{h}"}}"#
                ),
            ),
            (
                Draft::forget(&[&h], Some("why")),
                format!(
                    r#"{{"address":"{a}","time":1700000000.5,"hashes":["{h}"],"aggregates":[],"reason":"why"}}"#
                ),
            ),
        ] {
            let message = draft.time(1700000000.5).sign(&signer);
            assert_eq!(message.json()["item_content"], expected.as_str());
        }
    }

    #[test]
    fn item_content_is_the_sdk_layout() {
        let signer = Signer::from_bytes(Chain::Eth, &[7; 32]).unwrap();
        let message = Draft::post("note", json!({"t": "é"}))
            .time(1700000000.5)
            .on_behalf_of("0xowner")
            .sign(&signer);
        assert_eq!(
            message.json()["item_content"],
            r#"{"address":"0xowner","time":1700000000.5,"content":{"t":"\u00e9"},"type":"note"}"#
        );
        assert_eq!(message.json()["sender"], signer.address());
        let forget = Draft::forget(&["x"], None).time(1.0).sign(&signer);
        assert_eq!(
            forget.json()["item_content"].as_str().unwrap(),
            format!(
                r#"{{"address":"{}","time":1.0,"hashes":["x"],"aggregates":[]}}"#,
                signer.address()
            )
        );
    }
}
