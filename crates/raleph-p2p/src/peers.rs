//! Per-peer bookkeeping: counters shown to the node, and the flood guard.
//!
//! The guard decides, for each gossip message, whether to hand it to the node, and whom to hold
//! it against: its signed author when the author is known and is not the peer that relayed it
//! (reference nodes forward gossip unchecked, so an honest neighbour relays other people's junk),
//! else the relaying peer.
//!
//! A sender, peer or author, has a [`Guard`]: a token bucket (`flood_burst`, refilled at
//! `flood_rate_per_sec`) and a reject window: a sender whose messages the node rejected more than
//! `max_rejects` times within `reject_window_secs` is penalised for the rest of that window. A
//! connected peer's guard judges what it authored, whoever relays it; the authors of relayed
//! messages who are not connected have theirs in [`Authors`], a bounded map
//! (`max_tracked_authors`). Messages of a throttled or penalised sender are ignored (not
//! delivered, not forwarded).
//!
//! Only a peer's own messages (authored by it, or unsigned) can get it banned: once
//! `ignored_before_ban` of them are ignored within a window, it is disconnected and banned for
//! `ban_secs`. Every message a peer sends, its own or relayed, also takes a token from its
//! `total` bucket, which bounds what it can make this node process; relayed messages past it are
//! ignored, and never held against it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use crate::config::{P2pConfig, secs};
use crate::protocol::HelloResponse;

/// Traffic counters of one peer, since its current connection(s) opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerCounters {
    /// Gossip messages received with this peer as propagation source, on any topic.
    pub messages_received: u64,
    /// Data bytes of those messages.
    pub bytes_received: u64,
    /// Messages the node (or the swarm, for ALIVE) accepted.
    pub messages_accepted: u64,
    /// Messages of its own (authored by it, or unsigned) the node rejected as invalid: held
    /// against this peer.
    pub messages_rejected: u64,
    /// Messages authored by another peer and relayed by this one that the node rejected as
    /// invalid: held against their author, not against this peer.
    pub messages_relayed_rejected: u64,
    /// Messages the node reported as ignored.
    pub messages_ignored: u64,
    /// Messages not delivered because this peer exceeded its rate or its reject allowance.
    pub messages_throttled: u64,
    /// Messages relayed by this peer and not delivered because their author exceeded its rate or
    /// its reject allowance (or is banned): not held against this peer.
    pub messages_author_throttled: u64,
    /// Messages not delivered because the node's event queue was full.
    pub messages_dropped: u64,
    /// `/raleph/1` requests this peer sent us.
    pub requests_received: u64,
    /// `/raleph/1` requests we answered.
    pub requests_served: u64,
    /// `/raleph/1` requests we sent it.
    pub requests_sent: u64,
}

/// What the swarm knows of a connected peer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// Remote addresses of the open connections.
    pub addresses: Vec<Multiaddr>,
    /// Open connections (reference nodes re-dial every 60 s, so several are normal).
    pub connections: usize,
    /// Whether the peer announced the raleph topic.
    pub is_raleph: bool,
    /// From its Hello answer, once received.
    pub http_base_url: Option<String>,
    pub listen_addrs: Vec<Multiaddr>,
    pub node_version: Option<String>,
    /// Whether its own messages are currently ignored (rate exceeded or too many rejects). The
    /// messages it relays for others are judged by their authors' limits.
    pub throttled: bool,
    pub counters: PeerCounters,
}

/// The guard's verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Deliver,
    Ignore,
    Ban,
}

/// Flood guard limits, from the config.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    burst: f64,
    rate_per_sec: f64,
    max_rejects: u32,
    window: Duration,
    ignored_before_ban: u32,
}

impl Limits {
    pub(crate) fn from_config(config: &P2pConfig) -> Self {
        Limits {
            burst: f64::from(config.flood_burst),
            rate_per_sec: config.flood_rate_per_sec.max(0.0),
            max_rejects: config.max_rejects,
            window: secs(config.reject_window_secs),
            ignored_before_ban: config.ignored_before_ban,
        }
    }
}

/// A token bucket of `burst` tokens, refilled at `rate_per_sec`.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last_refill: Instant,
}

impl Bucket {
    fn new(limits: &Limits, now: Instant) -> Self {
        Bucket {
            tokens: limits.burst,
            last_refill: now,
        }
    }

    fn tokens_at(&self, limits: &Limits, now: Instant) -> f64 {
        let elapsed = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        (self.tokens + elapsed * limits.rate_per_sec).min(limits.burst)
    }

    /// Takes a token if there is one.
    fn take(&mut self, limits: &Limits, now: Instant) -> bool {
        self.tokens = self.tokens_at(limits, now);
        self.last_refill = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The flood guard of one sender (a peer's own messages, or an author's whoever relays them):
/// its rate, and its rejects within the current window.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    bucket: Bucket,
    window_start: Instant,
    rejects_in_window: u32,
    ignored_in_window: u32,
    penalised_until: Option<Instant>,
}

impl Guard {
    pub(crate) fn new(limits: &Limits, now: Instant) -> Self {
        Guard {
            bucket: Bucket::new(limits, now),
            window_start: now,
            rejects_in_window: 0,
            ignored_in_window: 0,
            penalised_until: None,
        }
    }

    fn roll_window(&mut self, limits: &Limits, now: Instant) {
        if now.saturating_duration_since(self.window_start) >= limits.window {
            self.window_start = now;
            self.rejects_in_window = 0;
            self.ignored_in_window = 0;
        }
    }

    fn penalised(&self, now: Instant) -> bool {
        self.penalised_until.is_some_and(|until| now < until)
    }

    /// Whether a message of this sender may be delivered now; if so it takes a token.
    fn take(&mut self, limits: &Limits, now: Instant) -> bool {
        self.roll_window(limits, now);
        !self.penalised(now) && self.bucket.take(limits, now)
    }

    /// Counts one of its messages ignored; true once more than `ignored_before_ban` were within
    /// the window.
    fn ignored(&mut self, limits: &Limits) -> bool {
        self.ignored_in_window += 1;
        self.ignored_in_window > limits.ignored_before_ban
    }

    /// Counts one of its messages the node rejected; more than `max_rejects` within the window
    /// penalise the sender until the window ends.
    pub(crate) fn rejected(&mut self, limits: &Limits, now: Instant) {
        self.roll_window(limits, now);
        self.rejects_in_window += 1;
        if self.rejects_in_window > limits.max_rejects {
            self.penalised_until = Some(self.window_start + limits.window);
        }
    }

    /// Ignores its messages until `until` at least (a banned peer's, relayed by others).
    pub(crate) fn penalise_until(&mut self, until: Instant) {
        self.penalised_until = Some(self.penalised_until.map_or(until, |u| u.max(until)));
    }

    /// Whether its messages are ignored now.
    fn throttled(&self, limits: &Limits, now: Instant) -> bool {
        self.penalised(now) || self.bucket.tokens_at(limits, now) < 1.0
    }

    /// Whether forgetting it loses nothing that matters: its window is over and it is not
    /// penalised.
    fn expired(&self, limits: &Limits, now: Instant) -> bool {
        !self.penalised(now) && now.saturating_duration_since(self.window_start) >= limits.window
    }
}

/// The guards of the authors of relayed messages who are not connected peers. Bounded: when
/// full, guards whose window is over are forgotten (looked for at most once a second), and if
/// none is, new authors are not tracked (their messages are bounded by their relayers' buckets
/// only).
#[derive(Debug)]
pub(crate) struct Authors {
    guards: HashMap<PeerId, Guard>,
    max: usize,
    last_sweep: Option<Instant>,
}

/// How often a full [`Authors`] map looks for expired guards.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Authors {
    pub(crate) fn new(max: usize) -> Self {
        Authors {
            guards: HashMap::new(),
            max,
            last_sweep: None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.guards.len()
    }

    /// Whether one more guard fits, after forgetting expired ones if full.
    fn make_room(&mut self, limits: &Limits, now: Instant) -> bool {
        if self.guards.len() < self.max {
            return true;
        }
        if self
            .last_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return false;
        }
        self.last_sweep = Some(now);
        self.guards.retain(|_, guard| !guard.expired(limits, now));
        self.guards.len() < self.max
    }

    /// The guard of `author`, which starts being tracked if there is room.
    pub(crate) fn get_or_track(
        &mut self,
        author: PeerId,
        limits: &Limits,
        now: Instant,
    ) -> Option<&mut Guard> {
        if !self.guards.contains_key(&author) && !self.make_room(limits, now) {
            return None;
        }
        Some(
            self.guards
                .entry(author)
                .or_insert_with(|| Guard::new(limits, now)),
        )
    }

    /// Keeps the guard of a peer that disconnected while it still matters (and there is room).
    pub(crate) fn keep(&mut self, peer: PeerId, guard: Guard, limits: &Limits, now: Instant) {
        if !guard.expired(limits, now)
            && (self.guards.contains_key(&peer) || self.make_room(limits, now))
        {
            self.guards.insert(peer, guard);
        }
    }

    /// The guard of an author that connected: from now on its peer state holds it.
    pub(crate) fn take(&mut self, peer: &PeerId) -> Option<Guard> {
        self.guards.remove(peer)
    }
}

/// One connected peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) connections: HashMap<libp2p::swarm::ConnectionId, Multiaddr>,
    pub(crate) is_raleph: bool,
    pub(crate) hello: Option<HelloResponse>,
    pub(crate) counters: PeerCounters,
    /// What it authored (or sent unsigned), whoever relays it.
    pub(crate) own: Guard,
    /// Every message it sends us, its own and relayed ones.
    total: Bucket,
}

impl Peer {
    /// A newly connected peer, with the guard it had as an author if it is still tracked.
    pub(crate) fn new(own: Option<Guard>, limits: &Limits, now: Instant) -> Self {
        Peer {
            connections: HashMap::new(),
            is_raleph: false,
            hello: None,
            counters: PeerCounters::default(),
            own: own.unwrap_or_else(|| Guard::new(limits, now)),
            total: Bucket::new(limits, now),
        }
    }

    fn count(&mut self, len: usize) {
        self.counters.messages_received += 1;
        self.counters.bytes_received += len as u64;
    }

    /// Counts a received message of `len` bytes that this peer authored (or an unsigned one) and
    /// decides what to do with it.
    pub(crate) fn admit(&mut self, len: usize, limits: &Limits, now: Instant) -> Admit {
        self.count(len);
        if !self.own.take(limits, now) {
            self.counters.messages_throttled += 1;
            return if self.own.ignored(limits) {
                Admit::Ban
            } else {
                Admit::Ignore
            };
        }
        if self.total.take(limits, now) {
            Admit::Deliver
        } else {
            // What it relayed used up its share: ignored, but not its fault.
            self.counters.messages_throttled += 1;
            Admit::Ignore
        }
    }

    /// Counts a received message of `len` bytes that this peer relays for another author, and
    /// decides what to do with it. `author` is the author's guard (`None`: not tracked). Never
    /// a ban: nothing here is this peer's own doing.
    pub(crate) fn admit_relayed(
        &mut self,
        len: usize,
        author: Option<&mut Guard>,
        limits: &Limits,
        now: Instant,
    ) -> Admit {
        self.count(len);
        if self.own.penalised(now) {
            // Penalised for its own junk: everything it sends is ignored for a while.
            self.counters.messages_throttled += 1;
            return Admit::Ignore;
        }
        if author
            .as_ref()
            .is_some_and(|author| author.throttled(limits, now))
        {
            self.counters.messages_author_throttled += 1;
            return Admit::Ignore;
        }
        if !self.total.take(limits, now) {
            self.counters.messages_throttled += 1;
            return Admit::Ignore;
        }
        // Charged to the author only once it is delivered.
        if let Some(author) = author {
            author.take(limits, now);
        }
        Admit::Deliver
    }

    /// Counts one of its own messages the node rejected; too many in a window penalise it.
    pub(crate) fn rejected(&mut self, limits: &Limits, now: Instant) {
        self.counters.messages_rejected += 1;
        self.own.rejected(limits, now);
    }

    /// Counts a message it relayed for another author that the node rejected (the author's
    /// guard takes the blame).
    pub(crate) fn relayed_rejected(&mut self) {
        self.counters.messages_relayed_rejected += 1;
    }

    pub(crate) fn info(&self, peer_id: PeerId, limits: &Limits, now: Instant) -> PeerInfo {
        let hello = self.hello.as_ref();
        PeerInfo {
            peer_id,
            addresses: self.connections.values().cloned().collect(),
            connections: self.connections.len(),
            is_raleph: self.is_raleph,
            http_base_url: hello.and_then(|h| h.http_base_url.clone()),
            listen_addrs: hello.map(|h| h.listen_addrs.clone()).unwrap_or_default(),
            node_version: hello.map(|h| h.node_version.clone()),
            throttled: self.own.throttled(limits, now),
            counters: self.counters.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            burst: 3.0,
            rate_per_sec: 1.0,
            max_rejects: 2,
            window: Duration::from_secs(60),
            ignored_before_ban: 4,
        }
    }

    #[test]
    fn bucket_throttles_then_bans_then_refills() {
        let l = limits();
        let t0 = Instant::now();
        let mut p = Peer::new(None, &l, t0);
        let verdicts: Vec<_> = (0..8).map(|_| p.admit(10, &l, t0)).collect();
        use Admit::*;
        assert_eq!(
            verdicts,
            [
                Deliver, Deliver, Deliver, Ignore, Ignore, Ignore, Ignore, Ban
            ]
        );
        assert_eq!(p.counters.messages_throttled, 5);
        assert_eq!(p.counters.bytes_received, 80);
        // Two seconds later two tokens are back.
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(p.admit(1, &l, t2), Deliver);
        assert_eq!(p.admit(1, &l, t2), Deliver);
    }

    #[test]
    fn too_many_rejects_penalise_until_the_window_ends() {
        let l = limits();
        let t0 = Instant::now();
        let mut p = Peer::new(None, &l, t0);
        for _ in 0..3 {
            p.rejected(&l, t0);
        }
        assert_eq!(p.admit(1, &l, t0), Admit::Ignore);
        assert!(p.info(PeerId::random(), &l, t0).throttled);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(p.admit(1, &l, later), Admit::Deliver);
    }

    #[test]
    fn relayed_junk_is_held_against_its_author_not_the_relayer() {
        let l = limits();
        let t0 = Instant::now();
        let mut relay = Peer::new(None, &l, t0);
        let mut author = Guard::new(&l, t0);
        use Admit::*;
        // Delivered, then rejected: the author is penalised after `max_rejects`.
        for _ in 0..3 {
            assert_eq!(relay.admit_relayed(1, Some(&mut author), &l, t0), Deliver);
            relay.relayed_rejected();
            author.rejected(&l, t0);
        }
        // The author's further messages are ignored without costing the relayer anything.
        for _ in 0..10 {
            assert_eq!(relay.admit_relayed(1, Some(&mut author), &l, t0), Ignore);
        }
        assert_eq!(relay.counters.messages_relayed_rejected, 3);
        assert_eq!(relay.counters.messages_rejected, 0);
        assert_eq!(relay.counters.messages_author_throttled, 10);
        assert_eq!(relay.counters.messages_throttled, 0);
        assert!(!relay.info(PeerId::random(), &l, t0).throttled);
        // A second later its own messages get through: the relayed ones used none of its own
        // tokens, and one token of its total is back.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(relay.admit(1, &l, t1), Deliver);
        // Its total bucket is empty again: relayed excess is ignored, never a ban, however
        // much of it comes.
        let mut other = Guard::new(&l, t0);
        for _ in 0..20 {
            assert_eq!(relay.admit_relayed(1, Some(&mut other), &l, t1), Ignore);
        }
        assert_eq!(relay.counters.messages_throttled, 20);
        assert!(!relay.info(PeerId::random(), &l, t1).throttled);
    }

    #[test]
    fn relayed_traffic_does_not_get_a_peer_banned_for_its_own_messages() {
        let l = limits();
        let t0 = Instant::now();
        let mut relay = Peer::new(None, &l, t0);
        for _ in 0..3 {
            assert_eq!(relay.admit_relayed(1, None, &l, t0), Admit::Deliver);
        }
        // The total is used up by relays: its own messages are ignored but do not count
        // towards a ban.
        for _ in 0..3 {
            assert_eq!(relay.admit(1, &l, t0), Admit::Ignore);
        }
        // Only once its own rate is exceeded too (3 tokens taken above) does the count start.
        let verdicts: Vec<_> = (0..5).map(|_| relay.admit(1, &l, t0)).collect();
        assert_eq!(verdicts.last(), Some(&Admit::Ban), "{verdicts:?}");
    }

    #[test]
    fn authors_are_bounded_and_expired_ones_make_room() {
        let l = limits();
        let t0 = Instant::now();
        let mut authors = Authors::new(2);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert!(authors.get_or_track(a, &l, t0).is_some());
        assert!(authors.get_or_track(b, &l, t0).is_some());
        // Full, nothing expired: the new author is not tracked, known ones still are.
        assert!(authors.get_or_track(c, &l, t0).is_none());
        assert!(authors.get_or_track(a, &l, t0).is_some());
        assert_eq!(authors.len(), 2);
        // A penalised author outlives its window's end only while penalised.
        let t1 = t0 + Duration::from_secs(30);
        authors
            .get_or_track(a, &l, t1)
            .unwrap()
            .penalise_until(t1 + Duration::from_secs(120));
        let t2 = t0 + Duration::from_secs(61);
        assert!(authors.get_or_track(c, &l, t2).is_some());
        assert_eq!(authors.len(), 2, "b expired and made room for c");
        assert!(authors.take(&a).is_some_and(|g| g.penalised(t2)));
        assert!(authors.take(&b).is_none());
    }
}
