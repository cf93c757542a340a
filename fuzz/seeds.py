#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/: a few real inputs per target.

The seeds are committed; run this again (python3 fuzz/seeds.py) after changing it. Shapes
follow what aleph-sdk-python sends and what the node writes (journal, /raleph/1 frames).
"""

import hashlib
import json
import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SENDER = "0x51A58800b26AA1451aaA803d1746687cB88E0501"
SOL_SENDER = "9yVq3oYDZ7oCcNkqdvBz5ACpdDXkpwHf8Qt5HDxMbiH3"
SIG = "0x" + "ab" * 65
HASH = "5f31b0706f59404fad3d0bff97ef89ddf24da4761608ea0646329362c662ba51"
CID = "QmbhQsbQGPsA7rzeA5WGZfU7PKGGiobqFdJ9vodYmWTRs3"
TIME = 1717000000.123

POST = {"address": SENDER, "time": TIME, "type": "note",
        "content": {"body": "hello", "tags": ["a", "b"]}}
AMEND = {"address": SENDER, "time": TIME, "type": "amend", "ref": HASH,
         "content": {"body": "edited"}}
AGGREGATE = {"address": SENDER, "time": TIME, "key": "profile",
             "content": {"name": "Ada", "nested": {"n": 1, "f": 0.5, "l": [None, True]}}}
SECURITY = {"address": SENDER, "time": TIME, "key": "security",
            "content": {"authorizations": [{"address": "0xabc", "types": ["POST"],
                                            "post_types": ["note"], "channels": ["TEST"]}]}}
STORE = {"address": SENDER, "time": TIME, "item_type": "storage", "item_hash": HASH,
         "size": 1234, "ref": "my-file", "tags": ["x"]}
STORE_IPFS = {"address": SENDER, "time": TIME, "item_type": "ipfs", "item_hash": CID}
FORGET = {"address": SENDER, "time": TIME, "hashes": [HASH], "aggregates": ["profile"],
          "reason": "spam"}
PROGRAM = {
    "address": SENDER, "time": TIME, "allow_amend": False, "authorized_keys": [],
    "metadata": {"name": "p", "tags": ["api"]}, "variables": {"FOO": "bar"},
    "environment": {"reproducible": False, "internet": True, "aleph_api": True,
                    "shared_cache": False},
    "resources": {"vcpus": 1, "memory": 256, "seconds": 30,
                  "published_ports": [{"protocol": "tcp", "port": 8080}]},
    "payment": {"chain": "ETH", "type": "hold"},
    "volumes": [
        {"comment": "libs", "mount": "/opt/packages", "ref": HASH, "use_latest": True},
        {"mount": "/data", "ephemeral": True, "size_mib": 5},
        {"mount": "/var/lib/ex", "persistence": "host", "name": "ex", "size_mib": 100},
    ],
    "type": "vm-function",
    "code": {"encoding": "zip", "entrypoint": "main:app", "ref": CID, "use_latest": True},
    "runtime": {"ref": HASH, "use_latest": True, "comment": "runtime"},
    "on": {"http": True, "persistent": False},
}
INSTANCE = {
    "address": SENDER, "time": TIME, "allow_amend": False,
    "metadata": {"name": "vm", "tags": ["web"]},
    "authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0f user@host"],
    "environment": {"internet": True, "aleph_api": True, "hypervisor": "qemu",
                    "reproducible": False, "shared_cache": False,
                    "trusted_execution": {"firmware": HASH, "policy": 1}},
    "resources": {"vcpus": 1, "memory": 2048, "seconds": 30},
    "payment": {"chain": "AVAX", "receiver": SENDER, "type": "superfluid"},
    "requirements": {"node": {"node_hash": HASH}},
    "volumes": [],
    "rootfs": {"parent": {"ref": HASH, "use_latest": True}, "persistence": "host",
               "size_mib": 20480},
}
CONTENTS = [("POST", POST), ("POST", AMEND), ("AGGREGATE", AGGREGATE),
            ("AGGREGATE", SECURITY), ("STORE", STORE), ("STORE", STORE_IPFS),
            ("FORGET", FORGET), ("PROGRAM", PROGRAM), ("INSTANCE", INSTANCE)]
# The content target's first byte picks the type, in this order.
TYPES = ["POST", "AGGREGATE", "STORE", "PROGRAM", "INSTANCE", "FORGET"]


def compact(value):
    return json.dumps(value, separators=(",", ":"))


def envelope(message_type, content, chain="ETH", sender=SENDER, channel="TEST"):
    item_content = compact(content)
    return {"sender": sender, "chain": chain, "signature": SIG, "type": message_type,
            "item_type": "inline", "item_content": item_content,
            "item_hash": hashlib.sha256(item_content.encode()).hexdigest(),
            "time": TIME, "channel": channel}


ENVELOPES = [envelope(t, c) for t, c in CONTENTS] + [
    envelope("POST", POST, chain="SOL", sender=SOL_SENDER, channel=None),
    {"sender": SENDER, "chain": "ETH", "signature": SIG, "type": "STORE",
     "item_type": "storage", "item_hash": HASH, "time": TIME},
    {"sender": SENDER, "chain": "ETH", "signature": SIG, "type": "PROGRAM",
     "item_type": "ipfs", "item_hash": CID, "time": 1717000000, "channel": "TEST",
     "hash_type": "sha256"},
]


def journal_record(number, origin, env):
    body = (struct.pack("<Q", number) + struct.pack("<d", TIME + number)
            + bytes([len(origin)]) + origin.encode() + compact(env).encode())
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def request(value):
    body = compact(value).encode()
    return struct.pack(">I", len(body)) + body


def response(header, blob=b""):
    head = compact(header).encode()
    return struct.pack(">I", len(head)) + head + struct.pack(">I", len(blob)) + blob


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    seeds = {"envelope": {}, "content": {}, "query": {}, "journal": {}, "p2p_codec": {},
             "multipart": {}}

    for i, env in enumerate(ENVELOPES):
        seeds["envelope"][f"{i:02}-{env['type'].lower()}"] = compact(env).encode()

    for i, (message_type, content) in enumerate(CONTENTS):
        seeds["content"][f"{i:02}-{message_type.lower()}"] = (
            bytes([TYPES.index(message_type)]) + compact(content).encode())

    queries = [
        "",
        "msgTypes=POST,AGGREGATE&addresses=" + SENDER + "&pagination=50&page=2",
        "msgStatuses=forgotten&hashes=" + HASH,
        "startDate=1700000000&endDate=1800000000.5&sortOrder=1&contentFormat=headers",
        "cursor=&pagination=20&channels=TEST&tags=a,b&contentTypes=note",
        "cursor=eyJoIjoiNWYzMSIsInQiOjE3MTcwMDAwMDAuMTIzfQ&chains=ETH",
        "refs[]=a&refs[]=b&contentKeys=profile&paymentTypes=hold&excludeContent=true",
        "3.json\nmsgType=STORE&pagination=0",
        "page=9223372036854775807&pagination=1000",
    ]
    for i, q in enumerate(queries):
        seeds["query"][f"{i:02}"] = q.encode()

    segment = b"".join(journal_record(n + 1, origin, ENVELOPES[n])
                       for n, origin in enumerate(["api", "p2p", "sync"]))
    seeds["journal"]["00-three"] = segment
    seeds["journal"]["01-torn-tail"] = segment + journal_record(4, "api", ENVELOPES[3])[:40]
    seeds["journal"]["02-one-long-origin"] = journal_record(7, "x" * 255, ENVELOPES[4])

    seeds["p2p_codec"]["00-hello"] = b"\x00" + request({"type": "hello"})
    seeds["p2p_codec"]["01-sync"] = b"\x00" + request(
        {"type": "sync_messages", "after": 42, "limit": 500, "hashes_only": True})
    seeds["p2p_codec"]["02-fetch"] = b"\x00" + request(
        {"type": "fetch_file", "hash": HASH, "offset": 0, "len": 1048576})
    seeds["p2p_codec"]["03-hello-answer"] = b"\x01" + response(
        {"type": "hello", "http_base_url": "http://10.0.0.1:4024",
         "listen_addrs": ["/ip4/10.0.0.1/tcp/4025/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"],
         "known_peers": ["/dns4/node.example/tcp/4025"], "node_version": "0.1.0"})
    seeds["p2p_codec"]["04-sync-page"] = b"\x01" + response(
        {"type": "sync", "epoch": "e1", "messages": [compact(ENVELOPES[0])],
         "forgotten": [], "next": 43, "more": False})
    seeds["p2p_codec"]["05-hashes-page"] = b"\x01" + response(
        {"type": "sync", "epoch": "e1", "messages": [], "message_hashes": [HASH],
         "forgotten_hashes": [], "next": 43, "more": True})
    seeds["p2p_codec"]["06-chunk"] = b"\x01" + response(
        {"type": "file_chunk", "total": 10}, b"0123456789")
    seeds["p2p_codec"]["07-not-found"] = b"\x01" + response({"type": "not_found"})
    seeds["p2p_codec"]["08-error"] = b"\x01" + response({"type": "error", "message": "busy"})
    seeds["p2p_codec"]["09-alive"] = b"\x02" + compact(
        {"address": "/ip4/10.0.0.1/tcp/4025/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
         "peer_type": "P2P"}).encode()
    seeds["p2p_codec"]["10-alive-http"] = b"\x02" + compact(
        {"address": "http://10.0.0.1:4024", "peer_type": "HTTP"}).encode()
    seeds["p2p_codec"]["11-alive-percent"] = (
        b"\x02%7B%22address%22%3A%22http%3A//h%3A1%22%2C%22peer_type%22%3A%22HTTP%22%7D")

    # Selector byte (chunk size, bit 7: tiny limits), the Content-Type line, the body.
    def form(selector, boundary, parts, content_type=None, preamble=b""):
        body = preamble
        for headers, data in parts:
            body += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers)
            body += b"\r\n" + data + b"\r\n"
        body += b"--" + boundary + b"--\r\n"
        content_type = content_type or b"multipart/form-data; boundary=" + boundary
        return bytes([selector]) + content_type + b"\n" + body

    metadata = compact({"message": ENVELOPES[10], "sync": True}).encode()
    upload = [
        ([b'Content-Disposition: form-data; name="metadata"',
          b"Content-Type: application/json"], metadata),
        ([b'Content-Disposition: form-data; name="file"; filename="a.txt"',
          b"Content-Type: application/octet-stream"], b"hello\r\n--not-a-boundary\r\nworld"),
    ]
    seeds["multipart"]["00-sdk-upload"] = form(0, b"8b0c2d3e4f5a6b7c", upload)
    seeds["multipart"]["01-chunked-7"] = form(7, b"8b0c2d3e4f5a6b7c", upload)
    seeds["multipart"]["02-quoted-boundary"] = form(
        1, b"a'()+_,-./:=? b", [([b'content-disposition: form-data; name="file"; '
                                  b'filename="C:\\dir\\a \\"x\\".txt"'], b"x" * 100)],
        content_type=b'multipart/form-data; charset=utf-8; boundary="a\'()+_,-./:=? b"')
    seeds["multipart"]["03-extended-name"] = form(
        3, b"----WebKitFormBoundary7MA4YWxkTrZu0gW",
        [([b"Content-Disposition: form-data; name*=utf-8''%E2%82%AC; filename=\"%22q%22.bin\""],
          b"\x00\x01\x02")], preamble=b"preamble\r\n")
    seeds["multipart"]["04-tiny-limits"] = form(0x80 | 2, b"b", upload)
    seeds["multipart"]["05-unfinished"] = form(0, b"zz", upload)[:-6]

    for target, files in seeds.items():
        os.makedirs(os.path.join(ROOT, target))
        for name, data in files.items():
            with open(os.path.join(ROOT, target, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
