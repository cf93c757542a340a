//! A FORGET processed here: the reference's rule (pyaleph's
//! `ForgetMessageHandler.check_permissions`), checked in full before anything is forgotten.

use raleph_db::{ErrorCode, MessageStatus, WriteStore};
use raleph_message::{Envelope, ItemHash, MessageType};
use serde_json::json;

use super::{Forget, may_forget};
use crate::authorize::{Action, is_authorized};
use crate::context::Context;
use crate::rule::{Check, fail, permission_denied};

/// What FORGET does to one target.
enum Target {
    Forget(ItemHash),
    AlreadyForgotten(ItemHash),
}

/// Applies a FORGET: checks every target, then forgets the live ones (with the amends of a
/// forgotten post), and adds itself to those already forgotten.
pub(crate) fn apply_forget(
    store: &mut dyn WriteStore,
    ctx: &Context<'_>,
    env: &Envelope,
    forget: &Forget<'_>,
) -> Check {
    let address = forget.address;
    let mut hashes: Vec<ItemHash> = forget.content.hashes.clone();
    let mut found_forgotten_elements = false;
    for key in &forget.content.aggregates {
        let elements = store.aggregate_element_hashes(address, key)?;
        if elements.is_empty() {
            // A node that synced after the elements were forgotten elsewhere holds only
            // their skeletons, recorded as forgotten by this very FORGET.
            found_forgotten_elements =
                found_forgotten_elements || store.forgot_aggregates_of(address, &env.item_hash)?;
            if !found_forgotten_elements {
                return fail(ErrorCode::ForgetTargetNotFound, json!({"aggregate": key}));
            }
        }
        hashes.extend(elements);
    }
    if hashes.is_empty() && !found_forgotten_elements {
        return fail(
            ErrorCode::ForgetNoTarget,
            "a FORGET must name hashes or aggregates",
        );
    }
    // Check every target before changing anything, in the reference's order: the targets
    // exist (a retry otherwise), then the FORGET itself may be sent for `content.address`,
    // then each live target was sent by the FORGET's own sender.
    let mut targets = Vec::new();
    let mut live = Vec::new();
    for hash in hashes {
        match store.status(&hash)? {
            None | Some(MessageStatus::Pending) => {
                return fail(ErrorCode::ForgetTargetNotFound, json!({"message": hash}));
            }
            Some(MessageStatus::Forgotten) => targets.push(Target::AlreadyForgotten(hash)),
            Some(MessageStatus::Rejected | MessageStatus::Removed) => {}
            Some(MessageStatus::Processed | MessageStatus::Removing) => {
                let Some(facts) = store.message_facts(&hash)? else {
                    return fail(ErrorCode::ForgetTargetNotFound, json!({"message": hash}));
                };
                if facts.envelope.message_type == MessageType::Store
                    && store.store_used_by_vm(hash.as_str())?
                {
                    return fail(
                        ErrorCode::ForgetNotAllowed,
                        json!({"message": hash, "reason": "used by a program"}),
                    );
                }
                live.push((hash, facts));
            }
        }
    }
    if !is_authorized(store, &Action::of(env, address))? {
        return permission_denied();
    }
    for (hash, facts) in live {
        if facts.envelope.message_type == MessageType::Forget {
            return fail(ErrorCode::ForgetForget, json!({"message": hash}));
        }
        if !may_forget(&env.sender, &facts.envelope.sender) {
            return fail(
                ErrorCode::PermissionDenied,
                json!({"message": hash, "reason": "it belongs to another user"}),
            );
        }
        targets.push(Target::Forget(hash));
    }
    let by = &env.item_hash;
    let (now, grace_until) = (ctx.now, ctx.grace_until());
    for target in targets {
        match target {
            Target::AlreadyForgotten(hash) => store.append_forgotten_by(&hash, by)?,
            Target::Forget(hash) => {
                // Forgetting an original post forgets its amends with it.
                for amend in store.amends_of(&hash)? {
                    if store.status(&amend)?.is_some_and(MessageStatus::is_live) {
                        store.forget(&amend, by, now, grace_until)?;
                    }
                }
                if store.status(&hash)?.is_some_and(MessageStatus::is_live) {
                    store.forget(&hash, by, now, grace_until)?;
                }
            }
        }
    }
    Ok(Ok(()))
}
