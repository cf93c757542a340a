//! Every operation of the node's HTTP API: its path and method as routed, a summary, its
//! parameters and what it answers. The router is not built from this table (the handlers'
//! types differ), so tests hold the two together (see `mod.rs`).

use serde_json::{Value, json};

use super::schemas::schema_ref;
use super::{In, Param};

/// One operation.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    /// Lowercase, as OpenAPI keys it.
    pub method: &'static str,
    /// As a client writes it: `{name}` for path parameters (the router may spell a
    /// `{name}.json` segment as `{name}` and strip the suffix).
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub params: Vec<Param>,
    /// The OpenAPI `requestBody`, if any.
    pub body: Option<Value>,
    pub response: Value,
    pub response_type: &'static str,
    pub response_description: &'static str,
    /// A websocket: the 200 is the upgrade, then messages of `response`'s shape.
    pub websocket: bool,
    /// Served by routes the node binary adds, not by this crate's router.
    pub node: bool,
}

fn op(method: &'static str, path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        description: "",
        params: Vec::new(),
        body: None,
        response: schema_ref("Any"),
        response_type: "application/json",
        response_description: "Success",
        websocket: false,
        node: false,
    }
}

fn get(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    op("get", path, tag, summary)
}

fn post(path: &'static str, tag: &'static str, summary: &'static str) -> Op {
    op("post", path, tag, summary)
}

impl Op {
    fn with(mut self, params: impl IntoIterator<Item = Param>) -> Self {
        self.params.extend(params);
        self
    }

    fn returns(mut self, schema: &str) -> Self {
        self.response = schema_ref(schema);
        self
    }

    /// Answers something other than JSON.
    fn raw(mut self, content_type: &'static str, description: &'static str) -> Self {
        self.response = json!({"type": "string"});
        self.response_type = content_type;
        self.response_description = description;
        self
    }

    fn describe(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    fn json_body(mut self, schema: Value) -> Self {
        self.body = Some(json!({
            "required": true,
            "content": {"application/json": {"schema": schema}},
        }));
        self
    }

    fn multipart(mut self) -> Self {
        self.body = Some(json!({
            "required": true,
            "content": {"multipart/form-data": {"schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "metadata": {
                        "type": "string",
                        "description": "JSON: {\"message\": <signed STORE message>, \"sync\": bool}; \
                                        without it, a small unauthenticated upload",
                    },
                },
                "required": ["file"],
            }}},
        }));
        self
    }

    fn websocket(mut self) -> Self {
        self.websocket = true;
        self.response_description = "Upgraded to a websocket; then JSON messages of this shape";
        self
    }

    fn node(mut self) -> Self {
        self.node = true;
        self
    }
}

fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        place: In::Path,
        schema: json!({"type": "string"}),
        description,
    }
}

fn query(name: &'static str, kind: &'static str, description: &'static str) -> Param {
    Param {
        name,
        place: In::Query,
        schema: json!({"type": kind}),
        description,
    }
}

fn query_default(
    name: &'static str,
    kind: &'static str,
    default: Value,
    description: &'static str,
) -> Param {
    Param {
        name,
        place: In::Query,
        schema: json!({"type": kind, "default": default}),
        description,
    }
}

/// A list: comma-separated values.
fn list(name: &'static str, description: &'static str) -> Param {
    query(name, "string", description)
}

fn paging(default: u64) -> [Param; 2] {
    [
        query_default(
            "pagination",
            "integer",
            json!(default),
            "Rows per page (0: the largest page, api.max_page_size)",
        ),
        query_default("page", "integer", json!(1), "Page number, from 1"),
    ]
}

fn dates() -> [Param; 2] {
    [
        query(
            "startDate",
            "number",
            "From this time on (Unix seconds; 0: none)",
        ),
        query(
            "endDate",
            "number",
            "Before this time (Unix seconds; 0: none)",
        ),
    ]
}

fn sort_order() -> Param {
    query_default(
        "sortOrder",
        "integer",
        json!(-1),
        "-1: newest first, 1: oldest first",
    )
}

/// The filters of message lists and of the messages websocket.
fn message_filters() -> Vec<Param> {
    let mut params = vec![
        list("hashes", "Item hashes"),
        list("addresses", "Senders"),
        list("owners", "Content owners (content.address)"),
        list("refs", "content.ref values"),
        list("contentHashes", "STORE file hashes (content.item_hash)"),
        list("contentKeys", "AGGREGATE keys"),
        list("contentTypes", "POST types (content.type)"),
        list("chains", "Chains"),
        list("channels", "Channels"),
        list("tags", "Tags (content.content.tags)"),
        list("msgTypes", "Message types"),
        list("msgStatuses", "Statuses (default processed and removing)"),
        list("paymentTypes", "Payment types (hold, superfluid, credit)"),
    ];
    params.extend(dates());
    params.extend([
        query(
            "startBlock",
            "integer",
            "First confirmed at or after this height",
        ),
        query(
            "endBlock",
            "integer",
            "First confirmed at or before this height",
        ),
        query_default("sortBy", "string", json!("time"), "time or tx-time"),
        sort_order(),
        query_default(
            "contentFormat",
            "string",
            json!("full"),
            "full, headers or none",
        ),
        query("excludeContent", "boolean", "Leave the content out"),
    ]);
    params
}

fn message_list_params() -> Vec<Param> {
    let mut params = message_filters();
    params.extend(paging(20));
    params.push(query(
        "cursor",
        "string",
        "Keyset pagination: the next_cursor of the previous page (empty: the first)",
    ));
    params
}

fn post_filters() -> Vec<Param> {
    let mut params = vec![
        list("addresses", "Owners"),
        list("hashes", "Original item hashes"),
        list("refs", "content.ref values"),
        list("types", "Post types"),
        list("tags", "Tags"),
        list("channels", "Channels"),
        list("chains", "Chains"),
    ];
    params.extend(dates());
    params.extend([sort_order()]);
    params.extend(paging(20));
    params
}

fn authorization_filters(party: &'static str, description: &'static str) -> Vec<Param> {
    vec![
        path("address", "The address"),
        query(party, "string", description),
        list("channels", "Entries allowing one of these channels"),
        list("types", "Entries allowing one of these message types"),
        list("postTypes", "Entries allowing one of these post types"),
        list("chains", "Entries allowing one of these chains"),
        list(
            "aggregateKeys",
            "Entries allowing one of these aggregate keys",
        ),
        query_default(
            "pagination",
            "integer",
            json!(20),
            "Parties per page, 1 to 500",
        ),
        query_default("page", "integer", json!(1), "Page number, from 1"),
    ]
}

fn hash(description: &'static str) -> Param {
    path("hash", description)
}

/// The table.
pub(crate) fn operations() -> Vec<Op> {
    let item_hash = || path("item_hash", "A message's item hash");
    vec![
        // Node.
        get("/", "explorer", "The explorer (raleph)").raw("text/html", "An HTML page"),
        get("/explorer", "explorer", "The explorer (raleph)").raw("text/html", "An HTML page"),
        get("/explorer/{page}", "explorer", "A page of the explorer (raleph)")
            .with([path("page", "The page's path (may hold slashes)")])
            .raw("text/html", "An HTML page"),
        get("/explorer/assets/{path}", "explorer", "A file of the explorer (raleph)")
            .with([path("path", "The file's path under web/explorer")])
            .raw("text/plain", "A script, a style sheet or an image"),
        get("/version", "node", "Node version").returns("Version"),
        get("/api/v0/version", "node", "Node version").returns("Version"),
        get("/api/v0/info/public.json", "node", "The node's p2p addresses").returns("PublicInfo"),
        get("/metrics", "node", "Metrics, Prometheus text")
            .raw("text/plain", "Prometheus text exposition"),
        get("/metrics.json", "node", "Metrics as JSON").returns("Metrics"),
        get("/api/ws0/status", "node", "Metrics pushed on every change")
            .returns("Metrics")
            .websocket()
            .describe("Sends the metrics dict on connect, then again whenever it changes (read every 2 s)."),
        get("/api/v0/status/history", "node", "The last hour of status samples (raleph)")
            .returns("StatusHistory")
            .describe("A sample every 10 s for the last hour, oldest first."),
        get("/api/openapi.json", "node", "This document (raleph)").returns("Any"),
        get("/api/docs", "node", "Interactive API documentation").raw("text/html", "An HTML page"),
        get("/api/docs/{asset}", "node", "A file of the documentation page")
            .with([path("asset", "docs.js or docs.css")])
            .raw("text/plain", "The script or the style sheet"),
        get("/api/v0/channels/list.json", "node", "Channels in use").returns("Channels"),
        // Messages.
        get("/api/v0/messages.json", "messages", "List messages")
            .with(message_list_params())
            .returns("MessageList"),
        get("/api/v0/messages", "messages", "List messages (same as messages.json)")
            .with(message_list_params())
            .returns("MessageList"),
        get("/api/v0/messages/page/{page}.json", "messages", "List messages, page in the path")
            .with([path("page", "Page number, from 1")])
            .with(message_list_params().into_iter().filter(|p| p.name != "page"))
            .returns("MessageList"),
        post("/api/v0/messages", "messages", "Submit a signed message")
            .json_body(json!({
                "type": "object",
                "properties": {"message": schema_ref("Message"), "sync": {"type": "boolean"}},
                "required": ["message"],
            }))
            .returns("Publication")
            .describe("202 once durable (pending); with sync, 200 once processed or 422 if rejected."),
        get("/api/v0/messages/hashes", "messages", "List item hashes of every status")
            .with([
                query("status", "string", "Only this status"),
            ])
            .with(paging(20))
            .with(dates())
            .with([
                sort_order(),
                query_default("hash_only", "boolean", json!(true), "Hashes only, or each with its status and reception time"),
            ])
            .returns("Hashes")
            .describe("By reception time, ties by item hash; dates bound the reception time."),
        get("/api/v0/messages/{item_hash}", "messages", "One message and its status")
            .with([item_hash()])
            .returns("MessageWithStatus"),
        get("/api/v0/messages/{item_hash}/status", "messages", "A message's status")
            .with([item_hash()])
            .returns("MessageStatus"),
        get("/api/v0/messages/{item_hash}/content", "messages", "A message's content")
            .with([item_hash()])
            .returns("Any")
            .describe("A POST's user payload (content.content); the whole content for other types."),
        get("/api/v0/messages/{item_hash}/proof", "messages", "Merkle proofs of a message's anchors (raleph)")
            .with([item_hash()])
            .returns("Proofs")
            .node(),
        get("/api/ws0/messages", "messages", "Messages as they are processed")
            .with(message_filters())
            .with([query_default("history", "integer", json!(10), "Recent messages sent first, at most 199")])
            .returns("Message")
            .websocket(),
        post("/api/v0/p2p/pubsub/pub", "messages", "Submit a message (legacy pubsub)")
            .json_body(json!({"type": "object", "properties": {"topic": {"type": "string"}, "data": {"type": "string"}}}))
            .returns("PubsubResult"),
        post("/api/v0/ipfs/pubsub/pub", "messages", "Submit a message (legacy pubsub)")
            .json_body(json!({"type": "object", "properties": {"topic": {"type": "string"}, "data": {"type": "string"}}}))
            .returns("PubsubResult"),
        // Posts.
        get("/api/v0/posts.json", "posts", "List posts (v0 shape)").with(post_filters()).returns("PostListV0"),
        get("/api/v0/posts/page/{page}.json", "posts", "List posts (v0 shape), page in the path")
            .with([path("page", "Page number, from 1")])
            .with(post_filters().into_iter().filter(|p| p.name != "page"))
            .returns("PostListV0"),
        get("/api/v1/posts.json", "posts", "List posts (v1 shape)").with(post_filters()).returns("PostListV1"),
        get("/api/v1/posts/page/{page}.json", "posts", "List posts (v1 shape), page in the path")
            .with([path("page", "Page number, from 1")])
            .with(post_filters().into_iter().filter(|p| p.name != "page"))
            .returns("PostListV1"),
        // Aggregates.
        get("/api/v0/aggregates/{address}.json", "aggregates", "An address's aggregates")
            .with([
                path("address", "The owner"),
                list("keys", "Only these keys"),
                query("with_info", "boolean", "Add each key's times and hashes"),
                query("value_only", "boolean", "With one key: its value alone"),
            ])
            .returns("AddressAggregates"),
        get("/api/v0/aggregates.json", "aggregates", "List aggregates")
            .with([
                list("keys", "Keys"),
                list("addresses", "Owners"),
                query_default("sortBy", "string", json!("last_modified"), "last_modified or created"),
                sort_order(),
            ])
            .with(paging(50))
            .returns("AggregateList"),
        get("/api/v0/aggregates", "aggregates", "List aggregates (same as aggregates.json)")
            .with([list("keys", "Keys"), list("addresses", "Owners"), sort_order()])
            .with(paging(50))
            .returns("AggregateList"),
        get("/api/v0/authorizations/granted/{address}.json", "aggregates", "What an address's security aggregate grants")
            .with(authorization_filters("grantee", "Only this delegate"))
            .returns("Authorizations")
            .describe("Entries of the address's `security` aggregate, grouped by delegate."),
        get("/api/v0/authorizations/received/{address}.json", "aggregates", "What other addresses grant this one")
            .with(authorization_filters("granter", "Only this owner"))
            .returns("Authorizations")
            .describe("Entries naming the address in other addresses' `security` aggregates, grouped by owner."),
        // Addresses.
        get("/api/v0/addresses/stats.json", "addresses", "Message counts of addresses")
            .with([list("addresses", "Addresses (all when none)")])
            .returns("AddressStatsMap"),
        get("/api/v1/addresses/stats.json", "addresses", "Message counts of addresses, paged")
            .with([
                list("addresses", "Addresses (all when none)"),
                query("addressContains", "string", "Part of the address, any case"),
                query_default("sortBy", "string", json!("total"), "post, aggregate, store, forget, program, instance or total"),
                sort_order(),
            ])
            .with(paging(20))
            .returns("AddressStatsMap"),
        get("/api/v0/addresses/{address}/balance", "addresses", "An address's balance (zero: payments are not enforced)")
            .with([path("address", "The address")])
            .returns("Balance"),
        get("/api/v0/addresses/{address}/files", "addresses", "The files an address's STORE messages pin")
            .with([path("address", "The owner"), sort_order()])
            .with(paging(100))
            .returns("AddressFiles"),
        get("/api/v0/addresses/{address}/post_types", "addresses", "The post types an address used")
            .with([path("address", "The sender")])
            .returns("AddressPostTypes"),
        get("/api/v0/addresses/{address}/channels", "addresses", "The channels an address used")
            .with([path("address", "The sender")])
            .returns("AddressChannels"),
        post("/api/v0/price/estimate", "addresses", "Cost of a message (zero: payments are not enforced)")
            .json_body(json!({"type": "object", "properties": {"message": {"type": "object"}}, "required": ["message"]}))
            .returns("PriceEstimate"),
        // Storage.
        post("/api/v0/storage/add_json", "storage", "Store a JSON document")
            .json_body(json!({}))
            .returns("AddedFile")
            .describe("Returns its sha256; kept for the grace period unless a STORE message pins it."),
        post("/api/v0/ipfs/add_json", "storage", "Store a JSON document, by CID")
            .json_body(json!({}))
            .returns("AddedFile"),
        post("/api/v0/storage/add_file", "storage", "Upload a file")
            .multipart()
            .returns("AddedFile"),
        post("/api/v0/ipfs/add_file", "storage", "Upload a file, by CID")
            .with([query_default("cid_version", "integer", json!(0), "0 (CIDv0) or 1 (CIDv1, raw leaves)")])
            .multipart()
            .returns("AddedFile"),
        get("/api/v0/storage/{hash}", "storage", "A file, base64 in JSON")
            .with([hash("sha256 or CID")])
            .returns("StoredFile"),
        get("/api/v0/storage/raw/{hash}", "storage", "A file's bytes")
            .with([hash("sha256 or CID")])
            .raw("application/octet-stream", "The file, streamed (single byte ranges served)"),
        get("/ipfs/{cid}", "storage", "A file's bytes, by CID (gateway path)")
            .with([path("cid", "CIDv0 or CIDv1")])
            .raw("application/octet-stream", "The file, streamed"),
        get("/api/v0/storage/count/{hash}", "storage", "How many pins hold a file")
            .with([hash("sha256 or CID")])
            .returns("Any"),
        get("/api/v0/storage/limits.json", "storage", "Upload size limits").returns("StorageLimits"),
        get("/api/v0/storage/metadata/{hash}", "storage", "A file's size and type")
            .with([hash("sha256 or CID")])
            .returns("FileMetadata"),
        get("/api/v0/storage/by-message-hash/{hash}", "storage", "The file a STORE message pins")
            .with([hash("The STORE message's item hash")])
            .returns("PinnedFile"),
        get("/api/v0/storage/by-ref/{ref}", "storage", "The latest file of a ref")
            .with([path("ref", "An item hash ref")])
            .returns("PinnedFile"),
        get("/api/v0/storage/by-ref/{address}/{ref}", "storage", "The latest file of an address's ref")
            .with([path("address", "The owner"), path("ref", "A free-text ref")])
            .returns("PinnedFile"),
        // Peers.
        get("/api/v0/p2p/identity", "p2p", "This node's peer id and addresses (raleph)").returns("Identity"),
        get("/api/v0/p2p/peers", "p2p", "Connected peers and their counters (raleph)").returns("Peers"),
        // Compute (served by the node with its compute front).
        get("/api/v0/runtimes", "compute", "Program runtimes this node runs").returns("Any").node(),
        get("/api/v0/programs/on/message", "compute", "Programs subscribed to messages")
            .with([sort_order()])
            .returns("Any")
            .node(),
        get("/vm/{item_hash}", "compute", "Call a program (any method)")
            .with([item_hash()])
            .raw("application/octet-stream", "What the program answers")
            .node(),
        get("/vm/{item_hash}/{path}", "compute", "Call a program at a path (any method)")
            .with([item_hash(), path("path", "The path the program sees (may hold slashes)")])
            .raw("application/octet-stream", "What the program answers")
            .node(),
        post("/vm/{item_hash}/{path}", "compute", "Call a program at a path (any method)")
            .with([item_hash(), path("path", "The path the program sees (may hold slashes)")])
            .raw("application/octet-stream", "What the program answers")
            .node(),
        get("/vm/", "compute", "No program named (400)").node(),
        get("/about/executions/list", "compute", "Running programs (v1 shape)").node(),
        get("/v2/about/executions/list", "compute", "Running programs (v2 shape)").node(),
        post("/control/allocation/notify", "compute", "Allocation notice").node(),
        get("/control/machine/{reference}/logs", "compute", "A program's logs (its owner, signed)")
            .with([path("reference", "The program's item hash")])
            .node(),
        get("/control/machine/{reference}/stream_logs", "compute", "A program's logs as they come (its owner, signed)")
            .with([path("reference", "The program's item hash")])
            .websocket()
            .node(),
        post("/control/machine/{reference}/stop", "compute", "Stop a program (its owner, signed)")
            .with([path("reference", "The program's item hash")])
            .node(),
        post("/control/machine/{reference}/reboot", "compute", "Restart a program (its owner, signed)")
            .with([path("reference", "The program's item hash")])
            .node(),
    ]
}
