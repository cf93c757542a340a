//! Framing of the control channel: `u32` big-endian length + msgpack payload, both ways, with
//! the guest's SYNC marker skipped at frame boundaries (PROTOCOL.md §5). Bytes only: what the
//! payloads mean is `proto`'s job.

use bytes::{Buf, Bytes, BytesMut};

/// What the guest writes before every hello; skipped wherever a frame could start.
pub const SYNC: &[u8; 15] = b"\0RALEPH-SYNC-1\n";

/// Largest frame the host accepts from a guest. A larger one is skipped as it streams in, never
/// buffered, so a VM handle holds at most this much of a frame at once.
pub const MAX_FRAME_FROM_GUEST: usize = 16 << 20;

/// Largest frame the guest accepts (it skips larger ones without answering). The program's
/// code travels in the config frame, so this is also the limit on code size.
pub const MAX_FRAME_TO_GUEST: usize = 64 << 20;

/// How much of an oversized frame is kept, to find the request id it answers.
pub const OVERSIZE_HEAD: usize = 32;

/// The length prefix of a payload of `len` bytes, or `None` when that is more than `max`.
pub fn header(len: usize, max: usize) -> Option<[u8; 4]> {
    if len > max {
        return None;
    }
    u32::try_from(len).ok().map(u32::to_be_bytes)
}

/// A payload wrapped in its length prefix, or `None` when it is larger than `max`.
#[cfg(test)]
pub fn encode(payload: &[u8], max: usize) -> Option<Vec<u8>> {
    let header = header(payload.len(), max)?;
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Some(out)
}

/// One unit taken off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Frame(Bytes),
    /// A frame over the limit: its size and its first bytes (at most [`OVERSIZE_HEAD`]); the
    /// rest is discarded as it arrives.
    Oversize {
        size: usize,
        head: Vec<u8>,
    },
}

/// Incremental decoder of the guest → host stream. Everything before the first SYNC is
/// discarded (a previous connection's leftovers); after it, frames follow, with further SYNC
/// markers skipped at frame boundaries.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    synced: bool,
    /// Bytes of an oversized frame still to discard.
    skip: usize,
    max: usize,
}

impl Decoder {
    pub fn new(max: usize) -> Decoder {
        Decoder {
            buf: BytesMut::new(),
            synced: false,
            skip: 0,
            max,
        }
    }

    /// Bytes held right now (bounded by `max` + the frame header + one pushed chunk).
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn push(&mut self, mut data: &[u8]) {
        if self.skip > 0 && self.buf.is_empty() {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete unit, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Decoded> {
        if !self.synced {
            match find(&self.buf, SYNC) {
                Some(at) => {
                    self.buf.advance(at + SYNC.len());
                    self.synced = true;
                }
                None => {
                    // Keep only what could be the start of a SYNC split across reads.
                    let keep = self.buf.len().min(SYNC.len() - 1);
                    let drop = self.buf.len() - keep;
                    self.buf.advance(drop);
                    return None;
                }
            }
        }
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return None;
                }
            }
            if self.buf.len() < 4 {
                return None;
            }
            let seen = self.buf.len().min(SYNC.len());
            if self.buf[0] == 0 && self.buf[..seen] == SYNC[..seen] {
                if seen < SYNC.len() {
                    return None; // could be SYNC or a frame: wait for 15 bytes
                }
                self.buf.advance(SYNC.len());
                continue;
            }
            let size =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if size > self.max {
                let head_len = size.min(OVERSIZE_HEAD);
                if self.buf.len() < 4 + head_len {
                    return None;
                }
                let head = self.buf[4..4 + head_len].to_vec();
                let here = self.buf.len().min(4 + size);
                self.buf.advance(here);
                self.skip = 4 + size - here;
                return Some(Decoded::Oversize { size, head });
            }
            if self.buf.len() < 4 + size {
                self.buf.reserve(4 + size - self.buf.len());
                return None;
            }
            self.buf.advance(4);
            return Some(Decoded::Frame(self.buf.split_to(size).freeze()));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(decoder: &mut Decoder) -> Vec<Decoded> {
        std::iter::from_fn(|| decoder.next_frame()).collect()
    }

    #[test]
    fn round_trip_with_sync_and_junk() {
        let mut stream = b"junk from an earlier connection".to_vec();
        stream.extend_from_slice(SYNC);
        stream.extend(encode(b"\x81\xa1a\x01", 100).unwrap());
        stream.extend_from_slice(SYNC);
        stream.extend(encode(b"", 100).unwrap());
        stream.extend(encode(&[0x80; 50], 100).unwrap());
        let mut decoder = Decoder::new(100);
        decoder.push(&stream);
        assert_eq!(
            all(&mut decoder),
            vec![
                Decoded::Frame(Bytes::from_static(b"\x81\xa1a\x01")),
                Decoded::Frame(Bytes::new()),
                Decoded::Frame(Bytes::from(vec![0x80; 50])),
            ]
        );
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn nothing_before_sync() {
        let mut decoder = Decoder::new(100);
        decoder.push(&encode(b"\x80", 100).unwrap());
        assert_eq!(decoder.next_frame(), None);
        decoder.push(&SYNC[..7]);
        assert_eq!(decoder.next_frame(), None);
        decoder.push(&SYNC[7..]);
        decoder.push(&encode(b"\x80", 100).unwrap());
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Frame(Bytes::from_static(b"\x80")))
        );
    }

    #[test]
    fn oversize_is_skipped_and_reported() {
        let mut decoder = Decoder::new(10);
        decoder.push(SYNC);
        let mut big = vec![0x82];
        big.extend(std::iter::repeat_n(7u8, 999));
        decoder.push(&encode(&big, 2000).unwrap()[..20]);
        assert_eq!(decoder.next_frame(), None); // not enough for the head yet
        let whole = encode(&big, 2000).unwrap();
        decoder.push(&whole[20..100]);
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Oversize {
                size: 1000,
                head: big[..OVERSIZE_HEAD].to_vec()
            })
        );
        for chunk in whole[100..].chunks(64) {
            decoder.push(chunk);
            assert_eq!(decoder.next_frame(), None);
            assert!(decoder.buffered() <= 64);
        }
        decoder.push(&encode(b"\x80", 10).unwrap());
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Frame(Bytes::from_static(b"\x80")))
        );
    }

    #[test]
    fn sync_lookalike_length_is_a_frame() {
        // A length field equal to SYNC's first four bytes, followed by something else.
        let mut decoder = Decoder::new(usize::MAX);
        decoder.push(SYNC);
        decoder.push(&SYNC[..4]);
        decoder.push(&[0x80; 11]);
        assert_eq!(decoder.next_frame(), None);
        assert_eq!(decoder.buffered(), 15);
    }

    #[test]
    fn encode_refuses_oversize() {
        assert!(encode(&[0; 11], 10).is_none());
        assert_eq!(encode(&[1, 2], 10).unwrap(), vec![0, 0, 0, 2, 1, 2]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cut in 1usize..512,
            synced in any::<bool>(),
        ) {
            let max = 256;
            let mut decoder = Decoder::new(max);
            if synced {
                decoder.push(SYNC);
            }
            for chunk in data.chunks(cut) {
                decoder.push(chunk);
                while let Some(unit) = decoder.next_frame() {
                    match unit {
                        Decoded::Frame(payload) => {
                            prop_assert!(payload.len() <= max);
                            let _ = super::super::proto::parse(&payload);
                        }
                        Decoded::Oversize { size, head } => {
                            prop_assert!(size > max && head.len() <= OVERSIZE_HEAD);
                            let _ = super::super::proto::peek_id(&head);
                        }
                    }
                }
                prop_assert!(decoder.buffered() <= 4 + max + cut + SYNC.len());
            }
        }

        #[test]
        fn frames_round_trip(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12),
            syncs in proptest::collection::vec(any::<bool>(), 12),
            cut in 1usize..97,
        ) {
            let mut stream = b"\x00\x00leftover".to_vec();
            stream.extend_from_slice(SYNC);
            for (i, p) in payloads.iter().enumerate() {
                if syncs[i] {
                    stream.extend_from_slice(SYNC);
                }
                stream.extend(encode(p, 300).unwrap());
            }
            let mut decoder = Decoder::new(300);
            let mut got = Vec::new();
            for chunk in stream.chunks(cut) {
                decoder.push(chunk);
                got.extend(all(&mut decoder));
            }
            let want: Vec<Decoded> = payloads.iter().map(|p| Decoded::Frame(Bytes::from(p.clone()))).collect();
            prop_assert_eq!(got, want);
        }
    }
}
