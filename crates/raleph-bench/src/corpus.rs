//! Pre-signed corpora: N inline messages signed once with real ETH signatures, written one
//! request body per line (`{"sync": false, "message": {...}}`) and reused while the
//! parameters match.
//!
//! Every message is a pure function of `(parameters, index)`, so a corpus is identical
//! however many threads sign it, and a message can name an earlier one (an amend's `ref`)
//! without that one being at hand: its item hash is recomputed from its content, which needs
//! no signature.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use raleph_crypto::EthSigner;
use raleph_message::{MessageType, sha256_hex};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Bumped whenever the generated messages change, so stale caches are not reused.
const FORMAT: u64 = 2;
/// The first message's time; each next message is `TIME_STEP` seconds later.
pub const BASE_TIME: f64 = 1_700_000_000.0;
pub const TIME_STEP: f64 = 0.01;
/// Messages signed per unit of work handed to a thread.
const CHUNK: usize = 2_000;
/// An amend names a post at least this many messages earlier, so the original is processed
/// long before the amend arrives whatever the concurrency of the replay.
const AMEND_DISTANCE: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// POST messages: eight post types, refs, tags, 2 % amends.
    Post,
    /// AGGREGATE messages: twenty keys, a few fields each.
    Aggregate,
    /// 85 % POST and 15 % AGGREGATE, as a store to query.
    Mixed,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Aggregate => "aggregate",
            Kind::Mixed => "mixed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub kind: Kind,
    pub count: usize,
    pub addresses: usize,
    pub channels: usize,
    pub seed: u64,
}

impl Params {
    fn meta(&self, bytes: u64) -> Value {
        json!({
            "format": FORMAT,
            "kind": self.kind.name(),
            "count": self.count,
            "addresses": self.addresses,
            "channels": self.channels,
            "seed": self.seed,
            "bytes": bytes,
        })
    }

    /// The default cache file for these parameters.
    pub fn default_path(&self) -> PathBuf {
        cache_dir().join(format!(
            "{}-n{}-a{}-c{}-s{}.jsonl",
            self.kind.name(),
            self.count,
            self.addresses,
            self.channels,
            self.seed
        ))
    }
}

/// `${RALEPH_CACHE_DIR:-~/.cache/raleph}/bench`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("RALEPH_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache").join("raleph")
        });
    base.join("bench")
}

fn meta_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".meta.json");
    PathBuf::from(name)
}

/// SplitMix64: small, fast, and stable forever (unlike a library's default generator).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` %.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

pub const POST_TYPES: [&str; 8] = [
    "note", "blog", "comment", "chat", "status", "review", "event", "metric",
];
pub const AGGREGATE_KEYS: [&str; 20] = [
    "profile",
    "settings",
    "preferences",
    "contacts",
    "bookmarks",
    "devices",
    "sessions",
    "wallets",
    "badges",
    "stats",
    "k10",
    "k11",
    "k12",
    "k13",
    "k14",
    "k15",
    "k16",
    "k17",
    "k18",
    "k19",
];
const REFS: usize = 5_000;
const TAGS: usize = 100;
const WORDS: [&str; 24] = [
    "aleph", "node", "message", "signed", "wallet", "store", "index", "query", "fast", "rust",
    "chain", "post", "value", "network", "peer", "block", "hash", "time", "batch", "commit",
    "durable", "quick", "brown", "fox",
];

/// The signer of address index `a`: a key derived from the seed, so every run agrees.
pub fn signer(seed: u64, a: usize) -> EthSigner {
    let mut counter = 0u64;
    loop {
        let digest = Sha256::digest(format!("raleph-bench/key/{seed}/{a}/{counter}").as_bytes());
        let bytes: [u8; 32] = digest.into();
        if let Ok(signer) = EthSigner::from_secret_bytes(&bytes) {
            return signer;
        }
        counter += 1;
    }
}

/// The unsigned part of message `i`: who sends it, where, and its content.
struct Plan {
    address: usize,
    message_type: MessageType,
    channel: String,
    time: f64,
    /// Without `address` and `time`, which are added at the end like the SDK does.
    content: Map<String, Value>,
}

fn message_rng(p: &Params, i: usize) -> Rng {
    // Every parameter but the count shapes the contents (so corpora of different shapes
    // share no message), and a longer corpus starts with the messages of a shorter one.
    let mut base = Rng::new(p.seed);
    let shape = base.next_u64()
        ^ (p.kind as u64).wrapping_mul(0x9E37_79B9)
        ^ (p.addresses as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (p.channels as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    let mut r = Rng::new(shape ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    r.next_u64();
    r
}

fn is_amend(p: &Params, i: usize) -> bool {
    if p.kind == Kind::Aggregate || i < AMEND_DISTANCE + 1_000 {
        return false;
    }
    let mut r = message_rng(p, i);
    let post = p.kind == Kind::Post || r.below(100) < 85;
    post && r.chance(2)
}

fn words(r: &mut Rng, min: usize, max: usize) -> String {
    let n = min + r.below(max - min + 1);
    (0..n)
        .map(|_| WORDS[r.below(WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn tags(r: &mut Rng) -> Vec<Value> {
    let n = r.below(4);
    let mut out: Vec<Value> = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Value::from(format!("tag-{:02}", r.below(TAGS)));
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

fn plan(p: &Params, addresses: &[String], i: usize) -> Plan {
    let mut r = message_rng(p, i);
    let post = match p.kind {
        Kind::Post => true,
        Kind::Aggregate => false,
        Kind::Mixed => r.below(100) < 85,
    };
    let amend = post && p.kind != Kind::Aggregate && i >= AMEND_DISTANCE + 1_000 && r.chance(2);
    let mut address = r.below(p.addresses);
    let channel = format!("BENCH-{:03}", r.below(p.channels));
    let time = BASE_TIME + i as f64 * TIME_STEP;
    let mut content = Map::new();
    let message_type = if post {
        let mut body = Map::new();
        body.insert("title".into(), words(&mut r, 2, 6).into());
        body.insert("body".into(), words(&mut r, 5, 40).into());
        body.insert("n".into(), (i as u64).into());
        let t = tags(&mut r);
        if !t.is_empty() {
            body.insert("tags".into(), Value::Array(t));
        }
        let mut original = None;
        if amend {
            // Walk back to the nearest earlier message that is an original post.
            let mut j = i - AMEND_DISTANCE - r.below(1_000);
            while j > 0 && (is_amend(p, j) || !is_post(p, j)) {
                j -= 1;
            }
            if is_post(p, j) && !is_amend(p, j) {
                original = Some(j);
            }
        }
        match original {
            Some(j) => {
                let target = plan(p, addresses, j);
                address = target.address;
                content.insert("type".into(), "amend".into());
                content.insert("ref".into(), item_hash(&target, addresses).into());
            }
            None => {
                content.insert("type".into(), POST_TYPES[r.below(POST_TYPES.len())].into());
                if r.chance(25) {
                    content.insert("ref".into(), format!("ref-{:04}", r.below(REFS)).into());
                }
            }
        }
        content.insert("content".into(), Value::Object(body));
        MessageType::Post
    } else {
        let mut body = Map::new();
        for _ in 0..1 + r.below(3) {
            let field = format!("field-{}", r.below(8));
            let value = if r.chance(50) {
                Value::from(r.below(1_000_000) as u64)
            } else {
                Value::from(words(&mut r, 1, 4))
            };
            body.insert(field, value);
        }
        body.insert("updated".into(), (i as u64).into());
        if r.chance(20) {
            let t = tags(&mut r);
            if !t.is_empty() {
                body.insert("tags".into(), Value::Array(t));
            }
        }
        content.insert(
            "key".into(),
            AGGREGATE_KEYS[r.below(AGGREGATE_KEYS.len())].into(),
        );
        content.insert("content".into(), Value::Object(body));
        MessageType::Aggregate
    };
    Plan {
        address,
        message_type,
        channel,
        time,
        content,
    }
}

fn is_post(p: &Params, i: usize) -> bool {
    match p.kind {
        Kind::Post => true,
        Kind::Aggregate => false,
        Kind::Mixed => message_rng(p, i).below(100) < 85,
    }
}

/// The full content map, as `raleph_sdk::signed_message` would complete it.
fn full_content(plan: &Plan, addresses: &[String]) -> Map<String, Value> {
    let mut content = plan.content.clone();
    content.insert("address".into(), addresses[plan.address].clone().into());
    content.insert("time".into(), json!(plan.time));
    content
}

fn item_hash(plan: &Plan, addresses: &[String]) -> String {
    sha256_hex(
        Value::Object(full_content(plan, addresses))
            .to_string()
            .as_bytes(),
    )
}

/// The signers and their addresses for these parameters.
pub fn signers(p: &Params) -> (Vec<EthSigner>, Vec<String>) {
    let signers: Vec<EthSigner> = (0..p.addresses).map(|a| signer(p.seed, a)).collect();
    let addresses = signers.iter().map(EthSigner::address).collect();
    (signers, addresses)
}

/// Message `i` as a request body line (with its trailing newline).
fn line(p: &Params, signers: &[EthSigner], addresses: &[String], i: usize, out: &mut Vec<u8>) {
    let plan = plan(p, addresses, i);
    let content = full_content(&plan, addresses);
    let message = raleph_sdk::signed_message(
        &signers[plan.address],
        plan.message_type,
        content,
        Some(&plan.channel),
        plan.time,
    );
    let body = json!({"sync": false, "message": message});
    // Writing JSON to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &body);
    out.push(b'\n');
}

/// Generates the corpus into `out` (via a temporary file, then renamed), signing on
/// `threads` threads and reporting progress on stderr.
pub fn generate(p: &Params, out: &Path, threads: usize) -> anyhow::Result<()> {
    if p.count == 0 || p.addresses == 0 || p.channels == 0 {
        bail!("count, addresses and channels must be at least 1");
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let started = Instant::now();
    eprintln!(
        "corpus: deriving {} keys for {} {} messages…",
        p.addresses,
        p.count,
        p.kind.name()
    );
    let (signers, addresses) = signers(p);
    let shared = Arc::new((signers, addresses));
    let tmp = {
        let mut name = out.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    };
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let chunks = p.count.div_ceil(CHUNK);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 4);
    let mut workers = Vec::new();
    for _ in 0..threads.max(1) {
        let (next, tx, shared, p) = (next.clone(), tx.clone(), shared.clone(), *p);
        workers.push(std::thread::spawn(move || {
            let (signers, addresses) = &*shared;
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= chunks {
                    break;
                }
                let mut buf = Vec::with_capacity(CHUNK * 900);
                for i in c * CHUNK..((c + 1) * CHUNK).min(p.count) {
                    line(&p, signers, addresses, i, &mut buf);
                }
                if tx.send((c, buf)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut waiting = BTreeMap::new();
    let mut written_chunks = 0;
    let mut bytes = 0u64;
    let mut last_report = Instant::now();
    for (c, buf) in rx {
        waiting.insert(c, buf);
        while let Some(buf) = waiting.remove(&written_chunks) {
            writer.write_all(&buf)?;
            bytes += buf.len() as u64;
            written_chunks += 1;
        }
        if last_report.elapsed().as_secs_f64() >= 2.0 {
            last_report = Instant::now();
            let done = (written_chunks * CHUNK).min(p.count);
            let rate = done as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "corpus: signed {done}/{} ({:.0} messages/s, about {:.0} s left)",
                p.count,
                rate,
                (p.count - done) as f64 / rate.max(1.0)
            );
        }
    }
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a signing thread panicked"))?;
    }
    if written_chunks != chunks {
        bail!("signing stopped early ({written_chunks}/{chunks} chunks)");
    }
    writer.flush()?;
    writer.get_ref().sync_all()?;
    drop(writer);
    std::fs::rename(&tmp, out)?;
    std::fs::write(meta_path(out), p.meta(bytes).to_string())?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "corpus: {} messages ({:.0} MiB) in {:.1} s ({:.0} messages/s on {} threads) → {}",
        p.count,
        bytes as f64 / 1048576.0,
        secs,
        p.count as f64 / secs,
        threads,
        out.display()
    );
    Ok(())
}

/// True when `path` holds a complete corpus made with these parameters.
pub fn is_cached(p: &Params, path: &Path) -> bool {
    let Ok(meta) = std::fs::read_to_string(meta_path(path)) else {
        return false;
    };
    let Ok(meta) = serde_json::from_str::<Value>(&meta) else {
        return false;
    };
    let Some(bytes) = meta.get("bytes").and_then(Value::as_u64) else {
        return false;
    };
    let size = std::fs::metadata(path).map(|m| m.len()).ok();
    meta == p.meta(bytes) && size == Some(bytes)
}

/// Makes sure the corpus exists at `path` (generating it unless cached); returns the path.
pub fn ensure(p: &Params, path: Option<PathBuf>, threads: usize) -> anyhow::Result<PathBuf> {
    let path = path.unwrap_or_else(|| p.default_path());
    if is_cached(p, &path) {
        eprintln!("corpus: reusing {}", path.display());
    } else {
        generate(p, &path, threads)?;
    }
    Ok(path)
}

/// A corpus in memory: one request body per entry (slices of one buffer).
pub fn load(path: &Path) -> anyhow::Result<Vec<Bytes>> {
    let all =
        Bytes::from(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in all.iter().enumerate() {
        if *b == b'\n' {
            if i > start {
                lines.push(all.slice(start..i));
            }
            start = i + 1;
        }
    }
    if start < all.len() {
        lines.push(all.slice(start..));
    }
    Ok(lines)
}

/// The first `needed` request bodies of the POST corpus of `count` messages (signed now if
/// not cached), and their item hashes.
pub struct Posts {
    pub lines: Vec<Bytes>,
    pub hashes: Vec<String>,
}

pub fn posts(count: usize, needed: usize, threads: usize) -> anyhow::Result<Posts> {
    let params = Params {
        kind: Kind::Post,
        count,
        addresses: 10_000,
        channels: 200,
        seed: 1,
    };
    let path = ensure(&params, None, threads)?;
    let mut lines = load(&path)?;
    lines.truncate(needed);
    let hashes = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_slice(l).context("a corpus line is not JSON")?;
            v["message"]["item_hash"]
                .as_str()
                .map(str::to_owned)
                .context("a corpus line without message.item_hash")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Posts { lines, hashes })
}

/// Default signing threads: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raleph_crypto::{Chain, SignedFields};

    fn params(kind: Kind, count: usize) -> Params {
        Params {
            kind,
            count,
            addresses: 7,
            channels: 3,
            seed: 42,
        }
    }

    #[test]
    fn same_parameters_same_corpus_whatever_the_threads() {
        let dir = tempfile::tempdir().unwrap();
        let p = params(Kind::Mixed, CHUNK + 321);
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        generate(&p, &a, 1).unwrap();
        generate(&p, &b, 3).unwrap();
        let (a_bytes, b_bytes) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(a_bytes, b_bytes);
        assert!(is_cached(&p, &a));
        assert!(!is_cached(&Params { seed: 43, ..p }, &a));
        assert!(!is_cached(&Params { count: 10, ..p }, &a));
        let lines = load(&a).unwrap();
        assert_eq!(lines.len(), p.count);
        // A shorter corpus is the start of a longer one.
        let short = dir.path().join("short.jsonl");
        generate(&Params { count: 100, ..p }, &short, 2).unwrap();
        assert!(a_bytes.starts_with(&std::fs::read(&short).unwrap()));
        // Another seed gives other messages.
        let c = dir.path().join("c.jsonl");
        generate(&Params { seed: 7, ..p }, &c, 2).unwrap();
        assert_ne!(std::fs::read(&c).unwrap(), a_bytes);
    }

    #[test]
    fn messages_are_signed_spread_and_time_ordered() {
        let p = params(Kind::Mixed, 300);
        let (signers, addresses) = signers(&p);
        let mut senders = std::collections::HashSet::new();
        let mut channels = std::collections::HashSet::new();
        let mut types = std::collections::HashSet::new();
        let mut last_time = 0.0;
        for i in 0..p.count {
            let mut buf = Vec::new();
            line(&p, &signers, &addresses, i, &mut buf);
            let body: Value = serde_json::from_slice(&buf).unwrap();
            assert_eq!(body["sync"], false);
            let m = &body["message"];
            let item_content = m["item_content"].as_str().unwrap();
            assert_eq!(m["item_hash"], sha256_hex(item_content.as_bytes()));
            let fields = SignedFields {
                chain: Chain::Eth,
                sender: m["sender"].as_str().unwrap(),
                message_type: m["type"].as_str().unwrap(),
                item_hash: m["item_hash"].as_str().unwrap(),
                time: m["time"].as_f64().unwrap(),
            };
            raleph_crypto::verify(&fields, m["signature"].as_str().unwrap()).unwrap();
            let time = m["time"].as_f64().unwrap();
            assert!(time > last_time);
            last_time = time;
            senders.insert(m["sender"].as_str().unwrap().to_owned());
            channels.insert(m["channel"].as_str().unwrap().to_owned());
            types.insert(m["type"].as_str().unwrap().to_owned());
        }
        assert_eq!(senders.len(), p.addresses);
        assert_eq!(channels.len(), p.channels);
        assert_eq!(types.len(), 2);
    }

    #[test]
    fn amends_name_an_earlier_post_of_the_same_sender() {
        let p = Params {
            kind: Kind::Post,
            count: 12_000,
            addresses: 50,
            channels: 3,
            seed: 1,
        };
        let (_, addresses) = signers(&p);
        let mut amends = 0;
        for i in AMEND_DISTANCE..p.count {
            let plan_i = plan(&p, &addresses, i);
            if plan_i.content["type"] != "amend" {
                continue;
            }
            amends += 1;
            let target = plan_i.content["ref"].as_str().unwrap();
            let j = ((i - AMEND_DISTANCE).saturating_sub(1_100)..=i - AMEND_DISTANCE)
                .rev()
                .find(|&j| item_hash(&plan(&p, &addresses, j), &addresses) == target)
                .expect("the amended post is earlier in the corpus");
            let original = plan(&p, &addresses, j);
            assert_eq!(original.address, plan_i.address);
            assert_ne!(original.content["type"], "amend");
        }
        assert!(amends > 50, "{amends} amends");
    }
}
