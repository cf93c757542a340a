//! What a message rule answers: the message passes, the message fails (a [`Failure`], which
//! writes nothing), or the store fails (an error, which fails the whole transaction).

use raleph_db::{ErrorCode, Failure};
use serde_json::Value;

/// `Ok(Err(failure))`: the message fails; `Err(_)`: the store failed.
pub(crate) type Check = raleph_db::Result<Result<(), Failure>>;

pub(crate) fn fail(code: ErrorCode, error: impl Into<Value>) -> Check {
    Ok(Err(Failure::new(code, error)))
}

pub(crate) fn permission_denied() -> Check {
    fail(
        ErrorCode::PermissionDenied,
        "the sender may not act for this address",
    )
}
