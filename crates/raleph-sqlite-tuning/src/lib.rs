//! The unsafe parts of raleph's SQLite tuning, in a crate of their own so that `raleph-db`
//! can forbid unsafe code (a module could only allow what its crate denies):
//!
//! - [`page_cache`]: SQLite's default page cache, with truncations that can drop nothing
//!   skipped (registered once per process);
//! - [`wal_batch`]: a VFS that keeps WAL appends in memory and writes them with one system
//!   call per commit;
//! - [`Resident`]: the index file's pages kept in memory (mmap and mlock), as the file grows.
//!
//! Each module says why its unsafe code is sound.

#![allow(unsafe_code)]
pub mod page_cache;
mod resident;
pub mod wal_batch;

pub use resident::Resident;
