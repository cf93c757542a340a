//! Store faults under load (issue 13, item 6): while the index store is unavailable the node
//! neither loses nor rejects messages. What it acknowledged (200/202) stays journaled and is
//! processed once the store is back; new submissions are answered 503 (or 202 while they can
//! still be journaled); reads that need the store answer 503, never 500; and the node recovers
//! by itself, without a restart.
//!
//! - `postgres_stopped_and_restarted_under_load`: a private PostgreSQL cluster of the test's
//!   own (started with `scripts/postgres.sh` in a temporary directory, on a free port; the
//!   shared cluster is never touched) is stopped for a few seconds under a steady load, then
//!   started again. Skipped, with a notice, when `DATABASE_URL` is unset and
//!   `RALEPH_REQUIRE_POSTGRES` is not 1 (as `tests/postgres.rs`).
//! - `sqlite_disk_full_then_freed`: the data directory is a small tmpfs the test mounts (root
//!   only: skipped, with a notice, where mounting is refused), filled up to a little free space;
//!   messages are sent until the node refuses them, then the space is freed.
//!
//! Both print their figures (sent, acknowledged, 503s, recovery time, the node's peak RSS) and
//! a digest of what the node logged.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use raleph_crypto::EthSigner;
use raleph_message::MessageType;
use serde_json::{Map, Value, json};
use support::{RunningNode, now};

/// How long one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the node has, once the store is back, to process everything it acknowledged.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The node

/// Starts `raleph node` as `support::RunningNode::start_with` does, but with its log
/// (`RALEPH_LOG=info`) written to `log` rather than to the test's stderr: under load and during
/// an outage it is read afterwards, and digested.
fn start_node(data_dir: &Path, args: &[&str], log: &Path) -> RunningNode {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the node's log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_raleph"))
        .args([
            "node",
            "--api-addr",
            "127.0.0.1:0",
            "--p2p-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RALEPH_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("start the node");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut next_line = || match lines.next() {
        Some(line) => line.expect("read stdout"),
        None => panic!(
            "the node exited before printing its addresses; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        ),
    };
    let url = loop {
        if let Some(url) = next_line().strip_prefix("api listening on ") {
            break url.trim().to_owned();
        }
    };
    let p2p = loop {
        if let Some(addr) = next_line().strip_prefix("p2p listening on ") {
            break addr.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    RunningNode { child, url, p2p }
}

/// The node's peak and current resident set, from `/proc/<pid>/status`.
fn memory(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?".to_owned(), |v| v.trim().to_owned())
    };
    format!(
        "peak RSS (VmHWM) {}, RSS now {}",
        field("VmHWM:"),
        field("VmRSS:")
    )
}

fn alive(node: &mut RunningNode) -> bool {
    matches!(node.child.try_wait(), Ok(None))
}

/// What the node logged: line counts by level, the distinct warnings and errors (timestamps
/// dropped, most frequent first), and every line about a panic. Returns whether one panicked.
fn digest_log(log: &Path) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut levels: BTreeMap<&str, usize> = BTreeMap::new();
    let mut distinct: HashMap<String, usize> = HashMap::new();
    let mut panics = Vec::new();
    for line in text.lines() {
        let level = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
            .into_iter()
            .find(|l| line.split_whitespace().nth(1) == Some(*l))
            .unwrap_or("other");
        *levels.entry(level).or_default() += 1;
        if line.contains("panic") {
            panics.push(line.to_owned());
        }
        if matches!(level, "ERROR" | "WARN" | "other") {
            // Without the timestamp, and with long runs of digits shortened, so that repeats
            // of one event count as one.
            let rest = line.split_once(' ').map_or(line, |(_, rest)| rest);
            let mut key = String::new();
            let mut digits = 0;
            for c in rest.chars() {
                if c.is_ascii_digit() {
                    digits += 1;
                    if digits == 4 {
                        key.push('…');
                    }
                    if digits >= 4 {
                        continue;
                    }
                } else {
                    digits = 0;
                }
                key.push(c);
            }
            *distinct.entry(key).or_default() += 1;
        }
    }
    println!(
        "node log: {} lines {:?} ({})",
        text.lines().count(),
        levels,
        log.display()
    );
    let mut distinct: Vec<(String, usize)> = distinct.into_iter().collect();
    distinct.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (line, count) in distinct.iter().take(15) {
        let line: String = line.chars().take(400).collect();
        println!("  {count:>6} × {line}");
    }
    if distinct.len() > 15 {
        println!("  … and {} other distinct lines", distinct.len() - 15);
    }
    for line in &panics {
        println!("  PANIC: {line}");
    }
    !panics.is_empty()
}

// ---------------------------------------------------------------------------------------------
// Load

const BEFORE: u8 = 0;
const OUTAGE: u8 = 1;
const AFTER: u8 = 2;
const PHASES: [&str; 3] = ["before", "outage", "after"];

/// One submission and the node's answer (status 0: no answer: a transport error or timeout).
#[derive(Clone, Debug)]
struct Answer {
    hash: String,
    status: u16,
    /// The phase when it was sent.
    phase: u8,
    /// The body of an answer other than 200/202, or the transport error, shortened.
    body: String,
    sync: bool,
    /// When it was sent, and how long the answer took.
    sent_at: Instant,
    took: Duration,
}

/// One read and its status (0: no answer).
#[derive(Clone, Debug)]
struct Read {
    what: &'static str,
    status: u16,
    phase: u8,
    body: String,
}

fn acknowledged(status: u16) -> bool {
    matches!(status, 200 | 202)
}

fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

/// A signed post of its own for sender task `task`, `n`-th of that task, padded with `pad`
/// bytes of text.
fn post(signer: &EthSigner, channel: &str, task: usize, n: usize, pad: usize) -> Value {
    let mut content = Map::new();
    content.insert("type".into(), "fault-test".into());
    content.insert(
        "content".into(),
        json!({ "task": task, "n": n, "pad": "p".repeat(pad) }),
    );
    raleph_sdk::signed_message(signer, MessageType::Post, content, Some(channel), now())
}

async fn submit(http: &reqwest::Client, url: &str, message: &Value, sync: bool) -> (u16, String) {
    let sent = http
        .post(format!("{url}/api/v0/messages"))
        .json(&json!({ "sync": sync, "message": message }))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (status, body)
        }
        Err(e) => (0, format!("no answer: {e:?}")),
    }
}

async fn read(http: &reqwest::Client, url: &str) -> (u16, String) {
    match http.get(url).timeout(REQUEST_TIMEOUT).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (status, body)
        }
        Err(e) => (0, format!("no answer: {e:?}")),
    }
}

struct Shared {
    stop: AtomicBool,
    phase: AtomicU8,
    sent: AtomicUsize,
    answers: Mutex<Vec<Answer>>,
    reads: Mutex<Vec<Read>>,
}

/// Sender tasks submitting signed posts without pause (or one every `pace`), each recording
/// every answer, and a reader task doing a few store-backed reads every 200 ms.
struct Load {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct LoadSpec {
    channel: &'static str,
    /// Sender tasks submitting without `sync` (answered once journaled).
    async_senders: usize,
    /// Sender tasks submitting with `sync` (answered once processed, or queued).
    sync_senders: usize,
    /// At most one submission per task per `pace`.
    pace: Option<Duration>,
    /// Bytes of padding in each post's content.
    pad: usize,
    phase: u8,
}

impl Load {
    fn start(url: &str, signer: Arc<EthSigner>, spec: LoadSpec) -> Load {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            phase: AtomicU8::new(spec.phase),
            sent: AtomicUsize::new(0),
            answers: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::new();
        for task in 0..spec.async_senders + spec.sync_senders {
            let sync = task >= spec.async_senders;
            let (url, signer, shared) = (url.to_owned(), signer.clone(), shared.clone());
            let (channel, pad, pace) = (spec.channel, spec.pad, spec.pace);
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut ticks = pace.map(|pace| {
                    let mut ticks = tokio::time::interval(pace);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    ticks
                });
                let mut n = 0;
                while !shared.stop.load(Ordering::SeqCst) {
                    if let Some(ticks) = ticks.as_mut() {
                        ticks.tick().await;
                    }
                    let message = post(&signer, channel, task, n, pad);
                    n += 1;
                    let phase = shared.phase.load(Ordering::SeqCst);
                    shared.sent.fetch_add(1, Ordering::SeqCst);
                    let sent_at = Instant::now();
                    let (status, body) = submit(&http, &url, &message, sync).await;
                    let answer = Answer {
                        sent_at,
                        took: sent_at.elapsed(),
                        hash: message["item_hash"].as_str().unwrap_or_default().to_owned(),
                        status,
                        phase,
                        body: if acknowledged(status) {
                            String::new()
                        } else {
                            short(&body)
                        },
                        sync,
                    };
                    shared.answers.lock().expect("answers").push(answer);
                }
            }));
        }
        let (url, shared_reads) = (url.to_owned(), shared.clone());
        let channel = spec.channel;
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !shared_reads.stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let known = shared_reads
                    .answers
                    .lock()
                    .expect("answers")
                    .iter()
                    .find(|a| acknowledged(a.status))
                    .map(|a| a.hash.clone());
                let mut targets = vec![
                    (
                        "list",
                        format!("{url}/api/v0/messages.json?channels={channel}&pagination=20"),
                    ),
                    (
                        "posts",
                        format!("{url}/api/v0/posts.json?channels={channel}&pagination=5"),
                    ),
                    ("metrics", format!("{url}/metrics")),
                ];
                if let Some(hash) = known {
                    targets.push(("one", format!("{url}/api/v0/messages/{hash}")));
                }
                for (what, target) in targets {
                    let phase = shared_reads.phase.load(Ordering::SeqCst);
                    let (status, body) = read(&http, &target).await;
                    let body = if status == 200 {
                        String::new()
                    } else {
                        short(&body)
                    };
                    shared_reads.reads.lock().expect("reads").push(Read {
                        what,
                        status,
                        phase,
                        body,
                    });
                }
            }
        }));
        Load { shared, tasks }
    }

    /// Sending stops: no task sends again, though requests in flight are still waiting.
    fn stop_sending(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    fn set_phase(&self, phase: u8) {
        self.shared.phase.store(phase, Ordering::SeqCst);
    }

    fn answers(&self) -> Vec<Answer> {
        self.shared.answers.lock().expect("answers").clone()
    }

    /// Stops sending, waits for the requests in flight, and returns every answer and read.
    async fn finish(self) -> (Vec<Answer>, Vec<Read>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let answers = self.shared.answers.lock().expect("answers").clone();
        let reads = self.shared.reads.lock().expect("reads").clone();
        (answers, reads)
    }
}

/// Counts of answers by phase and status, printed.
fn print_answers(title: &str, answers: &[Answer]) {
    // Count and slowest answer by phase, kind of submission and status.
    let mut table: BTreeMap<(u8, bool, u16), (usize, Duration)> = BTreeMap::new();
    for a in answers {
        let entry = table.entry((a.phase, a.sync, a.status)).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(a.took);
    }
    let acked = answers.iter().filter(|a| acknowledged(a.status)).count();
    let refused = answers.iter().filter(|a| a.status == 503).count();
    println!(
        "{title}: {} sent, {acked} acknowledged (200/202), {refused} answered 503, {} other",
        answers.len(),
        answers.len() - acked - refused
    );
    for ((phase, sync, status), (count, slowest)) in table {
        println!(
            "  {count:>6} × {status} while {:<6} {} (slowest {:.2} s)",
            PHASES[phase as usize],
            if sync { "sync " } else { "async" },
            slowest.as_secs_f64()
        );
    }
    let mut bodies: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for a in answers.iter().filter(|a| !acknowledged(a.status)) {
        *bodies.entry((a.status, a.body.clone())).or_default() += 1;
    }
    for ((status, body), count) in bodies.iter().take(8) {
        println!("  {count:>6} × {status}: {body}");
    }
}

/// Prints the submissions sent before the store was back and answered only after: requests the
/// node held through (part of) the outage instead of answering; fails if one was held long.
fn print_held(answers: &[Answer], back: Instant) {
    let held: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent_at < back && a.sent_at + a.took > back)
        .collect();
    if held.is_empty() {
        println!("held: no submission was held until the store was back");
        return;
    }
    for a in &held {
        println!(
            "held: submission {} (sync: {}, sent while {}) was answered {} only once the store \
             was back, after {:.2} s",
            a.hash,
            a.sync,
            PHASES[a.phase as usize],
            a.status,
            a.took.as_secs_f64()
        );
    }
    // One sent just before the store came back may be answered just after; none is held for
    // the outage (the node answers a journaled submission "pending" while the store is down).
    assert!(
        held.iter().all(|a| a.took < Duration::from_secs(3)),
        "submissions were held through the outage"
    );
}

/// How long after `since` the first submission sent after it was acknowledged.
fn first_ack_after(answers: &[Answer], since: Instant) -> Option<Duration> {
    answers
        .iter()
        .filter(|a| a.sent_at >= since && acknowledged(a.status))
        .map(|a| (a.sent_at + a.took).duration_since(since))
        .min()
}

fn print_reads(reads: &[Read]) {
    let mut table: BTreeMap<(u8, &str, u16), usize> = BTreeMap::new();
    for r in reads {
        *table.entry((r.phase, r.what, r.status)).or_default() += 1;
    }
    println!("reads: {}", reads.len());
    for ((phase, what, status), count) in table {
        println!(
            "  {count:>6} × {what} → {status} while {}",
            PHASES[phase as usize]
        );
    }
}

/// Where a message stands, by `GET /api/v0/messages/{hash}`.
#[derive(Clone, Debug)]
enum State {
    Processed,
    Rejected(String),
    /// Anything else (pending, not found yet, the store still down): the status and body.
    NotYet(u16, String),
}

impl State {
    fn describe(&self) -> String {
        match self {
            State::Processed => "processed".into(),
            State::Rejected(body) => format!("rejected: {body}"),
            State::NotYet(status, body) => format!("{status}: {body}"),
        }
    }
}

async fn state(http: &reqwest::Client, url: &str, hash: &str) -> State {
    let (status, body) = read(http, &format!("{url}/api/v0/messages/{hash}")).await;
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match (status, value["status"].as_str()) {
        (200, Some("processed")) => State::Processed,
        (200, Some("rejected")) => State::Rejected(short(&body)),
        _ => State::NotYet(status, short(&body)),
    }
}

/// Polls until every one of `hashes` is processed, or one is rejected, or `timeout` passes.
/// Returns the rejected ones and the ones still not processed, with what the node said.
async fn wait_processed(
    url: &str,
    hashes: &[String],
    timeout: Duration,
) -> (Vec<(String, String)>, Vec<(String, State)>) {
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut waiting: Vec<String> = hashes.to_vec();
    let mut rejected = Vec::new();
    loop {
        let states: Vec<(String, State)> = futures::stream::iter(waiting)
            .map(|hash| {
                let http = &http;
                async move {
                    let state = state(http, url, &hash).await;
                    (hash, state)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut not_yet = Vec::new();
        for (hash, state) in states {
            match state {
                State::Processed => {}
                State::Rejected(body) => rejected.push((hash, body)),
                other => not_yet.push((hash, other)),
            }
        }
        if not_yet.is_empty() || start.elapsed() > timeout {
            return (rejected, not_yet);
        }
        waiting = not_yet.into_iter().map(|(hash, _)| hash).collect();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// After recovery: a message submitted with `sync` is processed (200), and a few without it
/// are acknowledged and then processed. The node may still answer 503 for a moment; it is
/// given a few seconds to take them.
async fn takes_new_messages(url: &str, signer: &EthSigner, channel: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    let mut hashes = Vec::new();
    for n in 0..10 {
        let message = post(signer, channel, 1000, n, 16);
        let sync = n == 9;
        let deadline = Instant::now() + Duration::from_secs(10);
        let (status, body) = loop {
            let (status, body) = submit(&http, url, &message, sync).await;
            if status != 503 || Instant::now() > deadline {
                break (status, body);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let expected = if sync {
            status == 200
        } else {
            acknowledged(status)
        };
        if !expected {
            return Err(format!(
                "new message {n} (sync: {sync}) answered {status}: {}",
                short(&body)
            ));
        }
        hashes.push(message["item_hash"].as_str().unwrap_or_default().to_owned());
    }
    let (rejected, not_yet) = wait_processed(url, &hashes, Duration::from_secs(20)).await;
    if rejected.is_empty() && not_yet.is_empty() {
        Ok(())
    } else {
        let not_yet: Vec<(&String, String)> =
            not_yet.iter().map(|(h, s)| (h, s.describe())).collect();
        Err(format!(
            "new messages not processed: rejected {rejected:?}, not yet {not_yet:?}"
        ))
    }
}

/// Checks every message acknowledged in `answers` ends processed, and that none of the
/// others ends rejected. Prints what it found; returns the failures, described.
async fn check_outcome(
    url: &str,
    answers: &[Answer],
    store_back: Instant,
    timeout: Duration,
) -> Vec<String> {
    let mut failures = Vec::new();
    let acked: Vec<String> = answers
        .iter()
        .filter(|a| acknowledged(a.status))
        .map(|a| a.hash.clone())
        .collect();
    let waiting = Instant::now();
    let (rejected, not_yet) = wait_processed(url, &acked, timeout).await;
    let waited = waiting.elapsed().as_secs_f64();
    let answer_of = |hash: &str| {
        answers
            .iter()
            .find(|a| a.hash == hash)
            .map(|a| {
                format!(
                    "answered {} while {}{}",
                    a.status,
                    PHASES[a.phase as usize],
                    if a.sync { " (sync)" } else { "" }
                )
            })
            .unwrap_or_default()
    };
    if rejected.is_empty() && not_yet.is_empty() {
        println!(
            "recovery: all {} acknowledged messages processed {:.1} s after the store came back \
             ({waited:.1} s after the last answer)",
            acked.len(),
            store_back.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "recovery: after {:.1} s, {} of {} acknowledged messages rejected, {} not processed",
            store_back.elapsed().as_secs_f64(),
            rejected.len(),
            acked.len(),
            not_yet.len()
        );
    }
    for (hash, body) in rejected.iter().take(10) {
        failures.push(format!(
            "acknowledged message {hash} ({}) ended rejected: {body}",
            answer_of(hash)
        ));
    }
    for (hash, state) in not_yet.iter().take(10) {
        failures.push(format!(
            "acknowledged message {hash} ({}) not processed: {}",
            answer_of(hash),
            state.describe()
        ));
    }
    if rejected.len() + not_yet.len() > 10 {
        failures.push(format!(
            "… {} rejected and {} not processed in all",
            rejected.len(),
            not_yet.len()
        ));
    }
    // Those the node refused made no promise, but a valid message must not end rejected.
    let http = reqwest::Client::new();
    for a in answers.iter().filter(|a| !acknowledged(a.status)).take(200) {
        if let State::Rejected(body) = state(&http, url, &a.hash).await {
            failures.push(format!(
                "message {} answered {} ({}) ended rejected: {body}",
                a.hash, a.status, a.body
            ));
        }
    }
    failures
}

/// Statuses other than 200/202/503 among the answers, and 500s (or no answer) among the reads.
fn bad_statuses(answers: &[Answer], reads: &[Read]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut odd: BTreeMap<(u16, u8, String), usize> = BTreeMap::new();
    for a in answers
        .iter()
        .filter(|a| !matches!(a.status, 0 | 200 | 202 | 503))
    {
        *odd.entry((a.status, a.phase, a.body.clone())).or_default() += 1;
    }
    for ((status, phase, body), count) in odd {
        failures.push(format!(
            "{count} submissions answered {status} while {}: {body}",
            PHASES[phase as usize]
        ));
    }
    for a in answers.iter().filter(|a| a.status == 0).take(10) {
        failures.push(format!(
            "submission {} (sync: {}, sent while {}) had no answer after {:.1} s: {}",
            a.hash,
            a.sync,
            PHASES[a.phase as usize],
            a.took.as_secs_f64(),
            a.body
        ));
    }
    let mut odd_reads: BTreeMap<(&str, u16, u8, String), usize> = BTreeMap::new();
    for r in reads
        .iter()
        .filter(|r| !matches!(r.status, 200 | 404 | 503))
    {
        *odd_reads
            .entry((r.what, r.status, r.phase, r.body.clone()))
            .or_default() += 1;
    }
    for ((what, status, phase, body), count) in odd_reads {
        failures.push(format!(
            "{count} reads ({what}) answered {status} while {}: {body}",
            PHASES[phase as usize]
        ));
    }
    failures
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: a private cluster

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A free TCP port on 127.0.0.1 (free when asked: another process could take it after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `pg_ctl` of the newest installed server (Debian keeps it off PATH), as scripts/postgres.sh
/// picks it.
fn pg_ctl_path() -> PathBuf {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let pg_ctl = entry.path().join("bin/pg_ctl");
            pg_ctl.exists().then_some((version, pg_ctl))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map_or_else(|| PathBuf::from("pg_ctl"), |(_, path)| path)
}

/// A PostgreSQL cluster of the test's own, in a temporary directory, on a free port.
struct PrivateCluster {
    /// Holds the cluster's files (unless the server user could not write there, see `real`).
    _dir: tempfile::TempDir,
    /// The cluster directory (`data/`, `server.log`), as scripts/postgres.sh resolved it.
    real: PathBuf,
    /// Whether `real` lies outside `_dir` (then it is removed on drop).
    outside: bool,
    pg_ctl: PathBuf,
    url: String,
}

impl PrivateCluster {
    /// `None` (with a notice) when PostgreSQL tests are not asked for; panics when they are
    /// and the cluster cannot be started.
    fn start() -> Option<PrivateCluster> {
        let required = std::env::var("RALEPH_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let configured = std::env::var("DATABASE_URL").is_ok_and(|v| !v.trim().is_empty());
        if !configured && !required {
            println!(
                "notice: DATABASE_URL is not set, skipping the PostgreSQL outage test \
                 (run scripts/postgres.sh and export what it prints)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        // As root, scripts/postgres.sh runs the server as `postgres`, which must reach the
        // cluster directory it creates in here.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod the cluster's directory");
        }
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh");
        let output = Command::new("bash")
            .arg(&script)
            .env("RALEPH_CACHE_DIR", dir.path())
            .env("RALEPH_PG_PORT", port.to_string())
            .env("RALEPH_PG_DATABASE", "raleph_faults")
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/postgres.sh");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("DATABASE_URL="))
            .map(str::to_owned);
        let real = std::fs::canonicalize(dir.path().join("pg")).unwrap_or_default();
        let outside = !real.starts_with(std::fs::canonicalize(dir.path()).unwrap_or_default());
        let cluster = PrivateCluster {
            _dir: dir,
            real,
            outside,
            pg_ctl: pg_ctl_path(),
            url: url.clone().unwrap_or_default(),
        };
        assert!(
            output.status.success() && url.is_some(),
            "scripts/postgres.sh could not start a private cluster on port {port}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        println!(
            "private PostgreSQL cluster in {} ({})",
            cluster.real.display(),
            cluster.url
        );
        Some(cluster)
    }

    /// Runs `pg_ctl -D <data> <args>` as the server's user.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.real.join("data");
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
            c
        } else {
            Command::new(&self.pg_ctl)
        };
        let output = command
            .arg("-D")
            .arg(&data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run pg_ctl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {args:?}: {}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "30", "stop"])
    }

    fn start_again(&self) -> Result<(), String> {
        let log = self.real.join("server.log");
        let log = log.to_string_lossy();
        self.pg_ctl(&["-l", &log, "-w", "-t", "60", "start"])
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.real.as_os_str().is_empty() {
            return;
        }
        let _ = self.pg_ctl(&["-m", "immediate", "-w", "-t", "30", "stop"]);
        if self.outside {
            let _ = std::fs::remove_dir_all(&self.real);
        }
    }
}

/// Runs a blocking `f` off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_and_restarted_under_load() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let cluster = Arc::new(cluster);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("node.log");
    let mut node = start_node(
        &dir.path().join("data"),
        &["--database", &cluster.url],
        &log,
    );
    let pid = node.child.id();
    let signer = Arc::new(EthSigner::new_random());

    // Three paced senders (up to ~375 a second between them) and one with `sync`.
    let load = Load::start(
        &node.url,
        signer.clone(),
        LoadSpec {
            channel: "FAULTS-PG",
            async_senders: 3,
            sync_senders: 1,
            pace: Some(Duration::from_millis(8)),
            pad: 64,
            phase: BEFORE,
        },
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    load.set_phase(OUTAGE);
    let stopping = Instant::now();
    let c = cluster.clone();
    blocking(move || c.stop())
        .await
        .expect("stop the private PostgreSQL cluster");
    println!(
        "PostgreSQL stopped ({:.1} s to stop), {} submissions so far",
        stopping.elapsed().as_secs_f64(),
        load.answers().len()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let c = cluster.clone();
    blocking(move || c.start_again())
        .await
        .expect("start the private PostgreSQL cluster again");
    let store_back = Instant::now();
    load.set_phase(AFTER);
    println!(
        "PostgreSQL started again after {:.1} s down",
        stopping.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (answers, reads) = load.finish().await;
    let node_alive = alive(&mut node);

    print_answers("submissions", &answers);
    print_reads(&reads);
    print_held(&answers, store_back);
    match first_ack_after(&answers, store_back) {
        Some(after) => println!(
            "intake: first acknowledgement {:.1} s after PostgreSQL was back",
            after.as_secs_f64()
        ),
        None => println!("intake: nothing acknowledged after PostgreSQL was back"),
    }
    let mut failures = bad_statuses(&answers, &reads);
    if !answers
        .iter()
        .any(|a| a.phase == BEFORE && acknowledged(a.status))
    {
        failures.push("nothing was acknowledged before the outage".into());
    }
    if !reads.iter().any(|r| r.phase == OUTAGE) {
        failures.push("no read was answered during the outage".into());
    }
    if !node_alive {
        failures.push("the node exited during the outage".into());
    } else {
        failures.extend(check_outcome(&node.url, &answers, store_back, RECOVERY_TIMEOUT).await);
        if let Err(e) = takes_new_messages(&node.url, &signer, "FAULTS-PG").await {
            failures.push(e);
        }
        if !alive(&mut node) {
            failures.push("the node exited after the outage".into());
        }
    }
    println!("node: {}", memory(pid));
    if digest_log(&log) {
        failures.push("the node logged a panic".into());
    }
    drop(node);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// SQLite: a full disk

/// A small tmpfs mounted on a temporary directory; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with the reason printed) where mounting is not permitted.
    fn mount(megabytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(o) if o.status.success() => Some(SmallDisk { dir }),
            Ok(o) => {
                println!(
                    "notice: cannot mount a {megabytes} MiB tmpfs ({}: {}), skipping the \
                     full-disk test (it needs root)",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("notice: cannot run mount ({e}), skipping the full-disk test");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process that has not exited yet): detach it now, freed when idle.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Fills the file system of `path` with a file there, then shortens it to leave `leave`
/// bytes free. Returns the filler's size.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0x5a_u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    let len = file.metadata().expect("filler size").len();
    file.set_len(len.saturating_sub(leave))
        .expect("shorten the filler");
    len.saturating_sub(leave)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_disk_full_then_freed() {
    let Some(disk) = SmallDisk::mount(64) else {
        return;
    };
    // The log is kept off the small disk.
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("node.log");
    let data = disk.path().join("node");
    let mut node = start_node(&data, &[], &log);
    let pid = node.child.id();
    let signer = Arc::new(EthSigner::new_random());
    let client = raleph_sdk::Client::new(&node.url);
    for n in 0..5 {
        let (status, body) = client
            .submit(&post(&signer, "FAULTS-DISK", 999, n, 16), true)
            .await
            .expect("submit");
        assert_eq!(status, 200, "{body}");
    }

    let filler = disk.path().join("filler");
    let filled = blocking({
        let filler = filler.clone();
        move || fill(&filler, 3 << 19)
    })
    .await;
    println!(
        "disk: a {} MiB filler leaves about 1.5 MiB free",
        filled >> 20
    );

    // Four senders without pause (one with `sync`), 4 KiB posts, until the node has refused
    // a good number of them, then a little longer.
    let load = Load::start(
        &node.url,
        signer.clone(),
        LoadSpec {
            channel: "FAULTS-DISK",
            async_senders: 3,
            sync_senders: 1,
            pace: None,
            pad: 4096,
            phase: OUTAGE,
        },
    );
    let started = Instant::now();
    let mut first_refusal = None;
    while started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answers = load.answers();
        let refused = answers.iter().filter(|a| !acknowledged(a.status)).count();
        if refused > 0 && first_refusal.is_none() {
            first_refusal = Some(Instant::now());
            println!(
                "disk: first refusal after {:.1} s and {} submissions",
                started.elapsed().as_secs_f64(),
                answers.len()
            );
        }
        if first_refusal.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) && refused >= 50 {
            break;
        }
    }
    // Sending stops; a second later the disk is freed, whatever is still in flight.
    load.stop_sending();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let node_alive = alive(&mut node);
    std::fs::remove_file(&filler).expect("delete the filler");
    let freed = Instant::now();
    println!("disk: filler deleted");
    let (answers, reads) = load.finish().await;

    print_answers("submissions on a full disk", &answers);
    print_reads(&reads);
    print_held(&answers, freed);
    let mut failures = bad_statuses(&answers, &reads);
    if !answers.iter().any(|a| a.status == 503) {
        failures.push("the node never answered 503 on a full disk".into());
    }
    if !node_alive {
        failures.push("the node exited on a full disk".into());
    } else {
        failures.extend(check_outcome(&node.url, &answers, freed, RECOVERY_TIMEOUT).await);
        if let Err(e) = takes_new_messages(&node.url, &signer, "FAULTS-DISK").await {
            failures.push(e);
        }
        if !alive(&mut node) {
            failures.push("the node exited after the disk was freed".into());
        }
    }
    println!("node: {}", memory(pid));
    if digest_log(&log) {
        failures.push("the node logged a panic".into());
    }
    node.kill9();

    // What the journal holds after the failed writes of a full disk is still read at start,
    // and nothing acknowledged is missing from the restarted node.
    let node = start_node(&data, &[], &log);
    let acked: Vec<String> = answers
        .iter()
        .filter(|a| acknowledged(a.status))
        .map(|a| a.hash.clone())
        .collect();
    let (rejected, not_yet) = wait_processed(&node.url, &acked, Duration::from_secs(20)).await;
    if rejected.is_empty() && not_yet.is_empty() {
        println!(
            "restart: all {} acknowledged messages still processed",
            acked.len()
        );
    }
    for (hash, body) in rejected.iter().take(10) {
        failures.push(format!("after a restart, {hash} is rejected: {body}"));
    }
    for (hash, state) in not_yet.iter().take(10) {
        failures.push(format!(
            "after a restart, {hash} is not processed: {}",
            state.describe()
        ));
    }
    drop(node);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
