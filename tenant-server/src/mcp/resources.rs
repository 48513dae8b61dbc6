//! MCP resources: the workflow guide for agents (`taskharbor://guide`) and
//! items by id (`taskharbor://items/{id}`, listed as a resource template).

use crate::AppState;
use crate::api::error::ApiError;
use crate::domain::Principal;
use crate::store::{self, items};
use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

pub const GUIDE_URI: &str = "taskharbor://guide";
const ITEM_PREFIX: &str = "taskharbor://items/";

/// The guide, served as a resource and summarised in `instructions`.
pub const GUIDE: &str = include_str!("guide.md");

/// Sent at `initialize`: short, because clients put it in the model's context.
pub const INSTRUCTIONS: &str = "TaskHarbor work queue. Loop: claim_next -> work, add_progress after each step -> \
submit_for_review or complete. Every call on an item you hold renews its lease; heartbeat if silent. \
Low on context or stuck: checkpoint (note for the next worker). Can't finish: release. \
Full guide: resource taskharbor://guide.";

pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(GUIDE_URI, "guide")
            .with_title("How to work the TaskHarbor queue")
            .with_description("Claim, heartbeat, progress, checkpoint, release, review.")
            .with_mime_type("text/markdown")
            .with_size(GUIDE.len() as u64),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{ITEM_PREFIX}{{id}}"), "item")
            .with_title("A work item")
            .with_description("One item as JSON, by numeric id.")
            .with_mime_type("application/json"),
    ]
}

pub async fn read(
    state: &AppState,
    caller: &Principal,
    uri: &str,
) -> Result<ReadResourceResult, ErrorData> {
    if uri == GUIDE_URI {
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(GUIDE, uri).with_mime_type("text/markdown"),
        ]));
    }
    let id = uri
        .strip_prefix(ITEM_PREFIX)
        .and_then(|id| id.parse::<i64>().ok())
        .ok_or_else(|| {
            ErrorData::resource_not_found("no such resource", Some(json!({"uri": uri})))
        })?;
    match items::get(&state.store.reader, caller, id, store::now_ms()).await {
        Ok(item) => {
            let text = serde_json::to_string_pretty(&item)
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            Ok(ReadResourceResult::new(vec![
                ResourceContents::text(text, uri).with_mime_type("application/json"),
            ]))
        }
        Err(error) => {
            let (_, code, message, details) = ApiError::from(error).parts();
            let data = json!({"uri": uri, "code": code, "details": details});
            if code == "not_found" {
                Err(ErrorData::resource_not_found(message, Some(data)))
            } else {
                Err(ErrorData::internal_error(message, Some(data)))
            }
        }
    }
}
