//! The compute node API the published CLI uses for programs: executions, allocation notices,
//! and owner-signed control of a program (logs, stop, reboot).

use axum::Router;

use crate::Compute;

/// Routes under `/about` and `/control`.
pub fn router(compute: Compute) -> Router {
    Router::new().with_state(compute)
}
