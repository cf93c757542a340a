//! Wallet signatures over arbitrary bytes: what an owner's ETH or SOL wallet signs to authorize
//! an ephemeral key (`X-SignedPubKey`).
//!
//! raleph-crypto verifies signatures over an Aleph message's verification buffer only; the
//! control API needs the same two schemes over any payload:
//! - ETH: EIP-191 `personal_sign` of the payload bytes, the signer's address recovered from
//!   the secp256k1 signature (65 bytes, `v` as `eth_account` accepts it) and compared with the
//!   claimed address case-insensitively, as the reference does;
//! - SOL: ed25519 over the payload's lowercase hex text (what the reference verifies), the
//!   public key being the base58 address.
//!
//! Verification only, on public data: nothing here handles a secret, so the arithmetic is
//! plain (variable time) and kept short. It is checked against raleph-crypto's signers (the
//! secp256k1 C library and ed25519-dalek) and RFC 8032's vectors in the tests below. When
//! raleph-crypto grows `verify` functions over raw bytes, this module should become calls
//! to them.

use std::sync::LazyLock;

use p256::elliptic_curve::bigint::modular::constant_mod::Residue;
use p256::elliptic_curve::bigint::{Encoding, U256, impl_modulus};
use sha2::{Digest, Sha512};

/// `0x` + the 20-byte address (lowercase hex) whose key made `signature` over the EIP-191
/// hash of `message`; `None` if the signature is malformed or recovers no key.
pub fn eth_recover(message: &[u8], signature: &[u8]) -> Option<String> {
    let [sig @ .., v] = signature else {
        return None;
    };
    if sig.len() != 64 {
        return None;
    }
    let odd = match *v {
        0 | 1 => *v == 1,
        27 | 28 => *v == 28,
        35.. => (*v - 35) % 2 == 1,
        _ => return None,
    };
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    let digest = hasher.finish();
    let key = secp256k1_recover(&digest, &sig[..32], &sig[32..], odd)?;
    Some(format!("0x{}", hex::encode(&keccak256(&key)[12..])))
}

/// Whether `signature` (64 bytes) is the ed25519 signature of `message` by the key whose base58
/// text is `address`.
pub fn sol_verify(address: &str, message: &[u8], signature: &[u8]) -> bool {
    let Some(key) = b58_decode(address) else {
        return false;
    };
    let (Ok(key), Ok(signature)) = (<[u8; 32]>::try_from(key), <[u8; 64]>::try_from(signature))
    else {
        return false;
    };
    ed25519_verify(&key, message, &signature)
}

// ---------------------------------------------------------------------------------------
// Keccak-256 (the original padding, as Ethereum uses it)
// ---------------------------------------------------------------------------------------

const ROUND_CONSTANTS: [u64; 24] = [
    0x0000_0000_0000_0001,
    0x0000_0000_0000_8082,
    0x8000_0000_0000_808a,
    0x8000_0000_8000_8000,
    0x0000_0000_0000_808b,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8009,
    0x0000_0000_0000_008a,
    0x0000_0000_0000_0088,
    0x0000_0000_8000_8009,
    0x0000_0000_8000_000a,
    0x0000_0000_8000_808b,
    0x8000_0000_0000_008b,
    0x8000_0000_0000_8089,
    0x8000_0000_0000_8003,
    0x8000_0000_0000_8002,
    0x8000_0000_0000_0080,
    0x0000_0000_0000_800a,
    0x8000_0000_8000_000a,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8080,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8008,
];
/// Rotation of each lane along the ρ/π walk, and the lane visited.
const ROTATIONS: [u32; 24] = [
    1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44,
];
const LANES: [usize; 24] = [
    10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1,
];
const RATE: usize = 136;

fn keccak_f(state: &mut [u64; 25]) {
    for constant in ROUND_CONSTANTS {
        // θ
        let mut columns = [0u64; 5];
        for (x, column) in columns.iter_mut().enumerate() {
            *column = state[x] ^ state[x + 5] ^ state[x + 10] ^ state[x + 15] ^ state[x + 20];
        }
        for x in 0..5 {
            let d = columns[(x + 4) % 5] ^ columns[(x + 1) % 5].rotate_left(1);
            for y in 0..5 {
                state[5 * y + x] ^= d;
            }
        }
        // ρ and π
        let mut carried = state[1];
        for (lane, rotation) in LANES.iter().zip(ROTATIONS) {
            let next = state[*lane];
            state[*lane] = carried.rotate_left(rotation);
            carried = next;
        }
        // χ
        for y in 0..5 {
            let row = [
                state[5 * y],
                state[5 * y + 1],
                state[5 * y + 2],
                state[5 * y + 3],
                state[5 * y + 4],
            ];
            for x in 0..5 {
                state[5 * y + x] = row[x] ^ (!row[(x + 1) % 5] & row[(x + 2) % 5]);
            }
        }
        // ι
        state[0] ^= constant;
    }
}

struct Keccak256 {
    state: [u64; 25],
    buffer: [u8; RATE],
    filled: usize,
}

impl Keccak256 {
    fn new() -> Self {
        Keccak256 {
            state: [0; 25],
            buffer: [0; RATE],
            filled: 0,
        }
    }

    fn absorb_block(&mut self) {
        for (lane, chunk) in self.state.iter_mut().zip(self.buffer.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *lane ^= u64::from_le_bytes(word);
        }
        keccak_f(&mut self.state);
        self.filled = 0;
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (RATE - self.filled).min(data.len());
            self.buffer[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == RATE {
                self.absorb_block();
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        self.buffer[self.filled..].fill(0);
        self.buffer[self.filled] ^= 0x01;
        self.buffer[RATE - 1] ^= 0x80;
        self.absorb_block();
        let mut out = [0u8; 32];
        for (chunk, lane) in out.chunks_exact_mut(8).zip(self.state) {
            chunk.copy_from_slice(&lane.to_le_bytes());
        }
        out
    }
}

fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(data);
    hasher.finish()
}

// ---------------------------------------------------------------------------------------
// secp256k1 public-key recovery
// ---------------------------------------------------------------------------------------

impl_modulus!(
    Secp256k1Field,
    U256,
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F"
);
impl_modulus!(
    Secp256k1Order,
    U256,
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"
);
type Fp = Residue<Secp256k1Field, { U256::LIMBS }>;
type Fq = Residue<Secp256k1Order, { U256::LIMBS }>;

const SECP_P: U256 =
    U256::from_be_hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F");
const SECP_N: U256 =
    U256::from_be_hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141");
const SECP_GX: U256 =
    U256::from_be_hex("79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798");
const SECP_GY: U256 =
    U256::from_be_hex("483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8");

/// An affine point; `None` is the point at infinity.
type K1Point = Option<(Fp, Fp)>;

fn k1_double(point: K1Point) -> K1Point {
    let (x, y) = point?;
    if y == Fp::ZERO {
        return None;
    }
    let x2 = x.square();
    let lambda = (x2 + x2 + x2) * (y + y).invert().0;
    let x3 = lambda.square() - x - x;
    let y3 = lambda * (x - x3) - y;
    Some((x3, y3))
}

fn k1_add(p: K1Point, q: K1Point) -> K1Point {
    let Some((x1, y1)) = p else { return q };
    let Some((x2, y2)) = q else { return p };
    if x1 == x2 {
        return if y1 == y2 { k1_double(p) } else { None };
    }
    let lambda = (y2 - y1) * (x2 - x1).invert().0;
    let x3 = lambda.square() - x1 - x2;
    let y3 = lambda * (x1 - x3) - y1;
    Some((x3, y3))
}

/// `a·p + b·q`, both at once (Shamir's trick).
fn k1_double_mul(a: &U256, p: K1Point, b: &U256, q: K1Point) -> K1Point {
    let sum = k1_add(p, q);
    let mut acc = None;
    for i in (0..256).rev() {
        acc = k1_double(acc);
        acc = match (a.bit_vartime(i), b.bit_vartime(i)) {
            (true, true) => k1_add(acc, sum),
            (true, false) => k1_add(acc, p),
            (false, true) => k1_add(acc, q),
            (false, false) => acc,
        };
    }
    acc
}

/// The uncompressed public key (x ‖ y, 64 bytes) that signed `digest` with (r, s), the
/// nonce point's y being odd or even.
fn secp256k1_recover(digest: &[u8; 32], r: &[u8], s: &[u8], odd: bool) -> Option<[u8; 64]> {
    let r = U256::from_be_slice(r);
    let s = U256::from_be_slice(s);
    if r == U256::ZERO || r >= SECP_N || s == U256::ZERO || s >= SECP_N {
        return None;
    }
    // x = r: r < n < p. (x = r + n, recovery ids 2 and 3, is not what wallets produce.)
    let x = Fp::new(&r);
    let seven = Fp::new(&U256::from_u8(7));
    let alpha = x.square() * x + seven;
    // p ≡ 3 (mod 4): the square root is alpha^((p + 1) / 4).
    let exponent = SECP_P.wrapping_add(&U256::ONE).shr_vartime(2);
    let beta = alpha.pow(&exponent);
    if beta.square() != alpha {
        return None;
    }
    let y = if beta.retrieve().bit_vartime(0) == odd {
        beta
    } else {
        -beta
    };
    let z = Fq::new(&U256::from_be_bytes(*digest));
    let (r_inverse, _) = Fq::new(&r).invert();
    let u1 = -(z * r_inverse);
    let u2 = Fq::new(&s) * r_inverse;
    let generator = Some((Fp::new(&SECP_GX), Fp::new(&SECP_GY)));
    let (qx, qy) = k1_double_mul(&u1.retrieve(), generator, &u2.retrieve(), Some((x, y)))?;
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(&qx.retrieve().to_be_bytes());
    key[32..].copy_from_slice(&qy.retrieve().to_be_bytes());
    Some(key)
}

// ---------------------------------------------------------------------------------------
// ed25519 verification (cofactorless, as libsodium: the encoding of [S]B − [k]A must equal R)
// ---------------------------------------------------------------------------------------

impl_modulus!(
    Curve25519Field,
    U256,
    "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED"
);
impl_modulus!(
    Ed25519Order,
    U256,
    "1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED"
);
type Fe = Residue<Curve25519Field, { U256::LIMBS }>;
type Sc = Residue<Ed25519Order, { U256::LIMBS }>;

const ED_P: U256 =
    U256::from_be_hex("7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED");
const ED_L: U256 =
    U256::from_be_hex("1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED");

struct EdConstants {
    /// −121665 / 121666
    d: Fe,
    /// A square root of −1: 2^((p − 1) / 4).
    sqrt_m1: Fe,
    base: EdPoint,
}

static ED: LazyLock<EdConstants> = LazyLock::new(|| {
    let d = -Fe::new(&U256::from_u32(121_665)) * Fe::new(&U256::from_u32(121_666)).invert().0;
    let two = Fe::new(&U256::from_u8(2));
    let sqrt_m1 = two.pow(&ED_P.wrapping_sub(&U256::ONE).shr_vartime(2));
    // The base point's y is 4/5 and its x is even: its encoding is 0x58 then 31 times 0x66.
    let mut encoded = [0x66u8; 32];
    encoded[0] = 0x58;
    let base = ed_decode_with(&encoded, d, sqrt_m1).unwrap_or(EdPoint::IDENTITY);
    EdConstants { d, sqrt_m1, base }
});

/// Affine (x, y) on −x² + y² = 1 + d·x²·y².
#[derive(Clone, Copy, PartialEq, Eq)]
struct EdPoint {
    x: Fe,
    y: Fe,
}

impl EdPoint {
    const IDENTITY: EdPoint = EdPoint {
        x: Fe::ZERO,
        y: Fe::ONE,
    };
}

/// The complete twisted Edwards addition law (a = −1).
fn ed_add(p: EdPoint, q: EdPoint) -> EdPoint {
    let x1x2 = p.x * q.x;
    let y1y2 = p.y * q.y;
    let t = ED.d * x1x2 * y1y2;
    let denominator_x = Fe::ONE + t;
    let denominator_y = Fe::ONE - t;
    let inverse = (denominator_x * denominator_y).invert().0;
    EdPoint {
        x: (p.x * q.y + p.y * q.x) * denominator_y * inverse,
        y: (y1y2 + x1x2) * denominator_x * inverse,
    }
}

/// `a·p + b·q`.
fn ed_double_mul(a: &U256, p: EdPoint, b: &U256, q: EdPoint) -> EdPoint {
    let sum = ed_add(p, q);
    let mut acc = EdPoint::IDENTITY;
    for i in (0..256).rev() {
        acc = ed_add(acc, acc);
        match (a.bit_vartime(i), b.bit_vartime(i)) {
            (true, true) => acc = ed_add(acc, sum),
            (true, false) => acc = ed_add(acc, p),
            (false, true) => acc = ed_add(acc, q),
            (false, false) => {}
        }
    }
    acc
}

fn ed_decode_with(bytes: &[u8; 32], d: Fe, sqrt_m1: Fe) -> Option<EdPoint> {
    let negative = bytes[31] >> 7 == 1;
    let mut y_bytes = *bytes;
    y_bytes[31] &= 0x7f;
    let y = U256::from_le_bytes(y_bytes);
    if y >= ED_P {
        return None;
    }
    let y = Fe::new(&y);
    let y2 = y.square();
    let u = y2 - Fe::ONE;
    let v = d * y2 + Fe::ONE;
    // x = u·v³·(u·v⁷)^((p − 5) / 8), then fixed up by √−1 if needed.
    let v3 = v.square() * v;
    let exponent = ED_P.wrapping_sub(&U256::from_u8(5)).shr_vartime(3);
    let mut x = u * v3 * (u * v3.square() * v).pow(&exponent);
    let check = v * x.square();
    if check == -u {
        x *= sqrt_m1;
    } else if check != u {
        return None;
    }
    let x_is_odd = x.retrieve().bit_vartime(0);
    if x == Fe::ZERO && negative {
        return None;
    }
    if x_is_odd != negative {
        x = -x;
    }
    Some(EdPoint { x, y })
}

fn ed_encode(point: EdPoint) -> [u8; 32] {
    let mut bytes = point.y.retrieve().to_le_bytes();
    if point.x.retrieve().bit_vartime(0) {
        bytes[31] |= 0x80;
    }
    bytes
}

fn ed25519_verify(key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let constants = &*ED;
    let Some(a) = ed_decode_with(key, constants.d, constants.sqrt_m1) else {
        return false;
    };
    // A key of small order (8·A = identity) verifies forged signatures: libsodium refuses it.
    let a8 = ed_add(
        ed_add(ed_add(a, a), ed_add(a, a)),
        ed_add(ed_add(a, a), ed_add(a, a)),
    );
    if a8 == EdPoint::IDENTITY {
        return false;
    }
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&signature[32..]);
    let s = U256::from_le_bytes(s);
    if s >= ED_L {
        return false;
    }
    let digest: [u8; 64] = Sha512::new()
        .chain_update(r)
        .chain_update(key)
        .chain_update(message)
        .finalize()
        .into();
    let mut low = [0u8; 32];
    low.copy_from_slice(&digest[..32]);
    let mut high = [0u8; 32];
    high.copy_from_slice(&digest[32..]);
    // k = low + high·2^256 (mod L); 2^256 = (2^256 − 1) + 1.
    let two_256 = Sc::new(&U256::MAX) + Sc::ONE;
    let k = Sc::new(&U256::from_le_bytes(low)) + Sc::new(&U256::from_le_bytes(high)) * two_256;
    let minus_k = (-k).retrieve();
    let check = ed_double_mul(&s, constants.base, &minus_k, a);
    ed_encode(check) == r
}

// ---------------------------------------------------------------------------------------
// base58 (Bitcoin alphabet), for Solana addresses
// ---------------------------------------------------------------------------------------

const B58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Decodes base58; `None` on a character outside the alphabet, or on text longer than a
/// signature's (88 characters for 64 bytes): decoding is quadratic.
fn b58_decode(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() > 90 {
        return None;
    }
    // Little-endian base-256 digits of the number.
    let mut digits: Vec<u8> = Vec::with_capacity(48);
    for c in text.bytes() {
        let mut carry = B58_ALPHABET.iter().position(|&a| a == c)? as u32;
        for digit in digits.iter_mut() {
            carry += u32::from(*digit) * 58;
            *digit = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            digits.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = text.bytes().take_while(|&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(digits.iter().rev());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raleph_crypto::{Chain, EthSigner, SignedFields, SolSigner, verification_buffer};

    #[test]
    fn keccak_known_answers() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(
            hex::encode(keccak256(b"abc")),
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
        );
        // Exactly one block, and more than one, fed in pieces.
        let long = vec![b'a'; 300];
        let mut split = Keccak256::new();
        split.update(&long[..7]);
        split.update(&long[7..136]);
        split.update(&long[136..]);
        assert_eq!(split.finish(), keccak256(&long));
    }

    #[test]
    fn the_reference_documentation_example_recovers_its_address() {
        // aleph-vm doc/operator_auth.md: an X-SignedPubKey signed with eth_account.
        let payload = hex::decode(concat!(
            "7b227075626b6579223a207b22637276223a2022502d323536222c20226b7479223a20224543222c20",
            "2278223a20223962446f34754949686b735a5272677a31477972325050656d4334364e735f47305771",
            "44364d4d6a774673222c202279223a20226f48343342786c7854334f3065733336685967713143372d",
            "61325a535a71456d5f6b56356e636c79667a59227d2c2022616c67223a20224543445341222c202264",
            "6f6d61696e223a20226c6f63616c686f7374222c202261646472657373223a2022307862413236623135",
            "333539314434363230666432413734304130463165463730644164363532336230222c202265787069",
            "726573223a2022323031302d31322d32365431373a30353a35355a227d"
        ))
        .unwrap();
        let signature = hex::decode(concat!(
            "ea99ef5f1a10f2d103f94dce4f8650730315246e6d15cf9e5862c11adfd6482703cd1ec684a4f3dffb",
            "36ae5c4a57b08a47108fe55e3b2454e45f6e63342e0f471b"
        ))
        .unwrap();
        assert_eq!(
            eth_recover(&payload, &signature).as_deref(),
            Some("0xba26b153591d4620fd2a740a0f1ef70dad6523b0")
        );
        let mut other = payload.clone();
        other[3] ^= 1;
        assert_ne!(
            eth_recover(&other, &signature).as_deref(),
            Some("0xba26b153591d4620fd2a740a0f1ef70dad6523b0")
        );
        assert_eq!(eth_recover(&payload, &signature[..64]), None);
        let mut bad_v = signature.clone();
        bad_v[64] = 29;
        assert_eq!(eth_recover(&payload, &bad_v), None);
    }

    #[test]
    fn rfc8032_vectors() {
        let key: [u8; 32] =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap()
                .try_into()
                .unwrap();
        let signature: [u8; 64] = hex::decode(concat!(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6",
            "1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ))
        .unwrap()
        .try_into()
        .unwrap();
        assert!(ed25519_verify(&key, b"", &signature));
        assert!(!ed25519_verify(&key, b"x", &signature));
        let key2: [u8; 32] =
            hex::decode("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
                .unwrap()
                .try_into()
                .unwrap();
        let signature2: [u8; 64] = hex::decode(concat!(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e45",
            "8f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ))
        .unwrap()
        .try_into()
        .unwrap();
        assert!(ed25519_verify(&key2, &[0x72], &signature2));
        assert!(!ed25519_verify(&key, &[0x72], &signature2));
        // S + L verifies the same equation but is not canonical: refused.
        let s = U256::from_le_slice(&signature2[32..]).wrapping_add(&ED_L);
        let mut malleated = signature2;
        malleated[32..].copy_from_slice(&s.to_le_bytes());
        assert!(!ed25519_verify(&key2, &[0x72], &malleated));
        // The identity as a key is of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(!ed25519_verify(&identity, b"", &signature));
    }

    #[test]
    fn base58_round_trips_a_solana_address() {
        let signer = SolSigner::from_seed(&[9; 32]);
        let key = b58_decode(&signer.address()).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(b58_decode("11"), Some(vec![0, 0]));
        assert_eq!(b58_decode("0OIl"), None);
        assert_eq!(b58_decode(""), None);
    }

    fn sol_signature(signed: &str) -> Vec<u8> {
        let value: serde_json::Value = serde_json::from_str(signed).unwrap();
        b58_decode(value["signature"].as_str().unwrap()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever raleph-crypto's ETH signer signs, the recovery here finds its address.
        #[test]
        fn eth_recovery_agrees_with_the_secp256k1_library(
            secret in prop::array::uniform32(1u8..),
            item_hash in "[0-9a-f]{64}",
        ) {
            let signer = EthSigner::from_secret_bytes(&secret).unwrap();
            let address = signer.address();
            let fields = SignedFields {
                chain: Chain::Eth,
                sender: &address,
                message_type: "POST",
                item_hash: &item_hash,
                time: 0.0,
            };
            let signature = hex::decode(&signer.sign_message(&fields)[2..]).unwrap();
            let buffer = verification_buffer(&fields);
            let recovered = eth_recover(buffer.as_bytes(), &signature).unwrap();
            prop_assert!(recovered.eq_ignore_ascii_case(&address));
            let other = eth_recover(b"another message", &signature);
            prop_assert!(other.is_none_or(|o| !o.eq_ignore_ascii_case(&address)));
        }

        /// Whatever ed25519-dalek signs (through raleph-crypto's SOL signer) verifies here,
        /// and nothing else does.
        #[test]
        fn ed25519_agrees_with_dalek(seed in prop::array::uniform32(any::<u8>()), flip in 0usize..64) {
            let signer = SolSigner::from_seed(&seed);
            let address = signer.address();
            let fields = SignedFields {
                chain: Chain::Sol,
                sender: &address,
                message_type: "STORE",
                item_hash: "00ff",
                time: 0.0,
            };
            let signature = sol_signature(&signer.sign_message(&fields));
            let buffer = verification_buffer(&fields);
            prop_assert!(sol_verify(&address, buffer.as_bytes(), &signature));
            let mut tampered = signature.clone();
            tampered[flip] ^= 0x10;
            prop_assert!(!sol_verify(&address, buffer.as_bytes(), &tampered));
            prop_assert!(!sol_verify(&address, b"other", &signature));
        }
    }
}
