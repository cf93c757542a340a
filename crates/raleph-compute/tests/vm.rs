//! End to end: a reference-style FastAPI program (a zip made as `aleph program upload ./app
//! main:app` makes it) in QEMU microVMs, through `raleph_compute::vm`.
//!
//! Builds (or reuses) the runtime with `scripts/build-python-runtime.sh`, which needs root and
//! apt; when that cannot work on this machine the test fails and says why. VMs run one at a
//! time, at `nice`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raleph_compute::logs::ProgramLog;
use raleph_compute::vm::{HttpAnswer, HttpScope, VmConfig, VmError, VmExecutor, VmProgram};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ITEM_HASH: &str = "9c1dd8c7a6b0f1e8f3c1a1c5d9c2b4f0a7e6d5c4b3a2918f7e6d5c4b3a291807";
const T: Duration = Duration::from_secs(30);
/// The deadline for what takes a cold boot's time (a template, a program's first snapshot).
const SLOW_MACHINE: Duration = Duration::from_secs(240);

const MAIN_PY: &str = r#"
import asyncio, os
import aiohttp
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

http_app = FastAPI()
MESSAGES = []


@http_app.get("/")
async def index():
    return {"hello": "world"}


@http_app.api_route("/echo", methods=["GET", "POST"])
async def echo(request: Request):
    body = await request.body()
    print(f"echo {request.method} {len(body)}", flush=True)
    return {
        "method": request.method,
        "q": request.query_params.getlist("q"),
        "x": request.headers.getlist("x-repeat"),
        "len": len(body),
        "body": body.decode(errors="replace"),
    }


@http_app.get("/cookies")
async def cookies():
    response = Response("two cookies", media_type="text/plain")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@http_app.get("/env")
async def env():
    return {"var": os.environ.get("TEST_VAR"), "vm_hash": os.environ.get("ALEPH_VM_HASH")}


@http_app.get("/boom")
async def boom():
    raise RuntimeError("boom as requested")


@http_app.get("/slow")
async def slow():
    await asyncio.sleep(3)
    return {"slept": 3}


@http_app.get("/stream")
async def stream():
    async def chunks():
        for i in range(5):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(0.5)
    return StreamingResponse(chunks(), media_type="text/plain")


@http_app.post("/upload")
async def upload(request: Request):
    size = 0
    parts = 0
    async for chunk in request.stream():
        size += len(chunk)
        parts += 1 if chunk else 0
    return {"len": size, "parts": parts}


@http_app.get("/messages")
async def messages():
    return MESSAGES


@http_app.get("/api")
async def api():
    url = os.environ["ALEPH_API_HOST"] + "/api/v0/info/public.json"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url) as response:
            return {"status": response.status, "text": await response.text()}


async def app(scope, receive, send):
    if scope["type"] == "aleph.message":
        event = await receive()
        MESSAGES.append(event["body"])
        await send({"type": "aleph.message.result", "body": b"ok"})
        return
    await http_app(scope, receive, send)
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tail(text: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The runtime artifacts; a build that cannot run here fails the test with its reason.
fn build_runtime() -> PathBuf {
    let script = repo_root().join("scripts/build-python-runtime.sh");
    let out = std::process::Command::new("nice")
        .args(["-n", "10"])
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/build-python-runtime.sh failed ({}). It needs root and apt (it installs \
         qemu-system-x86, mmdebstrap, squashfs-tools, busybox-static… and downloads Debian \
         packages) to build the microVM runtime this test runs. Its last lines:\n{}\n{}",
        out.status,
        tail(&out.stdout, 5),
        tail(&out.stderr, 30)
    );
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    PathBuf::from(dir)
}

/// `shutil.make_archive(dir, "zip", dir)`: what the published CLI uploads for a directory when
/// `mksquashfs` is not on its PATH (PROTOCOL.md §11).
fn zip_like_the_cli(root: &Path, name: &str, main_py: &str) -> Vec<u8> {
    let app = root.join(name);
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.py"), main_py).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import shutil, sys; shutil.make_archive(sys.argv[1], 'zip', sys.argv[1])",
        ])
        .arg(&app)
        .output()
        .expect("python3 makes the zip as the CLI does");
    assert!(out.status.success(), "{}", tail(&out.stderr, 10));
    std::fs::read(root.join(format!("{name}.zip"))).unwrap()
}

/// A stand-in for the node's API on loopback: answers every request with a small JSON.
async fn fake_api(hits: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            hits.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"node": "raleph-vm-test"}"#;
                let head = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body).await;
            });
        }
    });
    addr
}

fn program(code: &[u8], log: Arc<ProgramLog>, api: std::net::SocketAddr) -> VmProgram {
    VmProgram {
        item_hash: ITEM_HASH.into(),
        code: code.to_vec(),
        encoding: "zip".into(),
        entrypoint: "main:app".into(),
        interface: None,
        variables: vec![("TEST_VAR".into(), "visible".into())],
        memory_mib: 256,
        vcpus: 1,
        internet: false,
        api_addr: Some(api),
        log,
    }
}

fn get(path: &str, query: &str) -> HttpScope {
    HttpScope {
        method: "GET".into(),
        path: path.into(),
        query_string: query.into(),
        headers: vec![],
        body: Bytes::new(),
    }
}

fn json(answer: &HttpAnswer) -> serde_json::Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )
    })
}

fn header_values<'a>(answer: &'a HttpAnswer, name: &str) -> Vec<&'a [u8]> {
    answer
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
        .collect()
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while process_exists(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The program snapshots (`<work>/programs/*.state`).
fn program_snapshots(work: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(work.join("programs"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "state"))
                .collect()
        })
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_program_in_a_microvm() {
    let t_build = Instant::now();
    let runtime = tokio::task::spawn_blocking(build_runtime).await.unwrap();
    let build_took = t_build.elapsed();
    let work = tempfile::tempdir().unwrap();
    let mut config = VmConfig::new(&runtime, work.path());
    // A cold boot under TCG takes about 15 s here, and four times that on a machine whose
    // cores are busy with other work (measured with two busy loops beside the test): the
    // node's 60 s default is an operator's setting, not what this test is about.
    config.boot_timeout = SLOW_MACHINE;
    assert!(
        VmExecutor::available(&config),
        "qemu-system-x86_64 or the artifacts in {} are missing",
        runtime.display()
    );
    let executor = VmExecutor::new(config).expect("executor");
    let code = zip_like_the_cli(work.path(), "myapp", MAIN_PY);
    let hits = Arc::new(AtomicUsize::new(0));
    let api = fake_api(hits.clone()).await;

    // The template snapshot of the program's shape (256 MiB, 1 vCPU).
    let t0 = Instant::now();
    let template = executor.prepare(256, 1).await.expect("template snapshot");
    let template_took = t0.elapsed();
    assert!(template.path.is_file() && template.size_bytes > 1 << 20);

    // Program A: restore + config, then the first answer.
    let log_a = ProgramLog::new(1 << 20);
    let t0 = Instant::now();
    let a = executor
        .start(program(&code, log_a.clone(), api))
        .await
        .expect("program A starts");
    let start_a = t0.elapsed();
    let startup_a = a.startup().clone();
    assert!(startup_a.restored, "A was restored from the template");
    assert!(!startup_a.from_program_snapshot);
    assert!(a.alive());
    assert!(program_snapshots(work.path()).is_empty());
    let first = a.http(get("/", ""), T).await.expect("first answer");
    let first_a = t0.elapsed();
    assert_eq!(first.status, 200);
    assert_eq!(json(&first)["hello"], "world");

    // After its first answer, A's own VM is saved in the background; requests meanwhile wait
    // for the pause (if they meet it) and are answered.
    let t = Instant::now();
    let during: Vec<_> = (0..3).map(|_| a.http(get("/", ""), T)).collect();
    for answer in futures::future::join_all(during).await {
        assert_eq!(answer.unwrap().status, 200);
    }
    let during_snapshot = t.elapsed();
    let snapshot = loop {
        if let [path] = program_snapshots(work.path()).as_slice() {
            break path.clone();
        }
        assert!(
            t.elapsed() < SLOW_MACHINE,
            "no program snapshot after the first answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let snapshot_took = t.elapsed();
    let snapshot_size = std::fs::metadata(&snapshot).unwrap().len();
    assert!(snapshot_size > 1 << 20);
    // A keeps answering after the pause.
    assert_eq!(
        json(&a.http(get("/env", ""), T).await.unwrap())["var"],
        "visible"
    );

    // About 20 requests of several kinds.
    let mut latencies = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        match i % 5 {
            0 => {
                let r = a.http(get("/", ""), T).await.unwrap();
                assert_eq!(r.status, 200);
            }
            1 => {
                let scope = HttpScope {
                    headers: vec![
                        (b"x-repeat".to_vec(), b"1".to_vec()),
                        (b"x-repeat".to_vec(), b"2".to_vec()),
                    ],
                    ..get("/echo", &format!("q=a&q=b{i}"))
                };
                let r = json(&a.http(scope, T).await.unwrap());
                assert_eq!(r["q"], serde_json::json!(["a", format!("b{i}")]));
                assert_eq!(r["x"], serde_json::json!(["1", "2"]));
            }
            2 => {
                let body = format!("payload {i} ").repeat(100 * (i + 1));
                let scope = HttpScope {
                    method: "POST".into(),
                    headers: vec![(b"content-type".to_vec(), b"text/plain".to_vec())],
                    body: Bytes::from(body.clone()),
                    ..get("/echo", "")
                };
                let r = json(&a.http(scope, T).await.unwrap());
                assert_eq!(r["method"], "POST");
                assert_eq!(r["len"], body.len());
                assert_eq!(r["body"], body);
            }
            3 => {
                let r = a.http(get("/cookies", ""), T).await.unwrap();
                let cookies = header_values(&r, "set-cookie");
                assert_eq!(cookies.len(), 2, "{:?}", r.headers);
                assert!(cookies[0].starts_with(b"a=1") && cookies[1].starts_with(b"b=2"));
                assert_eq!(&r.body[..], b"two cookies");
            }
            _ => {
                let r = json(&a.http(get("/env", ""), T).await.unwrap());
                assert_eq!(r["var"], "visible");
                assert_eq!(r["vm_hash"], ITEM_HASH);
            }
        }
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];

    // Concurrent requests are told apart by id.
    let scopes = (0..4).map(|i| a.http(get("/echo", &format!("q={i}")), T));
    let answers = futures::future::join_all(scopes).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(
            json(&answer.unwrap())["q"],
            serde_json::json!([i.to_string()])
        );
    }

    // A raising handler: the traceback for the owner, and the VM keeps answering.
    match a.http(get("/boom", ""), T).await {
        Err(VmError::ProgramError(traceback)) => {
            assert!(traceback.contains("boom as requested"), "{traceback}")
        }
        other => panic!("expected ProgramError, got {other:?}"),
    }
    assert_eq!(a.http(get("/", ""), T).await.unwrap().status, 200);

    // A request past its deadline: Timeout, and the VM keeps answering.
    let t = Instant::now();
    let late = a.http(get("/slow", ""), Duration::from_millis(300)).await;
    assert!(matches!(late, Err(VmError::Timeout)), "{late:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(a.http(get("/", ""), T).await.unwrap().status, 200);

    // The reference's aleph.message scope.
    let message = Bytes::from_static(br#"{"item_hash": "abc", "type": "POST"}"#);
    a.message(message, T).await.expect("aleph.message");
    let stored = json(&a.http(get("/messages", ""), T).await.unwrap());
    assert_eq!(
        stored,
        serde_json::json!([{"item_hash": "abc", "type": "POST"}])
    );

    // The guest API (10.0.2.100) reaches the node's loopback port, internet off.
    let r = json(&a.http(get("/api", ""), T).await.unwrap());
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["text"].as_str().unwrap().contains("raleph-vm-test"));
    assert!(hits.load(Ordering::SeqCst) >= 1);

    // Streamed exchanges: the response's chunks arrive as the program yields them.
    let t = Instant::now();
    let streamed = a
        .http_stream(get("/stream", ""), futures::stream::empty(), T)
        .await
        .expect("streamed answer");
    assert_eq!(streamed.status, 200);
    let mut body = streamed.body;
    let mut received = Vec::new();
    let mut first_chunk = None;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk.expect("chunk");
        if !chunk.is_empty() && first_chunk.is_none() {
            first_chunk = Some(t.elapsed());
        }
        received.extend_from_slice(&chunk);
    }
    let stream_took = t.elapsed();
    let first_chunk = first_chunk.expect("a chunk");
    assert_eq!(
        String::from_utf8(received).unwrap(),
        (0..5).map(|i| format!("chunk {i}\n")).collect::<String>()
    );
    // The program sleeps 0.5 s after each chunk: the first came well before the last was made.
    assert!(
        first_chunk + Duration::from_millis(1500) < stream_took,
        "first chunk after {first_chunk:?}, end after {stream_took:?}"
    );
    // A 20 MB upload, forwarded in pieces as it is produced.
    let upload_size = 20_000_000usize;
    let pieces = futures::stream::iter(
        (0..20).map(move |i| Ok::<_, VmError>(Bytes::from(vec![b'a' + i as u8; upload_size / 20]))),
    );
    let scope = HttpScope {
        method: "POST".into(),
        path: "/upload".into(),
        query_string: String::new(),
        headers: vec![(
            b"content-type".to_vec(),
            b"application/octet-stream".to_vec(),
        )],
        body: Bytes::new(),
    };
    let t = Instant::now();
    let uploaded = a.http_stream(scope, pieces, T).await.expect("upload");
    assert_eq!(uploaded.status, 200);
    let mut body = uploaded.body;
    let mut answer = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        answer.extend_from_slice(&chunk.expect("chunk"));
    }
    let upload_took = t.elapsed();
    let r: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(r["len"], upload_size, "{r}");
    assert!(r["parts"].as_u64().unwrap() > 1, "{r}");

    // What the program printed is in its log.
    let printed: String = log_a.entries().iter().map(|e| e.message.clone()).collect();
    assert!(printed.contains("echo POST"), "{printed}");

    let pid_a = a.pid().expect("pid");
    let t = Instant::now();
    a.stop().await;
    let stop_a = t.elapsed();
    assert!(!a.alive());
    assert!(
        !process_exists(pid_a),
        "QEMU {pid_a} still exists after stop()"
    );
    assert!(matches!(
        a.http(get("/", ""), T).await,
        Err(VmError::Crashed(_))
    ));
    drop(a);

    // Program B, the same program again: restored from A's snapshot, no config.
    let log_b = ProgramLog::new(1 << 20);
    let t0 = Instant::now();
    let b = executor
        .start(program(&code, log_b.clone(), api))
        .await
        .expect("program B starts");
    let start_b = t0.elapsed();
    let startup_b = b.startup().clone();
    assert!(startup_b.restored);
    assert!(startup_b.from_program_snapshot, "B came from A's snapshot");
    let env = json(&b.http(get("/env", ""), T).await.unwrap());
    let first_b = t0.elapsed();
    assert_eq!(env["var"], "visible");
    assert_eq!(env["vm_hash"], ITEM_HASH);
    assert_eq!(b.http(get("/", ""), T).await.unwrap().status, 200);
    // Its state is A's at the snapshot (the message came later), and it runs as A did.
    assert_eq!(
        json(&b.http(get("/messages", ""), T).await.unwrap()),
        serde_json::json!([])
    );
    let r = json(&b.http(get("/api", ""), T).await.unwrap());
    assert_eq!(r["status"], 200, "{r}");

    // QEMU dies under it: requests fail at once with Crashed, alive() turns false.
    let pid_b = b.pid().unwrap();
    let pending = b.http(get("/slow", ""), T);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid_b.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let t = Instant::now();
    let (pending, ()) = tokio::join!(pending, killer);
    assert!(matches!(pending, Err(VmError::Crashed(_))), "{pending:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(wait_gone(pid_b, Duration::from_secs(5)).await);
    assert!(!b.alive());
    assert!(matches!(
        b.http(get("/", ""), T).await,
        Err(VmError::Crashed(_))
    ));
    let notes: String = log_b.entries().iter().map(|e| e.message.clone()).collect();
    assert!(notes.contains("stopped unexpectedly"), "{notes}");
    b.stop().await;
    drop(b);

    // A handle dropped without stop() takes its QEMU with it.
    let c = executor
        .start(program(&code, ProgramLog::new(1 << 16), api))
        .await
        .expect("program C starts");
    let pid_c = c.pid().unwrap();
    drop(c);
    assert!(
        wait_gone(pid_c, Duration::from_secs(5)).await,
        "QEMU {pid_c} outlived its handle"
    );

    // An import error: Config with the traceback, and no VM left.
    let bad = zip_like_the_cli(work.path(), "badapp", "import no_such_module_here\n");
    let t = Instant::now();
    match executor
        .start(program(&bad, ProgramLog::new(1 << 16), api))
        .await
    {
        Err(VmError::Config(text)) => assert!(text.contains("no_such_module_here"), "{text}"),
        Err(e) => panic!("expected Config, got {e:?}"),
        Ok(_) => panic!("a program whose import fails started"),
    }
    let failed_config = t.elapsed();

    // A program snapshot and a template that cannot be restored: the snapshot is deleted and
    // the program cold boots instead.
    assert_eq!(program_snapshots(work.path()), vec![snapshot.clone()]);
    std::fs::write(&snapshot, b"not a migration stream").unwrap();
    std::fs::write(&template.path, b"not a migration stream").unwrap();
    let t0 = Instant::now();
    let d = executor
        .start(program(&code, ProgramLog::new(1 << 16), api))
        .await
        .expect("program D cold boots");
    let start_d = t0.elapsed();
    assert!(!snapshot.exists(), "the broken program snapshot was kept");
    assert!(!d.startup().restored);
    assert!(!d.startup().from_program_snapshot);
    assert_eq!(
        json(&d.http(get("/env", ""), T).await.unwrap())["var"],
        "visible"
    );
    d.stop().await;
    drop(d);

    let vms = std::fs::read_dir(work.path().join("vms")).unwrap().count();
    assert_eq!(vms, 0, "VM folders left behind");

    eprintln!("--- microVM figures ({:?})", executor.accel());
    eprintln!("runtime build or reuse: {}", ms(build_took));
    eprintln!(
        "template: {} ({} MB at {})",
        ms(template_took),
        template.size_bytes / 1_000_000,
        template.path.display()
    );
    eprintln!(
        "A start (restore + config): {} (launch->hello {}, config->ready {}); first answer {} after start()",
        ms(start_a),
        ms(startup_a.to_hello),
        ms(startup_a.config),
        ms(first_a)
    );
    eprintln!(
        "per request p50 {} / max {} over {} sequential requests",
        ms(p50),
        ms(*latencies.last().unwrap()),
        latencies.len()
    );
    eprintln!(
        "A's program snapshot: saved {} after its first answer ({} MB)",
        ms(snapshot_took),
        snapshot_size / 1_000_000
    );
    eprintln!(
        "3 concurrent requests right after the first answer (meeting the pause or not): {}",
        ms(during_snapshot)
    );
    eprintln!(
        "streamed response: first of 5 chunks after {}, last after {}; 20 MB streamed upload: {}",
        ms(first_chunk),
        ms(stream_took),
        ms(upload_took)
    );
    eprintln!("A stop (halt): {}", ms(stop_a));
    eprintln!(
        "B start from A's program snapshot: {} (launch->hello {}, resume {}); first answer {}",
        ms(start_b),
        ms(startup_b.to_hello),
        ms(startup_b.config),
        ms(first_b)
    );
    eprintln!(
        "import error -> Config error (VM stopped): {}",
        ms(failed_config)
    );
    eprintln!("D cold boot after a failed restore: {}", ms(start_d));
}
