//! What the store hands out: the JSON shapes of API.md, built from rows.
//!
//! The API renders these directly, so a field name lives in exactly one
//! place. Times are stored as epoch milliseconds and shown as RFC 3339.

use crate::domain::board::{BoardRules, LaneRole, Who};
use crate::domain::error::WorkerRef;
use crate::domain::item::{CommentKind, ItemKind};
use crate::domain::queue::{Claim, ItemState};
use crate::domain::{Scope, WorkerKind};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 3339 UTC timestamp, stored as epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }

    pub fn parse_rfc3339(value: &str) -> Option<Self> {
        let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
            .ok()?;
        Some(Self((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into()
    }
}
impl ToSchema for Timestamp {}

fn corrupt(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} {value:?} in the database").into())
}

pub(crate) fn parse_kind(value: &str) -> Result<WorkerKind, sqlx::Error> {
    WorkerKind::parse(value).ok_or_else(|| corrupt("worker kind", value))
}

pub(crate) fn parse_role(value: &str) -> Result<LaneRole, sqlx::Error> {
    LaneRole::parse(value).ok_or_else(|| corrupt("lane role", value))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Board {
    pub id: i64,
    pub name: String,
    pub key: String,
    pub locked: bool,
    pub claim_limit: i64,
    pub agent_lease_seconds: i64,
    pub human_lease_seconds: i64,
    pub agents_need_ready: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Board {
    pub fn rules(&self) -> BoardRules {
        BoardRules {
            locked: self.locked,
            claim_limit: self.claim_limit,
            agent_lease_seconds: self.agent_lease_seconds,
            human_lease_seconds: self.human_lease_seconds,
            agents_need_ready: self.agents_need_ready,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BoardRow {
    id: i64,
    name: String,
    key: String,
    locked: bool,
    claim_limit: i64,
    agent_lease_seconds: i64,
    human_lease_seconds: i64,
    agents_need_ready: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<BoardRow> for Board {
    fn from(r: BoardRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            key: r.key,
            locked: r.locked,
            claim_limit: r.claim_limit,
            agent_lease_seconds: r.agent_lease_seconds,
            human_lease_seconds: r.human_lease_seconds,
            agents_need_ready: r.agents_need_ready,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Lane {
    pub id: i64,
    pub board_id: i64,
    pub name: String,
    pub role: LaneRole,
    pub position: i64,
    pub wip_limit: Option<i64>,
    pub who: Who,
}

#[derive(sqlx::FromRow)]
pub(crate) struct LaneRow {
    id: i64,
    board_id: i64,
    name: String,
    role: String,
    position: i64,
    wip_limit: Option<i64>,
    who: String,
}

impl TryFrom<LaneRow> for Lane {
    type Error = sqlx::Error;
    fn try_from(r: LaneRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.id,
            board_id: r.board_id,
            name: r.name,
            role: parse_role(&r.role)?,
            position: r.position,
            wip_limit: r.wip_limit,
            who: Who::parse(&r.who).ok_or_else(|| corrupt("lane who", &r.who))?,
        })
    }
}

/// A live claim as shown on an item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClaimView {
    pub worker: WorkerRef,
    pub claimed_at: Timestamp,
    pub lease_expires_at: Timestamp,
    /// Fencing token: send it back as `X-Claim-Token` on writes.
    pub token: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Item {
    pub id: i64,
    /// Board key and per-board number, e.g. `CORE-42`.
    pub key: String,
    pub board_id: i64,
    pub lane_id: i64,
    /// The role of the item's lane.
    pub status: LaneRole,
    pub kind: ItemKind,
    pub parent_id: Option<i64>,
    pub title: String,
    pub body: String,
    /// 0 (most urgent) to 4.
    pub priority: i64,
    pub labels: Vec<String>,
    pub agent_ready: bool,
    pub blocked_by: Vec<i64>,
    /// Unfinished items among `blocked_by`.
    pub open_blockers: i64,
    pub claim: Option<ClaimView>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The columns every item query selects (see `items::SELECT_ITEM`).
#[derive(sqlx::FromRow, Debug, Clone)]
pub(crate) struct ItemRow {
    pub id: i64,
    pub board_id: i64,
    pub board_key: String,
    pub number: i64,
    pub lane_id: i64,
    pub status: String,
    pub kind: String,
    pub parent_id: Option<i64>,
    pub title: String,
    pub body: String,
    pub priority: i64,
    pub labels: String,
    pub agent_ready: bool,
    pub claim_worker_id: Option<i64>,
    pub claim_worker_name: Option<String>,
    pub claim_worker_kind: Option<String>,
    pub claimed_at: Option<i64>,
    pub lease_expires_at: Option<i64>,
    pub claim_token: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub blocked_by: String,
    pub open_blockers: i64,
}

impl ItemRow {
    /// The recorded claim, live or lapsed.
    pub fn claim(&self) -> Result<Option<Claim>, sqlx::Error> {
        let (Some(id), Some(name), Some(kind), Some(at), Some(until), Some(token)) = (
            self.claim_worker_id,
            self.claim_worker_name.as_ref(),
            self.claim_worker_kind.as_ref(),
            self.claimed_at,
            self.lease_expires_at,
            self.claim_token,
        ) else {
            return Ok(None);
        };
        Ok(Some(Claim {
            worker: WorkerRef {
                id,
                name: name.clone(),
                kind: parse_kind(kind)?,
            },
            claimed_at_ms: at,
            lease_expires_at_ms: until,
            token,
        }))
    }

    pub fn role(&self) -> Result<LaneRole, sqlx::Error> {
        parse_role(&self.status)
    }

    pub fn state(&self) -> Result<ItemState, sqlx::Error> {
        Ok(ItemState {
            lane_id: self.lane_id,
            role: self.role()?,
            agent_ready: self.agent_ready,
            claim: self.claim()?,
            open_blockers: self.open_blockers,
        })
    }

    pub fn labels(&self) -> Vec<String> {
        serde_json::from_str(&self.labels).unwrap_or_default()
    }

    pub fn blocked_by(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = serde_json::from_str(&self.blocked_by).unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// The API view at `now_ms`: a lapsed lease shows as no claim.
    pub fn into_item(self, now_ms: i64) -> Result<Item, sqlx::Error> {
        let claim = self
            .claim()?
            .filter(|c| c.is_live(now_ms))
            .map(|c| ClaimView {
                worker: c.worker,
                claimed_at: Timestamp(c.claimed_at_ms),
                lease_expires_at: Timestamp(c.lease_expires_at_ms),
                token: c.token,
            });
        Ok(Item {
            id: self.id,
            key: format!("{}-{}", self.board_key, self.number),
            board_id: self.board_id,
            lane_id: self.lane_id,
            status: self.role()?,
            kind: ItemKind::parse(&self.kind).ok_or_else(|| corrupt("item kind", &self.kind))?,
            parent_id: self.parent_id,
            labels: self.labels(),
            blocked_by: self.blocked_by(),
            title: self.title,
            body: self.body,
            priority: self.priority,
            agent_ready: self.agent_ready,
            open_blockers: self.open_blockers,
            claim,
            version: self.version,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comment {
    pub id: i64,
    pub item_id: i64,
    pub author: WorkerRef,
    pub kind: CommentKind,
    pub body: String,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CommentRow {
    id: i64,
    item_id: i64,
    author_id: i64,
    author_name: String,
    author_kind: String,
    kind: String,
    body: String,
    created_at: i64,
}

impl TryFrom<CommentRow> for Comment {
    type Error = sqlx::Error;
    fn try_from(r: CommentRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.id,
            item_id: r.item_id,
            author: WorkerRef {
                id: r.author_id,
                name: r.author_name,
                kind: parse_kind(&r.author_kind)?,
            },
            kind: CommentKind::parse(&r.kind).ok_or_else(|| corrupt("comment kind", &r.kind))?,
            body: r.body,
            created_at: Timestamp(r.created_at),
        })
    }
}

/// One entry of an item's history (and of the board's event feed).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    pub id: i64,
    /// `item.created`, `item.claimed`, … (see API.md).
    #[serde(rename = "type")]
    pub kind: String,
    pub board_id: i64,
    pub item_id: Option<i64>,
    pub actor: Option<WorkerRef>,
    pub at: Timestamp,
    /// Before/after values and claim state; thin, ids not copies.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    #[sqlx(rename = "type")]
    kind: String,
    board_id: i64,
    item_id: Option<i64>,
    actor_id: Option<i64>,
    actor_name: Option<String>,
    actor_kind: Option<String>,
    at: i64,
    data: String,
}

impl TryFrom<EventRow> for Event {
    type Error = sqlx::Error;
    fn try_from(r: EventRow) -> Result<Self, sqlx::Error> {
        let actor = match (r.actor_id, r.actor_name, r.actor_kind) {
            (Some(id), Some(name), Some(kind)) => Some(WorkerRef {
                id,
                name,
                kind: parse_kind(&kind)?,
            }),
            _ => None,
        };
        Ok(Self {
            id: r.id,
            kind: r.kind,
            board_id: r.board_id,
            item_id: r.item_id,
            actor,
            at: Timestamp(r.at),
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// A token as listed: never the secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub worker: WorkerRef,
    pub scopes: Vec<Scope>,
    pub board_id: Option<i64>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub worker_id: i64,
    pub worker_name: String,
    pub worker_kind: String,
    pub scopes: String,
    pub board_id: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    pub fn scopes(&self) -> Vec<Scope> {
        serde_json::from_str(&self.scopes).unwrap_or_default()
    }
}

impl TryFrom<TokenRow> for TokenInfo {
    type Error = sqlx::Error;
    fn try_from(r: TokenRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            scopes: r.scopes(),
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            worker: WorkerRef {
                id: r.worker_id,
                name: r.worker_name,
                kind: parse_kind(&r.worker_kind)?,
            },
            board_id: r.board_id,
            expires_at: r.expires_at.map(Timestamp),
            created_at: Timestamp(r.created_at),
            last_used_at: r.last_used_at.map(Timestamp),
            revoked_at: r.revoked_at.map(Timestamp),
        })
    }
}

// Rows as the writer thread reads them (rusqlite), column for column the
// same SELECTs as the sqlx rows above, so one query text serves both.

impl BoardRow {
    pub(crate) fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            key: r.get(2)?,
            locked: r.get(3)?,
            claim_limit: r.get(4)?,
            agent_lease_seconds: r.get(5)?,
            human_lease_seconds: r.get(6)?,
            agents_need_ready: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
        })
    }
}

impl LaneRow {
    pub(crate) fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            board_id: r.get(1)?,
            name: r.get(2)?,
            role: r.get(3)?,
            position: r.get(4)?,
            wip_limit: r.get(5)?,
            who: r.get(6)?,
        })
    }
}

impl ItemRow {
    pub(crate) fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            board_id: r.get(1)?,
            board_key: r.get(2)?,
            number: r.get(3)?,
            lane_id: r.get(4)?,
            status: r.get(5)?,
            kind: r.get(6)?,
            parent_id: r.get(7)?,
            title: r.get(8)?,
            body: r.get(9)?,
            priority: r.get(10)?,
            labels: r.get(11)?,
            agent_ready: r.get(12)?,
            claim_worker_id: r.get(13)?,
            claim_worker_name: r.get(14)?,
            claim_worker_kind: r.get(15)?,
            claimed_at: r.get(16)?,
            lease_expires_at: r.get(17)?,
            claim_token: r.get(18)?,
            version: r.get(19)?,
            created_at: r.get(20)?,
            updated_at: r.get(21)?,
            blocked_by: r.get(22)?,
            open_blockers: r.get(23)?,
        })
    }
}

impl CommentRow {
    pub(crate) fn from_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            item_id: r.get(1)?,
            author_id: r.get(2)?,
            author_name: r.get(3)?,
            author_kind: r.get(4)?,
            kind: r.get(5)?,
            body: r.get(6)?,
            created_at: r.get(7)?,
        })
    }
}
