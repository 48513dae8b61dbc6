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

/// The worker a token is being minted for, as the mint rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintTarget {
    /// No worker has this name yet: the mint creates it.
    NewWorker,
    /// An existing worker and the board it belongs to (`None`: the
    /// instance admin's to manage).
    Existing {
        worker_id: i64,
        home_board: Option<i64>,
    },
}

/// Who may mint which token. The instance admin: anything. A board admin:
/// only tokens confined to its own board, never above `board:admin`, and
/// only for a new worker, a worker of that board (one a board admin of it
/// created), or itself; never for anyone else's worker, since the token
/// would let it act as them. Returns the home board to record for a worker
/// the mint creates.
pub fn check_may_mint(
    minter: &Principal,
    board_id: Option<i64>,
    scopes: &[Scope],
    target: MintTarget,
) -> Result<Option<i64>, super::DomainError> {
    use super::DomainError::Forbidden;
    if minter.is_admin() {
        return Ok(None);
    }
    if !minter.has(Scope::BoardAdmin) {
        return Err(Forbidden(
            "minting tokens needs the board:admin scope".into(),
        ));
    }
    let Some(board) = board_id else {
        return Err(Forbidden(
            "a board admin may mint only tokens confined to its board (set board_id)".into(),
        ));
    };
    if !minter.is_board_admin(board) {
        return Err(Forbidden("you are not a board admin of that board".into()));
    }
    if scopes.iter().any(|s| *s > Scope::BoardAdmin) {
        return Err(Forbidden(
            "a board admin cannot grant the admin scope".into(),
        ));
    }
    match target {
        MintTarget::NewWorker => Ok(Some(board)),
        MintTarget::Existing { worker_id, .. } if worker_id == minter.worker_id => Ok(None),
        MintTarget::Existing {
            home_board: Some(home),
            ..
        } if home == board => Ok(None),
        MintTarget::Existing { .. } => Err(Forbidden(
            "that worker belongs to someone else: a board admin may mint tokens only for new workers and workers of its board; ask the instance admin".into(),
        )),
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
    fn board_admins_mint_only_for_new_workers_their_board_owns_or_themselves() {
        let mut board_admin = principal(vec![Scope::BoardAdmin], Some(2));
        board_admin.worker_id = 7;
        let q = [Scope::QueueWrite];
        let new = MintTarget::NewWorker;
        let own = MintTarget::Existing {
            worker_id: 8,
            home_board: Some(2),
        };
        let other_board = MintTarget::Existing {
            worker_id: 9,
            home_board: Some(3),
        };
        let admins = MintTarget::Existing {
            worker_id: 1,
            home_board: None,
        };
        let itself = MintTarget::Existing {
            worker_id: 7,
            home_board: None,
        };
        assert_eq!(check_may_mint(&board_admin, Some(2), &q, new), Ok(Some(2)));
        assert_eq!(check_may_mint(&board_admin, Some(2), &q, own), Ok(None));
        assert_eq!(check_may_mint(&board_admin, Some(2), &q, itself), Ok(None));
        assert!(check_may_mint(&board_admin, Some(2), &q, other_board).is_err());
        assert!(check_may_mint(&board_admin, Some(2), &q, admins).is_err());
        assert!(check_may_mint(&board_admin, Some(3), &q, new).is_err());
        assert!(check_may_mint(&board_admin, None, &q, new).is_err());
        assert!(check_may_mint(&board_admin, Some(2), &[Scope::Admin], new).is_err());
        let admin = principal(vec![Scope::Admin], None);
        assert_eq!(
            check_may_mint(&admin, None, &[Scope::Admin], admins),
            Ok(None)
        );
        let queue = principal(vec![Scope::QueueWrite], Some(2));
        assert!(check_may_mint(&queue, Some(2), &q, new).is_err());
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
