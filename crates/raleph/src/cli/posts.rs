//! `raleph post`: publish, amend and list posts.

use raleph_sdk::{Draft, PostFilter};
use serde_json::json;

use super::output::{self, json_argument, out};
use super::publish::publish;
use super::settings::Settings;

#[derive(clap::Subcommand)]
pub enum PostCommand {
    /// Publish a POST; prints its item hash and status.
    Create {
        /// The post's content: JSON (an object, usually), or `-` to read it from stdin.
        content: String,
        /// The post type (the content's `type`), which lists filter on.
        #[arg(long = "type", default_value = "note")]
        post_type: String,
        /// What the post refers to (`ref`).
        #[arg(long = "ref")]
        reference: Option<String>,
        /// Publish for this address (its `security` aggregate must allow your key).
        #[arg(long, value_name = "ADDRESS")]
        on_behalf_of: Option<String>,
    },
    /// Replace a post's content with a new version (an `amend` POST).
    Amend {
        /// The original post's item hash.
        original: String,
        /// The new content: JSON, or `-` for stdin.
        content: String,
        /// Publish for this address (the original's owner).
        #[arg(long, value_name = "ADDRESS")]
        on_behalf_of: Option<String>,
    },
    /// List posts (originals, each with its latest content), newest first.
    List {
        /// Owners, comma-separated.
        #[arg(long, value_delimiter = ',')]
        addresses: Vec<String>,
        /// Post types, comma-separated.
        #[arg(long = "types", value_delimiter = ',')]
        post_types: Vec<String>,
        /// Original item hashes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        hashes: Vec<String>,
        /// `ref` values, comma-separated.
        #[arg(long, value_delimiter = ',')]
        refs: Vec<String>,
        /// Tags, comma-separated.
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Channels, comma-separated (not the --channel posts are sent on).
        #[arg(long = "channels", value_delimiter = ',')]
        channels: Vec<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
}

pub async fn run(cmd: PostCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        PostCommand::Create {
            content,
            post_type,
            reference,
            on_behalf_of,
        } => {
            let mut draft = Draft::post(&post_type, json_argument(&content, "the content")?);
            if let Some(reference) = reference {
                draft = draft.reference(&reference);
            }
            if let Some(owner) = on_behalf_of {
                draft = draft.on_behalf_of(&owner);
            }
            publish(settings, draft).await.map(drop)
        }
        PostCommand::Amend {
            original,
            content,
            on_behalf_of,
        } => {
            output::item_hash(&original)?;
            let mut draft = Draft::amend(&original, json_argument(&content, "the content")?);
            if let Some(owner) = on_behalf_of {
                draft = draft.on_behalf_of(&owner);
            }
            publish(settings, draft).await.map(drop)
        }
        PostCommand::List {
            addresses,
            post_types,
            hashes,
            refs,
            tags,
            channels,
            limit,
            page,
        } => {
            let filter = PostFilter {
                hashes,
                addresses,
                types: post_types,
                refs,
                tags,
                channels,
                pagination: Some(limit),
                page: Some(page),
                ..Default::default()
            };
            let posts = settings
                .client()
                .posts(&filter)
                .await
                .map_err(|e| settings.explain(e))?;
            let value = json!({
                "posts": posts.posts,
                "pagination_page": posts.pagination_page,
                "pagination_per_page": posts.pagination_per_page,
                "pagination_total": posts.pagination_total,
            });
            output::print(settings.json, &value, || {
                for post in &posts.posts {
                    out!(
                        "{} {} {} {}",
                        post["original_item_hash"].as_str().unwrap_or("?"),
                        post["original_type"].as_str().unwrap_or("?"),
                        post["address"].as_str().unwrap_or("?"),
                        post["content"]
                    );
                }
                eprintln!(
                    "{} of {} post(s)",
                    posts.posts.len(),
                    posts.pagination_total
                );
            })
        }
    }
}
