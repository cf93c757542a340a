//! The `/raleph/1` request-response codec, reading what a peer sends: the first byte chooses a
//! request (0), a response (1) or an ALIVE announcement (2); the rest is the stream. Reads
//! stay within the codec's limits, and what decodes encodes (within the wire size it reports)
//! and decodes again to the same value.

#![no_main]

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use raleph_p2p::fuzzing::{Codec, RequestResponseCodec};
use raleph_p2p::{Keypair, P2pConfig, PROTOCOL, parse_announcement};

/// Runs a codec future over an in-memory cursor, which never waits.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a read from memory waited"),
    }
}

fn node_codec() -> Codec {
    let config = P2pConfig::default();
    Codec {
        max_request_bytes: config.max_request_bytes,
        max_response_bytes: config.max_response_bytes,
    }
}

/// For re-encoding: what decoded may grow a little (defaults written out).
fn roomy_codec() -> Codec {
    Codec {
        max_request_bytes: 1 << 30,
        max_response_bytes: 1 << 30,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(request) = ready(node_codec().read_request(&PROTOCOL, &mut Cursor::new(bytes)))
            else {
                return;
            };
            let mut wire = Cursor::new(Vec::new());
            ready(roomy_codec().write_request(&PROTOCOL, &mut wire, request.clone()))
                .expect("a decoded request encodes");
            let wire = wire.into_inner();
            let again = ready(roomy_codec().read_request(&PROTOCOL, &mut Cursor::new(wire)))
                .expect("an encoded request decodes");
            assert_eq!(again, request);
        }
        1 => {
            let codec = node_codec();
            let Ok(response) =
                ready(node_codec().read_response(&PROTOCOL, &mut Cursor::new(bytes)))
            else {
                return;
            };
            if let raleph_p2p::RalephResponse::FileChunk { bytes: chunk, .. } = &response {
                assert!(chunk.len() <= codec.max_response_bytes);
            }
            let mut wire = Cursor::new(Vec::new());
            ready(roomy_codec().write_response(&PROTOCOL, &mut wire, response.clone()))
                .expect("a decoded response encodes");
            let wire = wire.into_inner();
            assert_eq!(wire.len(), response.encoded_len());
            let again = ready(roomy_codec().read_response(&PROTOCOL, &mut Cursor::new(wire)))
                .expect("an encoded response decodes");
            assert_eq!(again, response);
        }
        _ => {
            let author = Keypair::ed25519_from_bytes([7u8; 32])
                .expect("an ed25519 secret")
                .public()
                .to_peer_id();
            let _ = parse_announcement(bytes, &author);
        }
    }
});
