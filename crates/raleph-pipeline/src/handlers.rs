//! Applying a verified message by type: the rules of POST, AGGREGATE, STORE, PROGRAM and
//! INSTANCE here, those of FORGET in `forget`.
//!
//! Every handler checks first and writes last: a message that fails (`Applied::Failed`)
//! has written nothing, so the writer applies a batch without a savepoint per message. A store
//! error (`Err`) fails the whole transaction instead.

use raleph_db::{
    ErrorCode, Failure, MessageRecord, MessageStatus, NewAggregateElement, NewFilePin, NewMessage,
    NewPost, NewVm, WriteStore,
};
use raleph_message::content::{AggregateContent, ExecutableContent, PostContent, StoreContent};
use raleph_message::{Content, Envelope, ItemHash, TypedContent};
use serde_json::{Value, json};

use crate::authorize::{Action, is_authorized};
use crate::content::stored_content;
use crate::context::Context;
use crate::forget::{Forget, apply_forget};
use crate::prepare::Prepared;
use crate::rule::{Check, fail, permission_denied};

pub(crate) enum Applied {
    Processed(MessageRecord),
    Failed(Failure),
}

/// Aggregates of this owner are ignored, as the reference ignores them.
const IGNORED_AGGREGATE_OWNER: &str = "0x51A58800b26AA1451aaA803d1746687cB88E0501";

/// Applies `env` by its type, with its content as a checker `prepared` it or as read now.
pub(crate) fn process_message(
    store: &mut dyn WriteStore,
    ctx: &Context<'_>,
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
        (None, None) => match stored_content(ctx, env) {
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
    if let Err(failure) = ctx.payments.check(env, content) {
        return Ok(Applied::Failed(failure));
    }
    let max_aggregate_bytes = ctx.config.max_aggregate_bytes;
    let provided = &ctx.config.provided_runtimes;
    let checked = match &content.typed {
        TypedContent::Post(post) => apply_post(store, env, content, post)?,
        TypedContent::Aggregate(aggregate) => {
            apply_aggregate(store, env, content, aggregate, max_aggregate_bytes)?
        }
        TypedContent::Store(file) => apply_store(store, ctx, env, content, file)?,
        TypedContent::Program(vm) => apply_vm(store, env, content, vm, "program", provided)?,
        TypedContent::Instance(vm) => apply_vm(store, env, content, vm, "instance", provided)?,
        TypedContent::Forget(forget) => {
            let forget = Forget::new(&content.address, forget);
            apply_forget(store, ctx, env, &forget)?
        }
    };
    if let Err(failure) = checked {
        return Ok(Applied::Failed(failure));
    }
    if let Some(file) = &content_file {
        store.record_file(file, None)?;
    }
    let message = NewMessage {
        record: MessageRecord {
            envelope: env.clone(),
            // Written from the map itself: a clone of a large content would double its memory.
            content: serde_json::to_string(&content.value).unwrap_or_default(),
            size,
            reception_time,
            status: MessageStatus::Processed,
        },
        owner: content.address.clone(),
        content_type: content.content_type().map(str::to_owned),
        content_ref: content.content_ref().map(str::to_owned),
        content_key: content.content_key().map(str::to_owned),
        content_item_hash: content.content_item_hash().map(str::to_owned),
        payment_type: content.payment_type().map(str::to_owned),
        tags: content.tags(),
    };
    store.insert_message(&message)?;
    Ok(Applied::Processed(message.record))
}

fn failed(code: ErrorCode, error: impl Into<Value>) -> Applied {
    Applied::Failed(Failure::new(code, error))
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
        // A reference that is no item hash names no post (yet: the reference retries it too).
        let found = match ItemHash::parse(target) {
            Ok(hash) => store.post_facts(&hash)?.map(|facts| (hash, facts)),
            Err(_) => None,
        };
        let Some((target, original)) = found else {
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
            ..Action::of(env, &original.owner)
        };
        if !is_authorized(store, &allowed)? {
            return permission_denied();
        }
        amends = Some(target);
    } else {
        let allowed = Action {
            post_type: Some(&post.post_type),
            ..Action::of(env, &content.address)
        };
        if !is_authorized(store, &allowed)? {
            return permission_denied();
        }
    }
    store.insert_post(&NewPost {
        item_hash: env.item_hash.clone(),
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
        ..Action::of(env, &content.address)
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
        item_hash: env.item_hash.clone(),
        owner: content.address.clone(),
        key: aggregate.key.clone(),
        content: payload,
        creation_time: content.time,
    })?;
    Ok(Ok(()))
}

fn apply_store(
    store: &mut dyn WriteStore,
    ctx: &Context<'_>,
    env: &Envelope,
    content: &Content,
    file: &StoreContent,
) -> Check {
    if !is_authorized(store, &Action::of(env, &content.address))? {
        return permission_denied();
    }
    let held = match ctx.content.file(file.item_hash.as_str()) {
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
    // The file tag this STORE updates: its own hash, another STORE it refines, or a free name.
    let tag = match file.reference.as_deref() {
        None => env.item_hash.to_string(),
        Some(reference) if let Ok(hash) = ItemHash::parse(reference) => {
            let Some(target) = store.file_pin(&hash)? else {
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
        message_hash: env.item_hash.clone(),
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
    if !is_authorized(store, &Action::of(env, &content.address))? {
        return permission_denied();
    }
    if let Some(original) = vm.replaces.as_deref() {
        let target = match ItemHash::parse(original) {
            Ok(hash) => store.vm_facts(&hash)?,
            Err(_) => None,
        };
        let Some(target) = target else {
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
            store.file_tag_exists(&volume.reference)? || pins_a_file(store, &volume.reference)?
        } else {
            pins_a_file(store, &volume.reference)?
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
        item_hash: env.item_hash.clone(),
        owner: content.address.clone(),
        vm_type: vm_type.to_owned(),
        allow_amend: vm.allow_amend,
        replaces: vm.replaces.clone(),
        created: content.time,
        volume_refs: vm.volumes.iter().map(|v| v.reference.clone()).collect(),
    })?;
    Ok(Ok(()))
}

/// Whether `reference` is the item hash of a STORE message that pins a file.
fn pins_a_file(store: &mut dyn WriteStore, reference: &str) -> raleph_db::Result<bool> {
    match ItemHash::parse(reference) {
        Ok(hash) => Ok(store.file_pin(&hash)?.is_some()),
        Err(_) => Ok(false),
    }
}
