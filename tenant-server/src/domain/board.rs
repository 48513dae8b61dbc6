//! Boards and lanes: their settings, and parsing requests into values that
//! cannot be invalid.

use super::auth::WorkerKind;
use super::validate::{self, FieldErrors};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LaneRole {
    Backlog,
    Ready,
    InProgress,
    Review,
    Blocked,
    Done,
}

impl LaneRole {
    pub const ALL: [LaneRole; 6] = [
        Self::Backlog,
        Self::Ready,
        Self::InProgress,
        Self::Review,
        Self::Blocked,
        Self::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backlog => "backlog",
            Self::Ready => "ready",
            Self::InProgress => "in_progress",
            Self::Review => "review",
            Self::Blocked => "blocked",
            Self::Done => "done",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == value)
    }

    /// Items in these lanes can be claimed (if otherwise free).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Backlog | Self::Ready)
    }

    /// Moving into these lanes hands the work on: the claim ends.
    pub fn ends_claim(self) -> bool {
        matches!(self, Self::Review | Self::Blocked | Self::Done)
    }
}

/// Which kind of worker may move items into a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Who {
    Any,
    Humans,
    Agents,
}

impl Who {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Humans => "humans",
            Self::Agents => "agents",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Any, Self::Humans, Self::Agents]
            .into_iter()
            .find(|who| who.as_str() == value)
    }

    pub fn admits(self, kind: WorkerKind) -> bool {
        match self {
            Self::Any => true,
            Self::Humans => kind == WorkerKind::Human,
            Self::Agents => kind == WorkerKind::Agent,
        }
    }
}

pub const DEFAULT_CLAIM_LIMIT: i64 = 3;
pub const DEFAULT_AGENT_LEASE_SECONDS: i64 = 1800;
pub const DEFAULT_HUMAN_LEASE_SECONDS: i64 = 259_200;
const MAX_LEASE_SECONDS: i64 = 365 * 24 * 3600;
const MAX_CLAIM_LIMIT: i64 = 1000;
const MAX_WIP_LIMIT: i64 = 100_000;

/// The lanes a new board starts with: (name, role, wip_limit).
pub const DEFAULT_LANES: [(&str, LaneRole, Option<i64>); 6] = [
    ("Backlog", LaneRole::Backlog, None),
    ("Ready", LaneRole::Ready, None),
    ("In Progress", LaneRole::InProgress, Some(5)),
    ("Review", LaneRole::Review, None),
    ("Blocked", LaneRole::Blocked, None),
    ("Done", LaneRole::Done, None),
];

/// The settings a board's queue rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRules {
    pub locked: bool,
    pub claim_limit: i64,
    pub agent_lease_seconds: i64,
    pub human_lease_seconds: i64,
    pub agents_need_ready: bool,
}

impl BoardRules {
    pub fn lease_ms(&self, kind: WorkerKind) -> i64 {
        let seconds = match kind {
            WorkerKind::Agent => self.agent_lease_seconds,
            WorkerKind::Human => self.human_lease_seconds,
        };
        seconds * 1000
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBoard {
    pub name: String,
    pub key: String,
}

impl NewBoard {
    pub fn parse(name: &str, key: &str) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = validate::text(&mut errors, "name", name, 1, 100);
        let key = key.trim().to_owned();
        let key_ok = (2..=10).contains(&key.len())
            && key.starts_with(|c: char| c.is_ascii_uppercase())
            && key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !key_ok {
            errors.add(
                "key",
                "must be 2 to 10 characters: upper-case letters and digits, starting with a letter",
            );
        }
        errors.into_result()?;
        Ok(Self { name, key })
    }
}

/// A validated change to a board's settings; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardPatch {
    pub name: Option<String>,
    pub locked: Option<bool>,
    pub claim_limit: Option<i64>,
    pub agent_lease_seconds: Option<i64>,
    pub human_lease_seconds: Option<i64>,
    pub agents_need_ready: Option<bool>,
}

impl BoardPatch {
    pub fn parse(
        name: Option<&str>,
        locked: Option<bool>,
        claim_limit: Option<i64>,
        agent_lease_seconds: Option<i64>,
        human_lease_seconds: Option<i64>,
        agents_need_ready: Option<bool>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = name.map(|n| validate::text(&mut errors, "name", n, 1, 100));
        let claim_limit =
            claim_limit.map(|v| validate::range(&mut errors, "claim_limit", v, 1, MAX_CLAIM_LIMIT));
        let agent_lease_seconds = agent_lease_seconds
            .map(|v| validate::range(&mut errors, "agent_lease_seconds", v, 1, MAX_LEASE_SECONDS));
        let human_lease_seconds = human_lease_seconds
            .map(|v| validate::range(&mut errors, "human_lease_seconds", v, 1, MAX_LEASE_SECONDS));
        errors.into_result()?;
        Ok(Self {
            name,
            locked,
            claim_limit,
            agent_lease_seconds,
            human_lease_seconds,
            agents_need_ready,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLane {
    pub name: String,
    pub role: LaneRole,
    pub position: Option<i64>,
    pub wip_limit: Option<i64>,
    pub who: Who,
}

pub fn parse_wip_limit(errors: &mut FieldErrors, value: Option<i64>) -> Option<i64> {
    value.map(|v| validate::range(errors, "wip_limit", v, 0, MAX_WIP_LIMIT))
}

impl NewLane {
    pub fn parse(
        name: &str,
        role: LaneRole,
        position: Option<i64>,
        wip_limit: Option<i64>,
        who: Option<Who>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = validate::text(&mut errors, "name", name, 1, 100);
        let position = position.map(|p| validate::range(&mut errors, "position", p, 0, 1000));
        let wip_limit = parse_wip_limit(&mut errors, wip_limit);
        errors.into_result()?;
        Ok(Self {
            name,
            role,
            position,
            wip_limit,
            who: who.unwrap_or(Who::Any),
        })
    }
}

/// A lane change; `wip_limit: Some(None)` removes the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LanePatch {
    pub name: Option<String>,
    pub role: Option<LaneRole>,
    pub position: Option<i64>,
    pub wip_limit: Option<Option<i64>>,
    pub who: Option<Who>,
}

impl LanePatch {
    pub fn parse(
        name: Option<&str>,
        role: Option<LaneRole>,
        position: Option<i64>,
        wip_limit: Option<Option<i64>>,
        who: Option<Who>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = name.map(|n| validate::text(&mut errors, "name", n, 1, 100));
        let position = position.map(|p| validate::range(&mut errors, "position", p, 0, 1000));
        let wip_limit = wip_limit.map(|w| parse_wip_limit(&mut errors, w));
        errors.into_result()?;
        Ok(Self {
            name,
            role,
            position,
            wip_limit,
            who,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_keys_are_short_upper_case_codes() {
        assert!(NewBoard::parse("Core", "CORE").is_ok());
        assert!(NewBoard::parse("Core", "C2").is_ok());
        for bad in ["core", "C", "2CORE", "TOOLONGKEY1", "CO-RE", ""] {
            assert!(
                NewBoard::parse("Core", bad).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn who_admits_by_kind() {
        assert!(Who::Humans.admits(WorkerKind::Human));
        assert!(!Who::Humans.admits(WorkerKind::Agent));
        assert!(Who::Any.admits(WorkerKind::Agent));
    }

    #[test]
    fn out_of_range_settings_are_named_per_field() {
        let err = BoardPatch::parse(Some(""), None, Some(0), Some(-5), None, None).unwrap_err();
        let fields: Vec<_> = err.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["agent_lease_seconds", "claim_limit", "name"]);
    }
}
