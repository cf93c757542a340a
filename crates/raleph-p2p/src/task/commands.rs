//! Commands from [`NetworkHandle`](crate::NetworkHandle)s.

use super::*;

impl Task {
    pub(crate) fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let size = data.len();
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic), data)
                    .map_err(|e| match e {
                        gossipsub::PublishError::Duplicate => PublishError::Duplicate,
                        gossipsub::PublishError::NoPeersSubscribedToTopic => {
                            PublishError::InsufficientPeers
                        }
                        gossipsub::PublishError::MessageTooLarge => PublishError::TooLarge {
                            size,
                            limit: MAX_TRANSMIT_SIZE,
                        },
                        other => PublishError::Failed(Box::new(other)),
                    });
                let _ = reply.send(result);
            }
            Command::ReportValidation {
                id,
                source,
                author,
                validation,
            } => {
                let now = std::time::Instant::now();
                let relayed_for = author.filter(|a| *a != source);
                let acceptance = match (validation, relayed_for) {
                    (Validation::Accept, _) => {
                        if let Some(state) = self.peers.get_mut(&source) {
                            state.counters.messages_accepted += 1;
                        }
                        MessageAcceptance::Accept
                    }
                    (Validation::Ignore, _) => {
                        if let Some(state) = self.peers.get_mut(&source) {
                            state.counters.messages_ignored += 1;
                        }
                        MessageAcceptance::Ignore
                    }
                    (Validation::Reject, None) => {
                        if let Some(state) = self.peers.get_mut(&source) {
                            state.rejected(&self.limits, now);
                        }
                        MessageAcceptance::Reject
                    }
                    // Relayed for another author, as reference nodes relay everything: the
                    // author is to blame. Not forwarded, and gossipsub holds nothing against
                    // the relaying peer.
                    (Validation::Reject, Some(author)) => {
                        if let Some(state) = self.peers.get_mut(&source) {
                            state.relayed_rejected();
                        }
                        self.author_rejected(author, now);
                        MessageAcceptance::Ignore
                    }
                };
                self.report(&id, &source, acceptance);
            }
            Command::ConnectedPeers { reply } => {
                let now = std::time::Instant::now();
                let peers = self
                    .peers
                    .iter()
                    .map(|(id, state)| state.info(*id, &self.limits, now))
                    .collect::<Vec<PeerInfo>>();
                let _ = reply.send(peers);
            }
            Command::Dial { addr, reply } => {
                let result = match peer_id_of(&addr) {
                    Some(peer) if self.banned.contains_key(&peer) => Err(DialError::Banned(peer)),
                    // With the peer id in the dial options, a different peer answering
                    // fails the dial (p2p.md §1.1).
                    Some(peer) => self
                        .swarm
                        .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build())
                        .map_err(|e| DialError::Failed(Box::new(e))),
                    None => self
                        .swarm
                        .dial(addr)
                        .map_err(|e| DialError::Failed(Box::new(e))),
                };
                let _ = reply.send(result);
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let Some(state) = self.peers.get_mut(&peer).filter(|s| s.is_raleph) else {
                    let _ = reply.send(Err(RequestError::NotRaleph(peer)));
                    return;
                };
                state.counters.requests_sent += 1;
                let id = self
                    .swarm
                    .behaviour_mut()
                    .raleph
                    .send_request(&peer, request);
                self.pending_out.insert(id, Pending::Node(reply));
            }
        }
    }
}
