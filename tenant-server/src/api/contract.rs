//! What the OpenAPI document states beyond the Rust types: the bounds and
//! patterns of `domain::limits`, the headers every route reads, the status
//! codes every route can answer, and the links between operations.
//!
//! utoipa derives shapes from the request and response types; its
//! validation attributes take only literals, so the bounds are written in
//! here from the same constants the parsers check. Tests in
//! `tests/api/contract.rs` fuzz the running server against the result.

use crate::domain::limits as l;
use serde_json::{Map, Value, json};

/// Constraints of one property: JSON Schema keywords to merge in.
fn int(min: i64, max: i64) -> Value {
    json!({"minimum": min, "maximum": max})
}

fn line(max: usize) -> Value {
    json!({"maxLength": max, "pattern": l::single_line_pattern()})
}

/// (component schema, property, keywords); `[]` after a property name
/// means its items.
fn property_bounds() -> Vec<(&'static str, &'static str, Value)> {
    let title = line(l::TITLE_MAX);
    let name = line(l::NAME_MAX);
    let labels = json!({"maxItems": l::LABELS_MAX});
    let label = line(l::LABEL_MAX);
    let blockers = json!({"maxItems": l::BLOCKERS_MAX});
    let blocker = int(1, i64::MAX);
    let body = json!({"maxLength": l::BODY_MAX});
    let priority = int(l::PRIORITY_MIN, l::PRIORITY_MAX);
    let position = int(l::LANE_POSITION_MIN, l::LANE_POSITION_MAX);
    let wip = int(l::WIP_LIMIT_MIN, l::WIP_LIMIT_MAX);
    let lease = int(l::LEASE_SECONDS_MIN, l::LEASE_SECONDS_MAX);
    let mut bounds = vec![
        ("CreateBoardRequest", "name", name.clone()),
        (
            "CreateBoardRequest",
            "key",
            json!({"pattern": l::BOARD_KEY_PATTERN, "minLength": l::BOARD_KEY_MIN, "maxLength": l::BOARD_KEY_MAX}),
        ),
        ("PatchBoardRequest", "name", name.clone()),
        (
            "PatchBoardRequest",
            "claim_limit",
            int(l::CLAIM_LIMIT_MIN, l::CLAIM_LIMIT_MAX),
        ),
        ("PatchBoardRequest", "agent_lease_seconds", lease.clone()),
        ("PatchBoardRequest", "human_lease_seconds", lease),
        ("CreateLaneRequest", "name", name.clone()),
        ("CreateLaneRequest", "position", position.clone()),
        ("CreateLaneRequest", "wip_limit", wip.clone()),
        ("PatchLaneRequest", "name", name.clone()),
        ("PatchLaneRequest", "position", position),
        ("PatchLaneRequest", "wip_limit", wip),
        ("CreateCommentRequest", "body", {
            let mut b = body.clone();
            b["pattern"] = json!(l::not_blank_pattern());
            b
        }),
        (
            "ReleaseRequest",
            "reason",
            json!({"maxLength": l::REASON_MAX}),
        ),
        ("MoveRequest", "note", body.clone()),
        ("CreateTokenRequest", "name", name.clone()),
        ("CreateTokenRequest", "scopes", json!({"minItems": 1})),
        (
            "CreateTokenRequest",
            "expires_at",
            json!({"format": "date-time"}),
        ),
        ("WorkerSpec", "name", name),
        (
            "CreateWebhookRequest",
            "url",
            json!({"maxLength": l::URL_MAX}),
        ),
        (
            "PatchWebhookRequest",
            "url",
            json!({"maxLength": l::URL_MAX}),
        ),
        ("LinkRequest", "repo", json!({"maxLength": l::REPO_MAX})),
        ("LinkRequest", "api_url", json!({"maxLength": l::URL_MAX})),
        (
            "LinkRequest",
            "token",
            json!({"maxLength": l::PROVIDER_TOKEN_MAX}),
        ),
        (
            "RotateRequest",
            "overlap_seconds",
            int(l::OVERLAP_SECONDS_MIN, l::OVERLAP_SECONDS_MAX),
        ),
    ];
    for schema in ["CreateItemRequest", "PatchItemRequest"] {
        bounds.extend([
            (schema, "title", title.clone()),
            (schema, "body", body.clone()),
            (schema, "priority", priority.clone()),
            (schema, "labels", labels.clone()),
            (schema, "labels[]", label.clone()),
            (schema, "blocked_by", blockers.clone()),
            (schema, "blocked_by[]", blocker.clone()),
        ]);
    }
    bounds
}

/// (operationId, query parameter, keywords).
fn query_bounds() -> Vec<(&'static str, &'static str, Value)> {
    let list = int(1, l::LIST_LIMIT_MAX);
    let page = int(1, l::PAGE_LIMIT_MAX);
    vec![
        ("allowed", "limit", list.clone()),
        ("allowed", "wait", int(0, l::WAIT_SECONDS_MAX)),
        ("list_items", "limit", list.clone()),
        (
            "list_items",
            "cursor",
            json!({"pattern": super::Cursor::PATTERN}),
        ),
        ("list_deliveries", "limit", list),
        ("list_comments", "limit", page.clone()),
        ("item_events", "limit", page.clone()),
        ("feed", "limit", page),
    ]
}

fn merge(target: &mut Value, keywords: &Value) {
    if let (Some(target), Some(keywords)) = (target.as_object_mut(), keywords.as_object()) {
        for (k, v) in keywords {
            target.insert(k.clone(), v.clone());
        }
    }
}

fn drop_null(schema: &mut Value) {
    if let Some(types) = schema["type"].as_array_mut() {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            schema["type"] = types[0].clone();
        }
    }
}

/// Every int64 without bounds gets the bounds of int64, so a generator
/// never sends a number the server cannot read as one.
fn bound_int64(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("format").and_then(Value::as_str) == Some("int64") {
                map.entry("minimum").or_insert(json!(i64::MIN));
                map.entry("maximum").or_insert(json!(i64::MAX));
            }
            map.values_mut().for_each(bound_int64);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_int64),
        _ => {}
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// Responses every operation of `/api` can give, whatever its handler says.
fn common_responses(op: &mut Map<String, Value>, has_body: bool, is_post: bool) {
    let fenced = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|params| params.iter().any(|p| p["name"] == "X-Claim-Token"));
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    let mut add = |code: &str, description: &str| {
        responses
            .entry(code.to_owned())
            .or_insert_with(|| error_response(description));
    };
    add(
        "400",
        "invalid_request: malformed JSON, unknown field, wrong type, bad query or header",
    );
    add(
        "401",
        "unauthorized: no valid token (with `WWW-Authenticate: Bearer`)",
    );
    add("403", "forbidden: the token lacks the scope");
    add(
        "404",
        "not_found: no such object, or outside the token's board",
    );
    add(
        "429",
        "rate_limited: too many requests (with `Retry-After`)",
    );
    if has_body || is_post {
        add(
            "413",
            "payload_too_large: the body is over the server's limit",
        );
    }
    if has_body || is_post {
        add(
            "422",
            "validation_failed: a value breaks a rule (details name each field), or the Idempotency-Key was used for a different request",
        );
    }
    if fenced {
        add(
            "409",
            "lease_superseded: the X-Claim-Token sent is not the item's current claim; not_holder",
        );
    }
    if let Some(r429) = responses.get_mut("429") {
        r429["headers"] = json!({"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}});
    }
    if let Some(r401) = responses.get_mut("401") {
        r401["headers"] = json!({"WWW-Authenticate": {"schema": {"type": "string"}}});
    }
}

fn idempotency_header() -> Value {
    json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "A retry with the same key and body within 24 hours returns the first answer and changes nothing.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\u0021-\\u007e]+$"}
    })
}

/// Links for stateful testing and generated clients: what a created
/// object's id can be used for next.
fn links() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        (
            "create_board",
            "201",
            vec![
                "get_board",
                "patch_board",
                "list_lanes",
                "create_lane",
                "create_item",
                "list_items",
                "create_webhook",
                "list_webhooks",
            ],
        ),
        (
            "create_item",
            "201",
            vec![
                "get_item",
                "patch_item",
                "claim",
                "move_item",
                "add_comment",
                "list_comments",
                "item_events",
            ],
        ),
        (
            "claim",
            "200",
            vec![
                "move_item",
                "heartbeat",
                "release",
                "patch_item",
                "add_comment",
            ],
        ),
        (
            "claim_next",
            "200",
            vec!["move_item", "heartbeat", "release"],
        ),
        ("create_lane", "201", vec!["patch_lane", "delete_lane"]),
        (
            "create_webhook",
            "201",
            vec![
                "get_webhook",
                "patch_webhook",
                "rotate_secret",
                "list_deliveries",
                "delete_webhook",
            ],
        ),
    ]
}

fn add_links(doc: &mut Value) {
    let mut ops: Vec<&mut Value> = Vec::new();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            if let Some(item) = item.as_object_mut() {
                ops.extend(item.values_mut());
            }
        }
    }
    for (from, status, targets) in links() {
        for op in ops.iter_mut() {
            if op["operationId"] != from {
                continue;
            }
            let mut links = Map::new();
            for target in &targets {
                links.insert(
                    (*target).to_owned(),
                    json!({"operationId": target, "parameters": {"id": "$response.body#/id"}}),
                );
            }
            if let Some(response) = op["responses"].get_mut(status) {
                response["links"] = Value::Object(links);
            }
        }
    }
}

/// The finished document: the generated one plus this module's statements.
pub fn finish(generated: Value) -> Value {
    let mut doc = generated;
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (schema, property, keywords) in property_bounds() {
            let (name, items) = match property.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (property, false),
            };
            let Some(target) = schemas
                .get_mut(schema)
                .and_then(|s| s["properties"].get_mut(name))
            else {
                continue;
            };
            if items {
                merge(&mut target["items"], &keywords);
            } else {
                merge(target, &keywords);
            }
        }
        // Exactly one of lane_id and status names the target.
        if let Some(mv) = schemas.get_mut("MoveRequest") {
            mv["oneOf"] = json!([
                {"required": ["lane_id"], "properties": {"lane_id": {"type": "integer"}}},
                {"required": ["status"], "properties": {"status": {"$ref": "#/components/schemas/LaneRole"}}}
            ]);
        }
        // A subtask needs a parent: the one cross-field rule of item creation.
        if let Some(create) = schemas.get_mut("CreateItemRequest") {
            create["if"] =
                json!({"properties": {"kind": {"const": "subtask"}}, "required": ["kind"]});
            create["then"] = json!({"properties": {"parent_id": {"type": "integer"}}, "required": ["parent_id"]});
        }
    }
    let bounds = query_bounds();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                    for param in params.iter_mut() {
                        // An absent header is how a client says "none";
                        // the text `null` is not a value of any of them.
                        if param["in"] == "header" {
                            drop_null(&mut param["schema"]);
                        }
                        if param["name"] == "If-Match" {
                            merge(
                                &mut param["schema"],
                                &json!({"pattern": super::extract::IF_MATCH_PATTERN}),
                            );
                        }
                        for (op_id, name, keywords) in &bounds {
                            if *op_id == id && param["name"] == *name && param["in"] == "query" {
                                merge(&mut param["schema"], keywords);
                            }
                        }
                    }
                }
                let is_post = method == "post";
                if is_post
                    && let Some(params) = op
                        .entry("parameters")
                        .or_insert_with(|| json!([]))
                        .as_array_mut()
                {
                    params.push(idempotency_header());
                }
                let has_body = op.contains_key("requestBody");
                common_responses(op, has_body, is_post);
            }
        }
    }
    add_links(&mut doc);
    bound_int64(&mut doc);
    doc
}
