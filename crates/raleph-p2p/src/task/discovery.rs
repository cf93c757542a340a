//! ALIVE announcements, dialing, re-dialing and bans.

use libp2p::swarm::dial_opts::PeerCondition;

use super::*;
use crate::alive::{Announcement, PeerType, alive_payload, parse_announcement};

impl Task {
    /// Handles an ALIVE payload; well-formed announcements are forwarded, like the reference
    /// forwards every signed one.
    pub(crate) fn on_alive(&mut self, author: Option<PeerId>, data: &[u8]) -> MessageAcceptance {
        let Some(author) = author else {
            return MessageAcceptance::Ignore;
        };
        match parse_announcement(data, &author) {
            Ok(Announcement::P2p(addr)) => {
                self.remember_alive(author, addr.clone());
                if self.should_dial(&author) && self.config.dial_discovered {
                    self.dial_peer(author, addr);
                }
                MessageAcceptance::Accept
            }
            Ok(Announcement::Http(url)) => {
                self.emit_control(NetworkEvent::HttpPeer { peer: author, url });
                MessageAcceptance::Accept
            }
            Ok(Announcement::Other) => MessageAcceptance::Accept,
            Err(error) => {
                tracing::debug!(%author, %error, "p2p: unusable ALIVE payload");
                MessageAcceptance::Ignore
            }
        }
    }

    pub(crate) fn remember_alive(&mut self, peer: PeerId, addr: Multiaddr) {
        let now = Instant::now();
        if !self.known.contains_key(&peer) && self.known.len() >= self.config.max_known_peers {
            let oldest = self
                .known
                .iter()
                .min_by_key(|(_, k)| k.last_seen)
                .map(|(id, _)| *id);
            match oldest {
                Some(oldest) => {
                    self.known.remove(&oldest);
                }
                None => return, // max_known_peers is 0
            }
        }
        self.known.insert(
            peer,
            KnownPeer {
                addr,
                last_seen: now,
            },
        );
    }

    pub(crate) fn publish_alive(&mut self) {
        let version = self.config.version.clone();
        let mut payloads: Vec<Vec<u8>> = self
            .announced_addrs()
            .iter()
            .map(|a| alive_payload(&a.to_string(), PeerType::P2p, &version))
            .collect();
        if let Some(url) = &self.config.http_base_url {
            payloads.push(alive_payload(url, PeerType::Http, &version));
        }
        let topic = self.topics.alive.clone();
        for payload in payloads {
            // Duplicates (the same bytes within 30 min) and "no peers" are expected here.
            if let Err(error) = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), payload)
            {
                tracing::debug!(?error, "p2p: ALIVE not published");
            }
        }
    }

    pub(crate) fn should_dial(&self, peer: &PeerId) -> bool {
        *peer != self.local_peer_id
            && !self.peers.contains_key(peer)
            && !self.banned.contains_key(peer)
    }

    pub(crate) fn dial_peer(&mut self, peer: PeerId, addr: Multiaddr) {
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(error) = self.swarm.dial(opts) {
            tracing::debug!(%peer, %error, "p2p: cannot dial");
        }
    }

    /// Dials every configured peer, and every recently announced one, that is not connected.
    pub(crate) fn redial(&mut self) {
        for addr in self.config.peers.clone() {
            match peer_id_of(&addr) {
                Some(peer) => {
                    if self.should_dial(&peer) {
                        self.dial_peer(peer, addr);
                    }
                }
                None => {
                    let connected = self
                        .dialed
                        .get(&addr)
                        .is_some_and(|peer| self.peers.contains_key(peer));
                    if !connected && let Err(error) = self.swarm.dial(addr.clone()) {
                        tracing::debug!(%addr, %error, "p2p: cannot dial");
                    }
                }
            }
        }
        let ttl = secs(self.config.alive_peer_ttl_secs);
        let now = Instant::now();
        self.known
            .retain(|_, k| now.saturating_duration_since(k.last_seen) < ttl);
        if self.config.dial_discovered {
            let targets: Vec<_> = self
                .known
                .iter()
                .filter(|(id, _)| self.should_dial(id))
                .map(|(id, k)| (*id, k.addr.clone()))
                .collect();
            for (peer, addr) in targets {
                self.dial_peer(peer, addr);
            }
        }
    }

    pub(crate) fn ban(&mut self, peer: PeerId) {
        tracing::warn!(%peer, "p2p peer flooded past its limits: disconnecting and banning it");
        self.banned
            .insert(peer, Instant::now() + secs(self.config.ban_secs));
        // Closes its connections and refuses new ones until unblocked.
        self.swarm.behaviour_mut().blocked.block_peer(peer);
    }

    pub(crate) fn unban_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| *id)
            .collect();
        for peer in expired {
            self.banned.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }
}
