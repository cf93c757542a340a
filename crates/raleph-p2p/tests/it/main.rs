//! Integration tests: real swarms on 127.0.0.1, port 0. No fixed sleeps: every wait polls a
//! condition with a deadline.

mod bare;
mod discovery;
mod flood;
mod gossip;
mod harness;
mod limits;
mod reference_like;
mod relay;
mod requests;
mod rsa_identity;
mod vectors;
