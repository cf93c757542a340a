//! Applying a verified message by type: the rules of POST, AGGREGATE, STORE, PROGRAM,
//! INSTANCE and FORGET.
//!
//! Every handler checks first and writes last: a message that fails (`Applied::Failed`)
//! has written nothing, so the writer applies a batch without a savepoint per message. A store
//! error (`Err`) fails the whole transaction instead.

use raleph_db::{
    ErrorCode, Failure, MessageRecord, MessageStatus, NewAggregateElement, NewFilePin, NewMessage,
    NewPost, NewVm, WriteStore,
};
use raleph_message::content::{
    AggregateContent, ExecutableContent, ForgetContent, PostContent, StoreContent,
};
use raleph_message::{Content, Envelope, ItemHash, TypedContent};
use serde_json::{Value, json};

use crate::authorize::{Action, is_authorized, may_forget};
use crate::prepare::Prepared;
use crate::writer::{Writer, record_of};

pub(crate) enum Applied {
    Processed(MessageRecord),
    Failed(Failure),
}

/// `Ok(Err(failure))`: the message fails; `Err(_)`: the store failed.
type Check = raleph_db::Result<Result<(), Failure>>;

/// Aggregates of this owner are ignored, as the reference ignores them.
const IGNORED_AGGREGATE_OWNER: &str = "0x51A58800b26AA1451aaA803d1746687cB88E0501";

fn fail(code: ErrorCode, error: impl Into<Value>) -> Check {
    Ok(Err(Failure::new(code, error)))
}

pub(crate) fn process_message(
    w: &mut Writer,
    env: &Envelope,
    reception_time: f64,
    prepared: Option<&Prepared>,
) -> raleph_db::Result<Applied> {
    let loaded;
    let parsed;
    // The content file a non-inline message pins from now on, recorded once it is processed
    // (so the garbage collector knows the file).
    let mut content_file = None;
    let content: &Content = match (prepared, &env.item_content) {
        // Parsed by a checker already (see `prepare`).
        (Some(prepared), _) => {
            content_file = prepared.file.clone();
            match &prepared.content {
                Ok(content) => content,
                Err(e) => return Ok(failed(ErrorCode::InvalidFormat, e.clone())),
            }
        }
        (None, Some(inline)) => {
            parsed = Content::of_message(env, inline.as_bytes());
            match &parsed {
                Ok(content) => content,
                Err(e) => return Ok(failed(ErrorCode::InvalidFormat, e.to_string())),
            }
        }
        (None, None) => match stored_content(w, env) {
            Ok((bytes, file)) => {
                content_file = Some(file);
                loaded = Content::of_message(env, &bytes);
                match &loaded {
                    Ok(content) => content,
                    Err(e) => return Ok(failed(ErrorCode::InvalidFormat, e.to_string())),
                }
            }
            Err(failure) => return Ok(Applied::Failed(failure)),
        },
    };
    let size = match (&env.item_content, &content_file) {
        (Some(inline), _) => inline.chars().count() as u64,
        (None, Some(file)) => file.size,
        (None, None) => 0,
    };
    if let Err(failure) = w.payments.check(env, content) {
        return Ok(Applied::Failed(failure));
    }
    let grace_until = crate::now() + w.config.file_grace_period_secs;
    let max_aggregate_bytes = w.config.max_aggregate_bytes;
    let provided = &w.config.provided_runtimes;
    let store = w.store.as_mut();
    let checked = match &content.typed {
        TypedContent::Post(post) => apply_post(store, env, content, post)?,
        TypedContent::Aggregate(aggregate) => {
            apply_aggregate(store, env, content, aggregate, max_aggregate_bytes)?
        }
        TypedContent::Store(file) => apply_store(w, env, content, file)?,
        TypedContent::Program(vm) => apply_vm(store, env, content, vm, "program", provided)?,
        TypedContent::Instance(vm) => apply_vm(store, env, content, vm, "instance", provided)?,
        TypedContent::Forget(forget) => apply_forget(store, env, content, forget, grace_until)?,
    };
    if let Err(failure) = checked {
        return Ok(Applied::Failed(failure));
    }
    if let Some(file) = &content_file {
        w.store.record_file(file, None)?;
    }
    let message = NewMessage {
        item_hash: env.item_hash.to_string(),
        message_type: env.message_type.to_string(),
        chain: env.chain.to_string(),
        sender: env.sender.clone(),
        signature: env.signature.clone(),
        item_type: env.item_type.to_string(),
        item_content: env.item_content.clone(),
        // Written from the map itself: a clone of a large content would double its memory.
        content: serde_json::to_string(&content.value).unwrap_or_default(),
        channel: env.channel.clone(),
        time: env.time,
        size,
        owner: content.address.clone(),
        content_type: content.content_type().map(str::to_owned),
        content_ref: content.content_ref().map(str::to_owned),
        content_key: content.content_key().map(str::to_owned),
        content_item_hash: content.content_item_hash().map(str::to_owned),
        payment_type: content.payment_type().map(str::to_owned),
        tags: content.tags(),
        reception_time,
    };
    w.store.insert_message(&message)?;
    Ok(Applied::Processed(record_of(&message)))
}

/// The stored content of a non-inline message, and its file, if the node holds it and it is
/// no larger than `pipeline.max_content_bytes`: the size is checked before anything is read.
pub(crate) fn stored_content(
    w: &Writer,
    env: &Envelope,
) -> Result<(Vec<u8>, raleph_db::FileRecord), Failure> {
    let hash = env.item_hash.as_str();
    let unavailable = |e: std::io::Error| {
        Failure::new(
            ErrorCode::ContentUnavailable,
            format!("reading the content failed: {e}"),
        )
    };
    let Some(file) = w.content.file(hash).map_err(unavailable)? else {
        return Err(Failure::new(
            ErrorCode::ContentUnavailable,
            "the content is not available yet",
        ));
    };
    let limit = w.config.max_content_bytes;
    if file.size > limit {
        return Err(Failure::new(
            ErrorCode::InvalidFormat,
            format!(
                "the content is {} bytes, over the limit of {limit} (pipeline.max_content_bytes)",
                file.size
            ),
        ));
    }
    match w.content.load(env.item_type, hash).map_err(unavailable)? {
        Some(bytes) => Ok((bytes, file)),
        None => Err(Failure::new(
            ErrorCode::ContentUnavailable,
            "the content is not available yet",
        )),
    }
}

fn failed(code: ErrorCode, error: impl Into<Value>) -> Applied {
    Applied::Failed(Failure::new(code, error))
}

fn action<'a>(env: &'a Envelope, owner: &'a str) -> Action<'a> {
    Action {
        sender: &env.sender,
        owner,
        chain: env.chain.as_str(),
        message_type: env.message_type.as_str(),
        channel: env.channel.as_deref(),
        post_type: None,
        aggregate_key: None,
    }
}

fn permission_denied() -> Check {
    fail(
        ErrorCode::PermissionDenied,
        "the sender may not act for this address",
    )
}

fn apply_post(
    store: &mut dyn WriteStore,
    env: &Envelope,
    content: &Content,
    post: &PostContent,
) -> Check {
    let mut amends = None;
    if post.post_type == "amend" {
        let Some(target) = post.reference.as_deref() else {
            return fail(
                ErrorCode::PostAmendNoTarget,
                "an amend needs a ref to the post it amends",
            );
        };
        let Some(original) = store.post_facts(target)? else {
            return fail(
                ErrorCode::PostAmendTargetNotFound,
                json!({"message": target}),
            );
        };
        if original.amends.is_some() || original.post_type == "amend" {
            return fail(
                ErrorCode::PostAmendAmend,
                "an amend cannot amend another amend",
            );
        }
        if original.owner != content.address {
            return permission_denied();
        }
        // The sender must be allowed to create the original.
        let allowed = Action {
            post_type: Some(&original.post_type),
            ..action(env, &original.owner)
        };
        if !is_authorized(store, &allowed)? {
            return permission_denied();
        }
        amends = Some(target.to_owned());
    } else {
        let allowed = Action {
            post_type: Some(&post.post_type),
            ..action(env, &content.address)
        };
        if !is_authorized(store, &allowed)? {
            return permission_denied();
        }
    }
    store.insert_post(&NewPost {
        item_hash: env.item_hash.to_string(),
        owner: content.address.clone(),
        post_type: post.post_type.clone(),
        reference: post.reference.clone(),
        amends: amends.clone(),
        channel: env.channel.clone(),
        content: post.payload.as_ref().map(Value::to_string),
        creation_time: content.time,
        tags: content.tags(),
    })?;
    if let Some(original) = amends {
        store.refresh_latest_amend(&original)?;
    }
    Ok(Ok(()))
}

fn apply_aggregate(
    store: &mut dyn WriteStore,
    env: &Envelope,
    content: &Content,
    aggregate: &AggregateContent,
    max_aggregate_bytes: u64,
) -> Check {
    let allowed = Action {
        aggregate_key: Some(&aggregate.key),
        ..action(env, &content.address)
    };
    if !is_authorized(store, &allowed)? {
        return permission_denied();
    }
    if content.address == IGNORED_AGGREGATE_OWNER {
        return Ok(Ok(()));
    }
    // Bounded: an aggregate grows with every element that adds a key, and all of it is
    // merged, stored and served whole.
    let payload = serde_json::to_string(&aggregate.payload).unwrap_or_default();
    let current = store.aggregate_size(&content.address, &aggregate.key)?;
    if current.saturating_add(payload.len() as u64) > max_aggregate_bytes {
        return fail(
            ErrorCode::InvalidFormat,
            format!(
                "the aggregate would pass {max_aggregate_bytes} bytes (pipeline.max_aggregate_bytes)"
            ),
        );
    }
    store.add_aggregate_element(&NewAggregateElement {
        item_hash: env.item_hash.to_string(),
        owner: content.address.clone(),
        key: aggregate.key.clone(),
        content: payload,
        creation_time: content.time,
    })?;
    Ok(Ok(()))
}

fn apply_store(w: &mut Writer, env: &Envelope, content: &Content, file: &StoreContent) -> Check {
    let store = w.store.as_mut();
    if !is_authorized(store, &action(env, &content.address))? {
        return permission_denied();
    }
    let held = match w.content.file(file.item_hash.as_str()) {
        Ok(held) => held,
        Err(e) => {
            return fail(
                ErrorCode::FileUnavailable,
                format!("reading the file failed: {e}"),
            );
        }
    };
    let Some(held) = held else {
        return fail(
            ErrorCode::FileUnavailable,
            json!({"file": file.item_hash.as_str()}),
        );
    };
    let store = w.store.as_mut();
    // The file tag this STORE updates: its own hash, another STORE it refines, or a free name.
    let tag = match file.reference.as_deref() {
        None => env.item_hash.to_string(),
        Some(reference) if ItemHash::parse(reference).is_ok() => {
            let Some(target) = store.file_pin(reference)? else {
                return fail(ErrorCode::StoreRefNotFound, json!({"ref": reference}));
            };
            if target.is_update {
                return fail(
                    ErrorCode::StoreUpdateUpdate,
                    "a STORE cannot update an update",
                );
            }
            if target.owner != content.address {
                return permission_denied();
            }
            reference.to_owned()
        }
        Some(reference) => format!("{}/{reference}", content.address),
    };
    // Writes come after every check: a message that fails leaves nothing behind, so the
    // writer needs no savepoint per message.
    store.record_file(&held, None)?;
    store.insert_file_pin(&NewFilePin {
        message_hash: env.item_hash.to_string(),
        file_hash: file.item_hash.to_string(),
        owner: content.address.clone(),
        tag,
        created: content.time,
    })?;
    Ok(Ok(()))
}

fn apply_vm(
    store: &mut dyn WriteStore,
    env: &Envelope,
    content: &Content,
    vm: &ExecutableContent,
    vm_type: &str,
    provided_runtimes: &[String],
) -> Check {
    if !is_authorized(store, &action(env, &content.address))? {
        return permission_denied();
    }
    if let Some(original) = vm.replaces.as_deref() {
        let Some(target) = store.vm_facts(original)? else {
            return fail(ErrorCode::VmRefNotFound, json!({"replaces": original}));
        };
        if target.replaces.is_some() {
            return fail(
                ErrorCode::VmUpdateUpdate,
                "an update cannot replace another update",
            );
        }
        if !target.allow_amend {
            return fail(
                ErrorCode::VmAmendNotAllowed,
                "the original does not allow amends",
            );
        }
        if target.owner != content.address {
            return permission_denied();
        }
    }
    for volume in &vm.volumes {
        // A runtime this node provides itself needs no STORE message.
        if volume.role == "runtime" && provided_runtimes.contains(&volume.reference) {
            continue;
        }
        let found = if volume.use_latest {
            store.file_tag_exists(&volume.reference)?
                || store.file_pin(&volume.reference)?.is_some()
        } else {
            store.file_pin(&volume.reference)?.is_some()
        };
        if !found {
            return fail(
                ErrorCode::VmVolumeNotFound,
                json!({"volume": volume.role, "ref": volume.reference}),
            );
        }
        // A persistent volume or rootfs must be able to hold the file it starts from.
        let volume_size = volume.size_mib.map(|mib| mib.saturating_mul(1024 * 1024));
        if let Some(volume_size) = volume_size
            && let Some(parent_size) =
                store.volume_file_size(&volume.reference, volume.use_latest)?
            && parent_size > volume_size
        {
            let details = json!({
                "volume_name": volume.role,
                "parent_ref": volume.reference,
                "parent_size": parent_size,
                "volume_size": volume_size,
            });
            return fail(ErrorCode::VmVolumeTooSmall, details);
        }
    }
    store.insert_vm(&NewVm {
        item_hash: env.item_hash.to_string(),
        owner: content.address.clone(),
        vm_type: vm_type.to_owned(),
        allow_amend: vm.allow_amend,
        replaces: vm.replaces.clone(),
        created: content.time,
        volume_refs: vm.volumes.iter().map(|v| v.reference.clone()).collect(),
    })?;
    Ok(Ok(()))
}

/// What FORGET does to one target.
enum Target {
    Forget(String),
    AlreadyForgotten(String),
}

fn apply_forget(
    store: &mut dyn WriteStore,
    env: &Envelope,
    content: &Content,
    forget: &ForgetContent,
    grace_until: f64,
) -> Check {
    let mut hashes: Vec<String> = forget.hashes.iter().map(ItemHash::to_string).collect();
    let mut found_forgotten_elements = false;
    for key in &forget.aggregates {
        let elements = store.aggregate_element_hashes(&content.address, key)?;
        if elements.is_empty() {
            // A node that synced after the elements were forgotten elsewhere holds only
            // their skeletons, recorded as forgotten by this very FORGET.
            found_forgotten_elements = found_forgotten_elements
                || store.forgot_aggregates_of(&content.address, env.item_hash.as_str())?;
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
                if facts.message_type == "STORE" && store.store_used_by_vm(&hash)? {
                    return fail(
                        ErrorCode::ForgetNotAllowed,
                        json!({"message": hash, "reason": "used by a program"}),
                    );
                }
                live.push((hash, facts));
            }
        }
    }
    if !is_authorized(store, &action(env, &content.address))? {
        return permission_denied();
    }
    for (hash, facts) in live {
        if facts.message_type == "FORGET" {
            return fail(ErrorCode::ForgetForget, json!({"message": hash}));
        }
        if !may_forget(&env.sender, &facts.sender) {
            return fail(
                ErrorCode::PermissionDenied,
                json!({"message": hash, "reason": "it belongs to another user"}),
            );
        }
        targets.push(Target::Forget(hash));
    }
    let by = env.item_hash.as_str();
    let now = crate::now();
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
