//! Boards and lanes: their settings, and parsing requests into values that
//! cannot be invalid.

use super::auth::WorkerKind;
use super::limits::{
    BOARD_KEY_MAX, BOARD_KEY_MIN, CLAIM_LIMIT_MAX, CLAIM_LIMIT_MIN, LANE_POSITION_MAX,
    LANE_POSITION_MIN, LANES_PER_BOARD_MAX, LEASE_SECONDS_MAX, LEASE_SECONDS_MIN, NAME_MAX,
    WIP_LIMIT_MAX, WIP_LIMIT_MIN,
};
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
        let name = validate::line(&mut errors, "name", name, NAME_MAX);
        let key = key.to_owned();
        // Exactly BOARD_KEY_PATTERN, which the OpenAPI document states.
        let key_ok = (BOARD_KEY_MIN..=BOARD_KEY_MAX).contains(&key.len())
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
        let name = name.map(|n| validate::line(&mut errors, "name", n, NAME_MAX));
        let claim_limit = claim_limit.map(|v| {
            validate::range(
                &mut errors,
                "claim_limit",
                v,
                CLAIM_LIMIT_MIN,
                CLAIM_LIMIT_MAX,
            )
        });
        let agent_lease_seconds = agent_lease_seconds.map(|v| {
            validate::range(
                &mut errors,
                "agent_lease_seconds",
                v,
                LEASE_SECONDS_MIN,
                LEASE_SECONDS_MAX,
            )
        });
        let human_lease_seconds = human_lease_seconds.map(|v| {
            validate::range(
                &mut errors,
                "human_lease_seconds",
                v,
                LEASE_SECONDS_MIN,
                LEASE_SECONDS_MAX,
            )
        });
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

impl BoardPatch {
    /// The board's name and rules once this patch is applied.
    pub fn apply(&self, name: &str, rules: &BoardRules) -> (String, BoardRules) {
        (
            self.name.clone().unwrap_or_else(|| name.to_owned()),
            BoardRules {
                locked: self.locked.unwrap_or(rules.locked),
                claim_limit: self.claim_limit.unwrap_or(rules.claim_limit),
                agent_lease_seconds: self
                    .agent_lease_seconds
                    .unwrap_or(rules.agent_lease_seconds),
                human_lease_seconds: self
                    .human_lease_seconds
                    .unwrap_or(rules.human_lease_seconds),
                agents_need_ready: self.agents_need_ready.unwrap_or(rules.agents_need_ready),
            },
        )
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
    value.map(|v| validate::range(errors, "wip_limit", v, WIP_LIMIT_MIN, WIP_LIMIT_MAX))
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
        let name = validate::line(&mut errors, "name", name, NAME_MAX);
        let position = position.map(|p| {
            validate::range(
                &mut errors,
                "position",
                p,
                LANE_POSITION_MIN,
                LANE_POSITION_MAX,
            )
        });
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

/// Whether a lane named `name` may join (or, with `renaming`, be renamed
/// on) a board whose lanes are `existing` (id, name): at most
/// [`LANES_PER_BOARD_MAX`] lanes, names unique regardless of case, so each
/// lane is one series in the metrics and one column on the dashboard.
pub fn check_lane_fits(
    existing: &[(i64, &str)],
    name: &str,
    renaming: Option<i64>,
) -> Result<(), super::DomainError> {
    if renaming.is_none() && existing.len() as i64 >= LANES_PER_BOARD_MAX {
        return Err(super::DomainError::validation(
            "name",
            format!("the board already has the most lanes allowed ({LANES_PER_BOARD_MAX})"),
        ));
    }
    let taken = existing
        .iter()
        .any(|(id, other)| Some(*id) != renaming && other.to_lowercase() == name.to_lowercase());
    if taken {
        return Err(super::DomainError::validation(
            "name",
            format!("already used by another lane of this board: {name:?}"),
        ));
    }
    Ok(())
}

/// A board's key is taken by another board: refused.
pub fn check_key_free(taken: bool) -> Result<(), super::DomainError> {
    if taken {
        return Err(super::DomainError::validation(
            "key",
            "already used by another board",
        ));
    }
    Ok(())
}

/// The board's lane ids in their new order once `lane` sits at the 0-based
/// `position` among the others (past the end, or none: last). Positions
/// are then rewritten as 0..n in this order, so they stay dense.
pub fn place_lane(order: &[i64], lane: i64, position: Option<i64>) -> Vec<i64> {
    let mut placed: Vec<i64> = order.iter().copied().filter(|id| *id != lane).collect();
    let at = position.map_or(placed.len(), |p| {
        usize::try_from(p).unwrap_or(0).min(placed.len())
    });
    placed.insert(at, lane);
    placed
}

/// A lane may be removed only when empty: its items would otherwise lose
/// their place (and their status) on the board.
pub fn check_lane_removable(items: i64) -> Result<(), super::DomainError> {
    if items > 0 {
        return Err(super::DomainError::validation(
            "lane",
            format!("holds {items} item(s); move them out first"),
        ));
    }
    Ok(())
}

/// A lane's own settings, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneSettings {
    pub name: String,
    pub role: LaneRole,
    pub wip_limit: Option<i64>,
    pub who: Who,
}

/// What a lane edit comes to: the settings to write, whether its items'
/// status must follow a new role, and the board's new lane order (if the
/// lane moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneChange {
    pub settings: LaneSettings,
    pub restatus_items: bool,
    pub order: Option<Vec<i64>>,
}

/// Decides a lane edit. `board_lanes` are the board's lanes (id, name) in
/// position order, this one included.
pub fn plan_lane_change(
    lane_id: i64,
    current: &LaneSettings,
    board_lanes: &[(i64, &str)],
    patch: &LanePatch,
) -> Result<LaneChange, super::DomainError> {
    if let Some(name) = &patch.name {
        check_lane_fits(board_lanes, name, Some(lane_id))?;
    }
    let settings = LaneSettings {
        name: patch.name.clone().unwrap_or_else(|| current.name.clone()),
        role: patch.role.unwrap_or(current.role),
        wip_limit: patch.wip_limit.unwrap_or(current.wip_limit),
        who: patch.who.unwrap_or(current.who),
    };
    let order = patch.position.map(|position| {
        let ids: Vec<i64> = board_lanes.iter().map(|(id, _)| *id).collect();
        place_lane(&ids, lane_id, Some(position))
    });
    Ok(LaneChange {
        restatus_items: settings.role != current.role,
        settings,
        order,
    })
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
        let name = name.map(|n| validate::line(&mut errors, "name", n, NAME_MAX));
        let position = position.map(|p| {
            validate::range(
                &mut errors,
                "position",
                p,
                LANE_POSITION_MIN,
                LANE_POSITION_MAX,
            )
        });
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
    fn lanes_are_capped_and_unique_by_name_regardless_of_case() {
        let lanes = [(1, "Ready"), (2, "Done")];
        assert!(check_lane_fits(&lanes, "QA", None).is_ok());
        assert!(check_lane_fits(&lanes, "ready", None).is_err());
        assert!(
            check_lane_fits(&lanes, "READY", Some(1)).is_ok(),
            "renaming itself"
        );
        assert!(check_lane_fits(&lanes, "Done", Some(1)).is_err());
        let names: Vec<String> = (0..LANES_PER_BOARD_MAX).map(|i| format!("L{i}")).collect();
        let full: Vec<(i64, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as i64, n.as_str()))
            .collect();
        assert!(check_lane_fits(&full, "one more", None).is_err());
        assert!(check_lane_fits(&full, "L3", Some(3)).is_ok());
    }

    #[test]
    fn a_placed_lane_lands_at_its_position_clamped_to_the_end() {
        assert_eq!(place_lane(&[1, 2, 3], 9, None), [1, 2, 3, 9]);
        assert_eq!(place_lane(&[1, 2, 3], 9, Some(0)), [9, 1, 2, 3]);
        assert_eq!(place_lane(&[1, 2, 3], 9, Some(99)), [1, 2, 3, 9]);
        // Moving an existing lane: it is taken out first.
        assert_eq!(place_lane(&[1, 2, 3], 1, Some(2)), [2, 3, 1]);
        assert_eq!(place_lane(&[1, 2, 3], 3, Some(0)), [3, 1, 2]);
        assert_eq!(place_lane(&[1, 2, 3], 2, Some(-4)), [2, 1, 3]);
    }

    #[test]
    fn only_an_empty_lane_is_removable() {
        assert!(check_lane_removable(0).is_ok());
        assert!(check_lane_removable(1).is_err());
    }

    #[test]
    fn a_lane_edit_keeps_what_it_does_not_name_and_restatuses_on_a_new_role() {
        let current = LaneSettings {
            name: "Doing".into(),
            role: LaneRole::InProgress,
            wip_limit: Some(3),
            who: Who::Any,
        };
        let lanes = [(1, "Ready"), (2, "Doing"), (3, "Done")];
        let rename = LanePatch {
            name: Some("Working".into()),
            ..LanePatch::default()
        };
        let change = plan_lane_change(2, &current, &lanes, &rename).unwrap();
        assert_eq!(change.settings.name, "Working");
        assert_eq!(change.settings.wip_limit, Some(3));
        assert!(!change.restatus_items);
        assert_eq!(change.order, None);
        let taken = LanePatch {
            name: Some("done".into()),
            ..LanePatch::default()
        };
        assert!(plan_lane_change(2, &current, &lanes, &taken).is_err());
        let to_review = LanePatch {
            role: Some(LaneRole::Review),
            wip_limit: Some(None),
            position: Some(0),
            ..LanePatch::default()
        };
        let change = plan_lane_change(2, &current, &lanes, &to_review).unwrap();
        assert!(change.restatus_items);
        assert_eq!(change.settings.wip_limit, None);
        assert_eq!(change.order, Some(vec![2, 1, 3]));
    }

    #[test]
    fn a_board_patch_changes_only_what_it_names() {
        let rules = BoardRules {
            locked: false,
            claim_limit: 3,
            agent_lease_seconds: 60,
            human_lease_seconds: 600,
            agents_need_ready: true,
        };
        let patch = BoardPatch {
            locked: Some(true),
            claim_limit: Some(5),
            ..BoardPatch::default()
        };
        let (name, after) = patch.apply("Core", &rules);
        assert_eq!(name, "Core");
        assert_eq!(
            after,
            BoardRules {
                locked: true,
                claim_limit: 5,
                ..rules.clone()
            }
        );
        assert!(check_key_free(true).is_err());
        assert!(check_key_free(false).is_ok());
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
