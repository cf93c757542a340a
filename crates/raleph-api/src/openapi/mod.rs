//! `GET /api/openapi.json`: an OpenAPI 3.1 document of the node's whole HTTP API, built from
//! one table of operations (`operations.rs`) and the shapes they answer (`schemas.rs`).
//! Operations the node binary adds to this crate's router (the anchoring proof, compute) are
//! in the table too, marked `x-raleph-served-by: node`. Tests check the table against the
//! routers: every documented operation is served, every route is documented.

mod operations;
mod schemas;

use std::sync::OnceLock;

use axum::Json;
use serde_json::{Map, Value, json};

pub(crate) use operations::{Op, operations};

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum In {
    Path,
    Query,
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: &'static str,
    pub place: In,
    pub schema: Value,
    pub description: &'static str,
}

impl Param {
    fn to_json(&self) -> Value {
        let place = match self.place {
            In::Path => "path",
            In::Query => "query",
        };
        let mut p = json!({
            "name": self.name,
            "in": place,
            "schema": self.schema,
            "description": self.description,
        });
        if self.place == In::Path {
            p["required"] = json!(true);
        }
        p
    }
}

impl Op {
    fn to_json(&self) -> Value {
        let mut op = json!({
            "summary": self.summary,
            "tags": [self.tag],
            "operationId": operation_id(self.method, self.path),
        });
        if !self.description.is_empty() {
            op["description"] = json!(self.description);
        }
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params.iter().map(Param::to_json).collect());
        }
        if let Some(body) = &self.body {
            op["requestBody"] = body.clone();
        }
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({
                "description": self.response_description,
                "content": {self.response_type: {"schema": self.response}},
            }),
        );
        responses.insert(
            "default".into(),
            json!({
                "description": "An error: 4xx for a bad request (422 for invalid parameters, \
                                404 unknown), 5xx for the node",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }),
        );
        op["responses"] = Value::Object(responses);
        if self.websocket {
            op["x-websocket"] = json!(true);
        }
        if self.node {
            op["x-raleph-served-by"] = json!("node");
        }
        op
    }
}

/// A unique, stable id from the method and the path.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for c in path.chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    id
}

/// The whole document.
pub(crate) fn build() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        item[op.method] = op.to_json();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "raleph",
            "version": crate::misc::VERSION,
            "description": "The HTTP API of a raleph node: the reference node's (pyaleph) \
                            routes with its JSON shapes, plus raleph's own (marked in their \
                            summaries). Lists take comma-separated values; unknown query \
                            parameters are ignored.",
        },
        "paths": paths,
        "components": {"schemas": schemas::all()},
    })
}

/// The document, built once.
pub(crate) fn document_json() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

pub async fn document() -> Json<Value> {
    Json(document_json().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_whole_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for op in operations() {
            assert!(
                seen.insert((op.method, op.path)),
                "{} {} twice",
                op.method,
                op.path
            );
            assert!(!op.summary.is_empty(), "{} {}", op.method, op.path);
            assert!(["get", "post", "head"].contains(&op.method));
            // Every `{name}` of the path is a path parameter, and only those.
            let mut named: Vec<&str> = op
                .path
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split('}').next())
                .collect();
            let mut declared: Vec<&str> = op
                .params
                .iter()
                .filter(|p| p.place == In::Path)
                .map(|p| p.name)
                .collect();
            named.sort();
            declared.sort();
            assert_eq!(named, declared, "{} {}", op.method, op.path);
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = build();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            assert!(schemas.contains_key(name), "{r}");
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
