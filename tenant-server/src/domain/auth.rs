//! Who is asking and what they may do: worker kinds, scopes, and the
//! board-confinement rule ("an object of another board does not exist").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerKind {
    Human,
    Agent,
}

impl WorkerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Agent => "agent",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "human" => Some(Self::Human),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

/// Scopes are ordered: each includes the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Scope {
    #[serde(rename = "queue:read")]
    QueueRead,
    #[serde(rename = "queue:write")]
    QueueWrite,
    #[serde(rename = "board:admin")]
    BoardAdmin,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Self::QueueRead,
        Self::QueueWrite,
        Self::BoardAdmin,
        Self::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueRead => "queue:read",
            Self::QueueWrite => "queue:write",
            Self::BoardAdmin => "board:admin",
            Self::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == value)
    }

    /// The highest of a token's scopes decides what it may do.
    pub fn highest(scopes: &[Scope]) -> Option<Scope> {
        scopes.iter().copied().max()
    }
}

/// The caller of a request: one token acting as one worker.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: i64,
    pub worker_id: i64,
    pub worker_name: String,
    pub worker_kind: WorkerKind,
    pub scopes: Vec<Scope>,
    /// `Some(board)` confines the token to that board.
    pub board_id: Option<i64>,
}

impl Principal {
    pub fn level(&self) -> Scope {
        Scope::highest(&self.scopes).unwrap_or(Scope::QueueRead)
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.level() >= scope
    }

    /// Whether objects of `board_id` exist for this caller at all.
    pub fn can_see_board(&self, board_id: i64) -> bool {
        self.board_id.is_none_or(|own| own == board_id)
    }

    /// Global admin: every board, token management for all.
    pub fn is_admin(&self) -> bool {
        self.has(Scope::Admin) && self.board_id.is_none()
    }

    pub fn is_board_admin(&self, board_id: i64) -> bool {
        self.can_see_board(board_id) && self.has(Scope::BoardAdmin)
    }

    pub fn worker_ref(&self) -> super::error::WorkerRef {
        super::error::WorkerRef {
            id: self.worker_id,
            name: self.worker_name.clone(),
            kind: self.worker_kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: Vec<Scope>, board_id: Option<i64>) -> Principal {
        Principal {
            token_id: 1,
            worker_id: 1,
            worker_name: "w".into(),
            worker_kind: WorkerKind::Agent,
            scopes,
            board_id,
        }
    }

    #[test]
    fn each_scope_includes_the_ones_before_it() {
        let p = principal(vec![Scope::BoardAdmin], None);
        assert!(p.has(Scope::QueueRead));
        assert!(p.has(Scope::QueueWrite));
        assert!(p.has(Scope::BoardAdmin));
        assert!(!p.has(Scope::Admin));
    }

    #[test]
    fn a_confined_admin_token_is_not_a_global_admin() {
        let p = principal(vec![Scope::Admin], Some(2));
        assert!(!p.is_admin());
        assert!(p.is_board_admin(2));
        assert!(!p.is_board_admin(3));
        assert!(!p.can_see_board(3));
    }
}
