//! Raleph peers and `/raleph/1`: Hello on detection, inbound requests handed to the node.

use libp2p::request_response;

use super::*;
use crate::protocol::{HelloResponse, MAX_HELLO_ADDRS, RalephRequest};

impl Task {
    pub(crate) fn on_raleph_peer(&mut self, peer: PeerId) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.is_raleph = true;
        state.counters.requests_sent += 1;
        tracing::debug!(%peer, "p2p peer announced the raleph topic, saying hello");
        let id = self
            .swarm
            .behaviour_mut()
            .raleph
            .send_request(&peer, RalephRequest::Hello);
        self.pending_out.insert(id, Pending::Hello);
    }

    pub(crate) fn on_raleph(
        &mut self,
        event: request_response::Event<RalephRequest, RalephResponse>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_request(peer, request, channel),
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => match self.pending_out.remove(&request_id) {
                Some(Pending::Hello) => self.on_hello(peer, response),
                Some(Pending::Node(reply)) => {
                    let _ = reply.send(Ok(response));
                }
                None => {}
            },
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => match self.pending_out.remove(&request_id) {
                Some(Pending::Hello) => {
                    tracing::debug!(%peer, %error, "p2p hello failed");
                }
                Some(Pending::Node(reply)) => {
                    let _ = reply.send(Err(RequestError::Failed {
                        peer,
                        source: Box::new(error),
                    }));
                }
                None => {}
            },
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "p2p inbound request failed");
            }
            Event::ResponseSent { peer, .. } => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.counters.requests_served += 1;
                }
            }
        }
    }

    pub(crate) fn on_request(
        &mut self,
        peer: PeerId,
        request: RalephRequest,
        channel: ResponseChannel<RalephResponse>,
    ) {
        // Peers that never announced the raleph topic may still ask: speaking the protocol is
        // proof enough, and answering opens no stream of ours.
        if let Some(state) = self.peers.get_mut(&peer) {
            state.counters.requests_received += 1;
        }
        if request == RalephRequest::Hello {
            let hello = self.hello_response(&peer);
            self.respond(channel, peer, RalephResponse::Hello(hello));
            return;
        }
        let busy = || RalephResponse::Error {
            message: "busy".to_string(),
        };
        let pending_for_peer = self.inbound_per_peer.get(&peer).copied().unwrap_or(0);
        if self.inbound.len() >= self.config.max_pending_inbound
            || pending_for_peer >= self.config.max_pending_inbound_per_peer
        {
            self.respond(channel, peer, busy());
            return;
        }
        let (reply, answer) = oneshot::channel();
        if !self.emit_control(NetworkEvent::InboundRequest {
            peer,
            request,
            reply,
        }) {
            self.respond(channel, peer, busy());
            return;
        }
        *self.inbound_per_peer.entry(peer).or_default() += 1;
        let timeout = secs(self.config.request_timeout_secs);
        self.inbound.push(Box::pin(async move {
            let response = match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(_)) => RalephResponse::Error {
                    message: "the node did not answer".to_string(),
                },
                Err(_) => RalephResponse::Error {
                    message: "the node did not answer in time".to_string(),
                },
            };
            (channel, peer, response)
        }));
    }

    /// Sends the node's answer to an inbound request.
    pub(crate) fn answered(
        &mut self,
        channel: ResponseChannel<RalephResponse>,
        peer: PeerId,
        response: RalephResponse,
    ) {
        if let Some(pending) = self.inbound_per_peer.get_mut(&peer) {
            *pending = pending.saturating_sub(1);
            if *pending == 0 {
                self.inbound_per_peer.remove(&peer);
            }
        }
        self.respond(channel, peer, response);
    }

    pub(crate) fn respond(
        &mut self,
        channel: ResponseChannel<RalephResponse>,
        peer: PeerId,
        response: RalephResponse,
    ) {
        let size = response.encoded_len();
        let response = if size > self.config.max_response_bytes {
            tracing::warn!(%peer, size, "p2p: refusing to send an oversize response");
            RalephResponse::Error {
                message: format!(
                    "response of {size} bytes exceeds the limit of {} bytes",
                    self.config.max_response_bytes
                ),
            }
        } else {
            response
        };
        // Fails only when the requester is gone or timed out; nothing to do then.
        let _ = self
            .swarm
            .behaviour_mut()
            .raleph
            .send_response(channel, response);
    }

    pub(crate) fn hello_response(&self, requester: &PeerId) -> HelloResponse {
        // Loopback addresses are only useful to a peer on this machine; to anyone else they
        // would name the wrong host.
        let requester_is_local = self
            .peers
            .get(requester)
            .is_some_and(|p| p.connections.values().any(is_loopback));
        let usable = |a: &Multiaddr| requester_is_local || !is_loopback(a);
        let from_raleph = self
            .peers
            .iter()
            .filter(|(id, state)| *id != requester && state.is_raleph)
            .filter_map(|(_, state)| state.hello.as_ref())
            .flat_map(|hello| hello.listen_addrs.iter().take(4).cloned());
        let from_alive = self
            .known
            .iter()
            .filter(|(id, _)| *id != requester)
            .map(|(_, k)| k.addr.clone());
        let mut listen_addrs = self.announced_addrs();
        listen_addrs.retain(usable);
        HelloResponse {
            http_base_url: self.config.http_base_url.clone(),
            listen_addrs,
            known_peers: from_raleph
                .chain(from_alive)
                .filter(usable)
                .take(MAX_HELLO_ADDRS)
                .collect(),
            node_version: self.config.version.clone(),
        }
    }

    pub(crate) fn on_hello(&mut self, peer: PeerId, response: RalephResponse) {
        let RalephResponse::Hello(mut hello) = response else {
            tracing::debug!(%peer, "p2p: unexpected answer to hello");
            return;
        };
        hello.listen_addrs.truncate(MAX_HELLO_ADDRS);
        hello.known_peers.truncate(MAX_HELLO_ADDRS);
        // A peer speaks only for itself: keep the addresses that name it (or no one).
        hello
            .listen_addrs
            .retain(|a| peer_id_of(a).is_none_or(|id| id == peer));
        for addr in &hello.listen_addrs {
            self.swarm.add_peer_address(peer, addr.clone());
        }
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.is_raleph = true;
        state.hello = Some(hello.clone());
        self.emit_control(NetworkEvent::PeerIdentified {
            peer,
            is_raleph: true,
            http_base_url: hello.http_base_url,
            listen_addrs: hello.listen_addrs,
            node_version: hello.node_version,
        });
        if self.config.dial_discovered {
            for addr in hello.known_peers {
                if let Some(id) = peer_id_of(&addr)
                    && self.should_dial(&id)
                {
                    self.dial_peer(id, addr);
                }
            }
        }
    }

    /// Our own addresses as others should dial them, ending in `/p2p/<our id>`.
    pub(crate) fn announced_addrs(&self) -> Vec<Multiaddr> {
        let addrs = if self.config.announce_addrs.is_empty() {
            &self.listen_addrs
        } else {
            &self.config.announce_addrs
        };
        addrs
            .iter()
            .filter(|a| !is_unspecified(a))
            .map(|a| with_peer_id(a.clone(), self.local_peer_id))
            .collect()
    }
}
