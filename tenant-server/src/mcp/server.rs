//! The MCP `ServerHandler`: a compact worker tool set and a planner tool set,
//! each tool one store command (or two) with the caller's `Principal`.
//!
//! Scopes: a read-only tool (annotation `readOnlyHint: true`) needs
//! `queue:read`, every other tool `queue:write`, exactly as the REST routes
//! they mirror. `tools/list` shows only what the caller may call; calling a
//! tool above the caller's scope is a tool error with code `forbidden`.
//! Refusals are tool errors (`isError: true`) whose structured content is
//! the REST error shape, `{"error": {"code", "message", "details"}}`.

use super::{caller_of, resources};
use crate::AppState;
use crate::api::error::ApiError;
use crate::commands::queue;
use crate::domain::board::LaneRole;
use crate::domain::item::{
    CommentKind, ItemKind, ItemPatch, ItemPatchInput, NewComment, NewItem, NewItemInput,
};
use crate::domain::{DomainError, Principal, Scope};
use crate::store::model::Item;
use crate::store::queue::{ClaimOutcome, MoveTarget, QueueFilter, allowed};
use crate::store::{self, CommandError, boards, items};
use http::StatusCode;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::handler::server::tool::{ToolCallContext, ToolRouter};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// One MCP session's handler; cheap to build (one per session).
#[derive(Clone)]
pub struct TaskHarborMcp {
    state: AppState,
    tools: ToolRouter<Self>,
}

impl std::fmt::Debug for TaskHarborMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHarborMcp").finish_non_exhaustive()
    }
}

/// The authenticated caller, extracted from the HTTP request's parts.
struct Caller(Principal);

impl<C: AsRequestContext> FromContextPart<C> for Caller {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        caller_of(context.as_request_context())
            .map(Caller)
            .ok_or_else(|| ErrorData::invalid_request("a valid token is required", None))
    }
}

/// The scope a tool needs: read-only tools `queue:read`, the rest `queue:write`.
fn required_scope(tool: &rmcp::model::Tool) -> Scope {
    let read_only = tool
        .annotations
        .as_ref()
        .and_then(|a| a.read_only_hint)
        .unwrap_or(false);
    if read_only {
        Scope::QueueRead
    } else {
        Scope::QueueWrite
    }
}

/// A refusal as a tool error carrying the REST error shape.
fn tool_error(code: &str, message: String, details: Value) -> CallToolResult {
    CallToolResult::structured_error(
        json!({"error": {"code": code, "message": message, "details": details}}),
    )
}

fn refuse(error: impl Into<ApiError>) -> CallToolResult {
    let error = error.into();
    let (status, code, message, details) = error.parts();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        crate::telemetry::log_error("mcp tool failed", &error);
    }
    tool_error(code, message, details)
}

fn ok(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn reply<T: serde::Serialize>(result: Result<T, CommandError>) -> CallToolResult {
    match result {
        Ok(value) => ok(to_json(&value)),
        Err(error) => refuse(error),
    }
}

/// A list entry: enough to choose, not the whole body.
fn summary(item: &Item, me: i64) -> Value {
    json!({
        "id": item.id, "key": item.key, "board_id": item.board_id, "title": item.title,
        "status": item.status, "kind": item.kind, "priority": item.priority, "labels": item.labels,
        "agent_ready": item.agent_ready, "blocked_by": item.blocked_by, "parent_id": item.parent_id,
        "claim": item.claim.as_ref().map(|c| json!({
            "worker": c.worker.name, "mine": c.worker.id == me,
            "lease_expires_at": c.lease_expires_at, "token": c.token,
        })),
        "sync": item.sync,
    })
}

fn check_len(field: &str, value: Option<&str>, max: usize) -> Result<(), DomainError> {
    if value.is_some_and(|v| v.chars().count() > max) {
        return Err(DomainError::validation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

// ---- arguments ----

/// The schema of `ItemKind` (the domain type stays free of schemars).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum KindSchema {
    Task,
    Subtask,
    Defect,
}

/// The schema of `LaneRole`.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum StatusSchema {
    Backlog,
    Ready,
    InProgress,
    Review,
    Blocked,
    Done,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ItemArg {
    item_id: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HolderArgs {
    item_id: i64,
    /// Fencing token from your claim; a stale one is refused (lease_superseded).
    claim_token: Option<i64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListAllowedArgs {
    board_id: Option<i64>,
    /// 1-200, default 20.
    limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClaimNextArgs {
    board_id: Option<i64>,
    /// Only these kinds.
    #[schemars(with = "Option<Vec<KindSchema>>")]
    kinds: Option<Vec<ItemKind>>,
    /// Items carrying any of these labels.
    labels: Option<Vec<String>>,
    /// Also move it to in_progress (WIP limit applies).
    #[serde(default)]
    start: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClaimArgs {
    item_id: i64,
    /// Also move it to in_progress (WIP limit applies).
    #[serde(default)]
    start: bool,
    claim_token: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoteArgs {
    item_id: i64,
    note: String,
    claim_token: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OptionalNoteArgs {
    item_id: i64,
    note: Option<String>,
    claim_token: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReleaseArgs {
    item_id: i64,
    reason: Option<String>,
    claim_token: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ReportKind {
    #[default]
    Defect,
    Subtask,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReportArgs {
    /// The item you are working on.
    item_id: i64,
    title: String,
    body: Option<String>,
    /// defect (default): labeled found-in:KEY; subtask: child of item_id.
    #[serde(default)]
    kind: ReportKind,
    /// 0 (most urgent) to 4; default 2.
    priority: Option<i64>,
    labels: Option<Vec<String>>,
    /// Defect only: item_id becomes blocked_by the new defect.
    #[serde(default)]
    blocking: bool,
    /// Let agents claim the new item (default false: humans triage).
    #[serde(default)]
    agent_ready: bool,
    claim_token: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListItemsArgs {
    board_id: i64,
    #[schemars(with = "Option<StatusSchema>")]
    status: Option<LaneRole>,
    #[schemars(with = "Option<KindSchema>")]
    kind: Option<ItemKind>,
    label: Option<String>,
    /// Text to find in title or body.
    q: Option<String>,
    /// 1-200, default 50.
    limit: Option<i64>,
    /// Items with an id above this (paging).
    after_id: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateItemArgs {
    board_id: i64,
    title: String,
    body: Option<String>,
    /// Default task; a subtask needs parent_id.
    #[schemars(with = "Option<KindSchema>")]
    kind: Option<ItemKind>,
    parent_id: Option<i64>,
    /// 0 (most urgent) to 4; default 2.
    priority: Option<i64>,
    labels: Option<Vec<String>>,
    agent_ready: Option<bool>,
    /// Ids of items that must be done first.
    blocked_by: Option<Vec<i64>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UpdateItemArgs {
    item_id: i64,
    title: Option<String>,
    body: Option<String>,
    #[schemars(with = "Option<KindSchema>")]
    kind: Option<ItemKind>,
    /// New parent id (0 detaches).
    parent_id: Option<i64>,
    priority: Option<i64>,
    labels: Option<Vec<String>>,
    agent_ready: Option<bool>,
    blocked_by: Option<Vec<i64>>,
    /// Refuse (version_mismatch) unless the item is at this version.
    expected_version: Option<i64>,
    claim_token: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DependenciesArgs {
    item_id: i64,
    /// The complete list of items that must be done first ([] clears).
    blocked_by: Vec<i64>,
    claim_token: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AgentReadyArgs {
    item_id: i64,
    agent_ready: bool,
    claim_token: Option<i64>,
}

// ---- tools ----

#[tool_router(router = tool_router, vis = "pub(super)")]
impl TaskHarborMcp {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            tools: Self::tool_router(),
        }
    }

    fn count_claim<T>(
        &self,
        result: &Result<T, CommandError>,
        outcome: impl Fn(&T) -> &'static str,
    ) {
        let label = match result {
            Ok(value) => outcome(value),
            Err(CommandError::Rule(rule)) => ApiError::from(rule.clone()).parts().1,
            Err(_) => "error",
        };
        self.state.metrics.claims.with_label_values(&[label]).inc();
    }

    async fn move_to(
        &self,
        caller: &Principal,
        item_id: i64,
        role: LaneRole,
        note: Option<&str>,
        fence: Option<i64>,
    ) -> CallToolResult {
        if let Err(e) = check_len("note", note, 100_000) {
            return refuse(e);
        }
        let result = queue::move_item(
            &self.state.store,
            caller,
            item_id,
            MoveTarget::Status(role),
            note,
            fence,
            store::now_ms(),
        )
        .await;
        reply(result)
    }

    async fn edit(
        &self,
        caller: &Principal,
        item_id: i64,
        patch: Result<ItemPatch, crate::domain::FieldErrors>,
        if_match: Option<i64>,
        fence: Option<i64>,
    ) -> CallToolResult {
        let patch = match patch {
            Ok(patch) => patch,
            Err(errors) => return refuse(errors),
        };
        let result = crate::commands::items::update(
            &self.state.store,
            caller,
            item_id,
            &patch,
            if_match,
            fence,
            store::now_ms(),
        )
        .await;
        reply(result)
    }

    #[tool(
        description = "What you may claim now, plus what you already hold (held first, then priority, then age).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn list_allowed(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<ListAllowedArgs>,
    ) -> CallToolResult {
        let limit = args.limit.unwrap_or(20);
        if !(1..=200).contains(&limit) {
            return refuse(ApiError::Invalid("limit must be between 1 and 200".into()));
        }
        let filter = QueueFilter {
            board_id: args.board_id,
            ..QueueFilter::default()
        };
        match allowed(
            &self.state.store.reader,
            &caller,
            &filter,
            limit,
            store::now_ms(),
        )
        .await
        {
            Ok(found) => ok(json!({
                "items": found.iter().map(|i| summary(i, caller.worker_id)).collect::<Vec<_>>()
            })),
            Err(e) => refuse(e),
        }
    }

    #[tool(
        description = "Atomically claim the best item you may work on. Returns it with the last checkpoint/progress notes, or claimed=false when none.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn claim_next(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<ClaimNextArgs>,
    ) -> CallToolResult {
        let filter = QueueFilter {
            board_id: args.board_id,
            kinds: args.kinds.unwrap_or_default(),
            labels: args.labels.unwrap_or_default(),
        };
        let result = queue::claim_next(
            &self.state.store,
            &caller,
            &filter,
            args.start,
            store::now_ms(),
        )
        .await;
        self.count_claim(&result, |found| match found {
            Some((_, ClaimOutcome::New)) => "claimed",
            Some((_, ClaimOutcome::Renewed)) => "renewed",
            None => "empty",
        });
        match result {
            Ok(Some((claimed, _))) => {
                let mut value = to_json(&claimed);
                value["claimed"] = json!(true);
                ok(value)
            }
            Ok(None) => ok(json!({"claimed": false, "message": "nothing claimable right now"})),
            Err(e) => refuse(e),
        }
    }

    #[tool(
        description = "Claim one item by id (renews the lease if you hold it). Returns it with the last checkpoint/progress notes.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn claim(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<ClaimArgs>,
    ) -> CallToolResult {
        let result = queue::claim(
            &self.state.store,
            &caller,
            args.item_id,
            args.start,
            args.claim_token,
            store::now_ms(),
        )
        .await;
        self.count_claim(&result, |(_, outcome)| match outcome {
            ClaimOutcome::New => "claimed",
            ClaimOutcome::Renewed => "renewed",
        });
        reply(result.map(|(claimed, _)| claimed))
    }

    #[tool(
        description = "One item in full. Reading an item you hold also renews its lease.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn get_item(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<ItemArg>,
    ) -> CallToolResult {
        let now = store::now_ms();
        let item = match items::get(&self.state.store.reader, &caller, args.item_id, now).await {
            Ok(item) => item,
            Err(e) => return refuse(e),
        };
        let holds = item
            .claim
            .as_ref()
            .is_some_and(|c| c.worker.id == caller.worker_id);
        if holds && caller.has(Scope::QueueWrite) {
            // Any call by the holder on its item keeps the lease alive.
            if let Ok(renewed) =
                queue::heartbeat(&self.state.store, &caller, item.id, None, now).await
            {
                return ok(to_json(&renewed));
            }
        }
        ok(to_json(&item))
    }

    #[tool(
        description = "Renew your lease on an item you hold.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn heartbeat(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<HolderArgs>,
    ) -> CallToolResult {
        match queue::heartbeat(
            &self.state.store,
            &caller,
            args.item_id,
            args.claim_token,
            store::now_ms(),
        )
        .await
        {
            Ok(item) => ok(json!({
                "item_id": item.id,
                "lease_expires_at": item.claim.as_ref().map(|c| c.lease_expires_at),
                "claim_token": item.claim.as_ref().map(|c| c.token),
            })),
            Err(e) => refuse(e),
        }
    }

    #[tool(
        description = "Record a progress note on an item you hold (renews the lease).",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn add_progress(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<NoteArgs>,
    ) -> CallToolResult {
        let comment = match NewComment::parse(&args.note, Some(CommentKind::Progress)) {
            Ok(c) => c,
            Err(errors) => return refuse(errors),
        };
        let result = crate::commands::items::add_comment(
            &self.state.store,
            &caller,
            args.item_id,
            &comment,
            args.claim_token,
            store::now_ms(),
        )
        .await;
        reply(result)
    }

    #[tool(
        description = "Hand off: move the item to blocked with a checkpoint note (where you stopped, what is next). Ends your claim.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn checkpoint(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<NoteArgs>,
    ) -> CallToolResult {
        if args.note.trim().is_empty() {
            return refuse(DomainError::validation("note", "must not be empty"));
        }
        self.move_to(
            &caller,
            args.item_id,
            LaneRole::Blocked,
            Some(&args.note),
            args.claim_token,
        )
        .await
    }

    #[tool(
        description = "Move the item you hold to review, with an optional note. Ends your claim.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn submit_for_review(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<OptionalNoteArgs>,
    ) -> CallToolResult {
        self.move_to(
            &caller,
            args.item_id,
            LaneRole::Review,
            args.note.as_deref(),
            args.claim_token,
        )
        .await
    }

    #[tool(
        description = "Move the item you hold to done, with an optional note. Ends your claim.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn complete(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<OptionalNoteArgs>,
    ) -> CallToolResult {
        self.move_to(
            &caller,
            args.item_id,
            LaneRole::Done,
            args.note.as_deref(),
            args.claim_token,
        )
        .await
    }

    #[tool(
        description = "Give up your claim; the item returns to the queue.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn release(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<ReleaseArgs>,
    ) -> CallToolResult {
        if let Err(e) = check_len("reason", args.reason.as_deref(), 2000) {
            return refuse(e);
        }
        let result = queue::release(
            &self.state.store,
            &caller,
            args.item_id,
            args.reason.as_deref(),
            args.claim_token,
            store::now_ms(),
        )
        .await;
        reply(result)
    }

    #[tool(
        description = "File a defect (labeled found-in:KEY; blocking=true also makes item_id wait for it) or a subtask (child of item_id) from the item you hold.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn report_defect(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<ReportArgs>,
    ) -> CallToolResult {
        let report = crate::commands::items::Report {
            origin_id: args.item_id,
            subtask: matches!(args.kind, ReportKind::Subtask),
            title: args.title.clone(),
            body: args.body.clone(),
            priority: args.priority,
            labels: args.labels.clone().unwrap_or_default(),
            agent_ready: args.agent_ready,
            blocking: args.blocking,
            fence: args.claim_token,
        };
        let (created, updated) = match crate::commands::items::report_defect(
            &self.state.store,
            &caller,
            report,
            store::now_ms(),
        )
        .await
        {
            Ok(done) => done,
            Err(e) => return refuse(e),
        };
        ok(json!({
            "created": to_json(&created),
            "item": updated.map(|i| summary(&i, caller.worker_id)),
        }))
    }

    #[tool(
        description = "Boards you can see (ids, keys, settings).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn list_boards(&self, Caller(caller): Caller) -> CallToolResult {
        match boards::list(&self.state.store.reader, &caller).await {
            Ok(found) => ok(json!({"boards": to_json(&found)})),
            Err(e) => refuse(ApiError::from(e)),
        }
    }

    #[tool(
        description = "Items of a board, filtered; summaries without bodies (use get_item for one in full).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn list_items(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<ListItemsArgs>,
    ) -> CallToolResult {
        let limit = args.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return refuse(ApiError::Invalid("limit must be between 1 and 200".into()));
        }
        let filter = items::ItemFilter {
            status: args.status,
            kind: args.kind,
            label: args.label,
            claimed_by: None,
            q: args.q.filter(|q| !q.trim().is_empty()),
            after_id: args.after_id.unwrap_or(0),
            limit,
        };
        match items::list(
            &self.state.store.reader,
            &caller,
            args.board_id,
            &filter,
            store::now_ms(),
        )
        .await
        {
            Ok(found) => ok(json!({
                "items": found.iter().map(|i| summary(i, caller.worker_id)).collect::<Vec<_>>()
            })),
            Err(e) => refuse(e),
        }
    }

    #[tool(
        description = "Create an item; a subtask needs parent_id. blocked_by lists items that must be done first.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn create_item(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<CreateItemArgs>,
    ) -> CallToolResult {
        let new = match NewItem::parse(NewItemInput {
            title: &args.title,
            body: args.body.as_deref(),
            kind: args.kind,
            parent_id: args.parent_id,
            priority: args.priority,
            labels: args.labels.as_deref(),
            agent_ready: args.agent_ready,
            blocked_by: args.blocked_by.as_deref(),
            lane_id: None,
        }) {
            Ok(new) => new,
            Err(errors) => return refuse(errors),
        };
        let result = crate::commands::items::create(
            &self.state.store,
            &caller,
            args.board_id,
            &new,
            store::now_ms(),
        )
        .await;
        reply(result)
    }

    #[tool(
        description = "Edit an item's fields; only the fields given change.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn update_item(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<UpdateItemArgs>,
    ) -> CallToolResult {
        let patch = ItemPatch::parse(ItemPatchInput {
            title: args.title.as_deref(),
            body: args.body.as_deref(),
            kind: args.kind,
            parent_id: args.parent_id.map(|p| (p != 0).then_some(p)),
            priority: args.priority,
            labels: args.labels.as_deref(),
            agent_ready: args.agent_ready,
            blocked_by: args.blocked_by.as_deref(),
        });
        self.edit(
            &caller,
            args.item_id,
            patch,
            args.expected_version,
            args.claim_token,
        )
        .await
    }

    #[tool(
        description = "Set the items this one waits for (replaces the list; [] clears).",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn set_dependencies(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<DependenciesArgs>,
    ) -> CallToolResult {
        let patch = ItemPatch::parse(ItemPatchInput {
            blocked_by: Some(&args.blocked_by),
            ..ItemPatchInput::default()
        });
        self.edit(&caller, args.item_id, patch, None, args.claim_token)
            .await
    }

    #[tool(
        description = "Mark an item ready (or not) for agents to claim.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn set_agent_ready(
        &self,
        Caller(caller): Caller,
        Parameters(args): Parameters<AgentReadyArgs>,
    ) -> CallToolResult {
        let patch = ItemPatch::parse(ItemPatchInput {
            agent_ready: Some(args.agent_ready),
            ..ItemPatchInput::default()
        });
        self.edit(&caller, args.item_id, patch, None, args.claim_token)
            .await
    }
}

/// rmcp answers undecodable arguments with a plain-text tool error; give
/// it the REST shape and code (`invalid_request`) like every other refusal.
fn normalize_argument_error(result: CallToolResult) -> CallToolResult {
    if result.is_error != Some(true) || result.structured_content.is_some() {
        return result;
    }
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join(" ");
    tool_error("invalid_request", describe_argument_error(&text), json!({}))
}

/// rmcp's text carries serde's message ("… unknown field `x`, expected …"):
/// say it as a sentence about the arguments, never a Rust type.
fn describe_argument_error(text: &str) -> String {
    let serde_part = [
        "unknown field",
        "missing field",
        "invalid type",
        "unknown variant",
        "invalid value",
        "invalid length",
    ]
    .iter()
    .filter_map(|start| text.find(start))
    .min()
    .map(|at| &text[at..]);
    match serde_part {
        Some(message) => crate::api::extract::describe_data_error(None, message, "argument")
            .replace("the body", "the arguments"),
        None => "the tool arguments could not be read: send a JSON object as the tool's input schema describes".into(),
    }
}

impl ServerHandler for TaskHarborMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("taskharbor", env!("CARGO_PKG_VERSION")).with_title("TaskHarbor"),
        )
        .with_instructions(resources::INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller_of(&context)
            .ok_or_else(|| ErrorData::invalid_request("a valid token is required", None))?;
        let tools = self
            .tools
            .list_all()
            .into_iter()
            .filter(|tool| caller.has(required_scope(tool)))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller_of(&context)
            .ok_or_else(|| ErrorData::invalid_request("a valid token is required", None))?;
        if let Some(tool) = self.tools.get(&request.name) {
            let needed = required_scope(tool);
            if !caller.has(needed) {
                return Ok(tool_error(
                    "forbidden",
                    format!("this token lacks the {} scope", needed.as_str()),
                    json!({"required_scope": needed.as_str()}),
                )
                .into());
            }
        }
        let response = self
            .tools
            .call(ToolCallContext::new(self, request, context))
            .await?;
        Ok(match response {
            CallToolResponse::Complete(result) => normalize_argument_error(result).into(),
            other => other,
        })
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(resources::list()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = caller_of(&context)
            .ok_or_else(|| ErrorData::invalid_request("a valid token is required", None))?;
        resources::read(&self.state, &caller, &request.uri)
            .await
            .map(Into::into)
    }
}
