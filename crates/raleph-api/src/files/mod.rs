//! Files: uploads (streamed to disk while hashed), downloads (streamed, with ranges), JSON
//! documents, pin counts, per-address listings, and the IPFS-style gateway.
//!
//! One module per job: `upload` takes files in (multipart and raw bodies, JSON documents),
//! `download` hands their bytes out (raw with ranges, base64), `info` answers what is known of
//! them without their bytes, and `store_adapter` turns a file the store wrote into what the
//! pipeline and the index take, for this crate and the binary alike.

mod download;
mod info;
pub mod store_adapter;
mod upload;

pub use download::{base64_file, raw};
pub use info::{address_files, by_message, by_owner_ref, by_ref, limits, metadata, pin_count};
pub use upload::{ipfs_add_file, ipfs_add_json, storage_add_file, storage_add_json};

use axum::http::StatusCode;
use raleph_storage::StorageError;

use crate::error::{ApiError, ApiResult};

/// Which API an upload came through: it decides the limits and the identifier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Storage,
    Ipfs,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Storage => "storage",
            Engine::Ipfs => "ipfs",
        }
    }
}

fn storage_error(e: StorageError) -> ApiError {
    match e {
        StorageError::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the file is larger than the limit of {limit} bytes"),
        ),
        StorageError::BadHash(hash) => {
            ApiError::bad_request(format!("{hash:?} is not a file hash"))
        }
        other => ApiError::internal(other),
    }
}

fn checked_id(id: &str) -> ApiResult<()> {
    match raleph_storage::file_id_kind(id) {
        Some(_) => Ok(()),
        None => Err(ApiError::bad_request(format!("{id:?} is not a file hash"))),
    }
}
