//! The API's routes, in Rust: requests go through the real router (in-process) over a real
//! SQLite store and pipeline, with messages signed as the SDK signs them; each test asserts
//! the status codes and the JSON shapes the reference node answers with
//! (`shared/spec/protocol.md` §6), and the values of what it posted. The Python suite
//! (tests/compat) checks the same routes through the published SDK and CLI.
//!
//! One module per route family.

mod aggregates;
mod confirmations;
mod errors;
mod files;
mod messages;
mod misc;
mod posts;
mod reads;
mod status;
mod support;
