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

/// Only an unconfined admin creates boards: a board-confined token could
/// not even see the board it made.
pub fn check_may_create_board(caller: &Principal) -> Result<(), super::DomainError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(super::DomainError::Forbidden(
            "creating boards needs an unconfined admin token".into(),
        ))
    }
}

/// Who may list and revoke a token: the instance admin, or a board admin
/// of the board the token is confined to (an unconfined token is the
/// instance admin's alone).
pub fn may_manage_token(caller: &Principal, token_board: Option<i64>) -> bool {
    caller.is_admin()
        || token_board.is_some_and(|b| caller.is_board_admin(b) && caller.board_id.is_some())
}

/// A validated request to mint a token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub worker_name: String,
    pub worker_kind: WorkerKind,
    pub scopes: Vec<Scope>,
    pub board_id: Option<i64>,
    pub expires_at_ms: Option<i64>,
}

impl NewToken {
    pub fn parse(
        name: &str,
        worker_name: &str,
        worker_kind: WorkerKind,
        scopes: Vec<Scope>,
        board_id: Option<i64>,
        expires_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Self, super::FieldErrors> {
        use super::limits::NAME_MAX;
        use super::validate;
        let mut errors = super::FieldErrors::new();
        let name = validate::line(&mut errors, "name", name, NAME_MAX);
        let worker_name = validate::line(&mut errors, "worker.name", worker_name, NAME_MAX);
        if scopes.is_empty() {
            errors.add("scopes", "name at least one scope");
        }
        if expires_at_ms.is_some_and(|at| at <= now_ms) {
            errors.add("expires_at", "must be in the future");
        }
        errors.into_result()?;
        Ok(Self {
            name,
            worker_name,
            worker_kind,
            scopes,
            board_id,
            expires_at_ms,
        })
    }
}

/// The worker a token names, as stored (`kind: None`: not a kind this
/// server knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownWorker {
    pub id: i64,
    pub kind: Option<WorkerKind>,
    pub home_board: Option<i64>,
}

/// What a mint comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintPlan {
    /// The worker the token acts as; `None`: create it.
    pub worker: Option<i64>,
    /// The board to record as the worker's home (a board admin created it).
    pub home_board: Option<i64>,
}

/// Decides a mint: who may mint it (`check_may_mint`; no minter is local
/// access to the data directory), that its board exists, and that a
/// worker name is one identity (an existing name of another kind is
/// refused).
pub fn plan_mint(
    minter: Option<&Principal>,
    token: &NewToken,
    board_exists: bool,
    known: Option<KnownWorker>,
) -> Result<MintPlan, super::DomainError> {
    let home_board = match minter {
        None => None,
        Some(minter) => {
            let target = match known {
                None => MintTarget::NewWorker,
                Some(w) => MintTarget::Existing {
                    worker_id: w.id,
                    home_board: w.home_board,
                },
            };
            check_may_mint(minter, token.board_id, &token.scopes, target)?
        }
    };
    if token.board_id.is_some() && !board_exists {
        return Err(super::DomainError::validation("board_id", "no such board"));
    }
    match known {
        Some(w) if w.kind == Some(token.worker_kind) => Ok(MintPlan {
            worker: Some(w.id),
            home_board,
        }),
        Some(w) => Err(super::DomainError::validation(
            "worker.kind",
            format!(
                "worker {:?} exists and is a {}",
                token.worker_name,
                w.kind.map_or("worker of another kind", WorkerKind::as_str)
            ),
        )),
        None => Ok(MintPlan {
            worker: None,
            home_board,
        }),
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

    fn token(board_id: Option<i64>, kind: WorkerKind) -> NewToken {
        NewToken::parse("t", "bot", kind, vec![Scope::QueueWrite], board_id, None, 0).unwrap()
    }

    #[test]
    fn a_mint_checks_the_minter_then_the_board_then_the_worker_kind() {
        let mut board_admin = principal(vec![Scope::BoardAdmin], Some(2));
        board_admin.worker_id = 7;
        let agent = token(Some(2), WorkerKind::Agent);
        // A new worker minted by a board admin gets that board as home.
        assert_eq!(
            plan_mint(Some(&board_admin), &agent, true, None),
            Ok(MintPlan {
                worker: None,
                home_board: Some(2)
            })
        );
        // Forbidden before "no such board": a refusal leaks nothing.
        let other = token(Some(3), WorkerKind::Agent);
        assert!(matches!(
            plan_mint(Some(&board_admin), &other, false, None),
            Err(crate::domain::DomainError::Forbidden(_))
        ));
        assert!(matches!(
            plan_mint(None, &other, false, None),
            Err(crate::domain::DomainError::Validation(_))
        ));
        let known = KnownWorker {
            id: 8,
            kind: Some(WorkerKind::Human),
            home_board: Some(2),
        };
        assert!(
            plan_mint(Some(&board_admin), &agent, true, Some(known)).is_err(),
            "a name is one identity: another kind is refused"
        );
        let human = token(Some(2), WorkerKind::Human);
        assert_eq!(
            plan_mint(Some(&board_admin), &human, true, Some(known)),
            Ok(MintPlan {
                worker: Some(8),
                home_board: None
            })
        );
        // Local access (the CLI) mints for anyone, unconfined included.
        let unconfined = token(None, WorkerKind::Human);
        assert_eq!(
            plan_mint(None, &unconfined, false, Some(known)),
            Ok(MintPlan {
                worker: Some(8),
                home_board: None
            })
        );
    }

    #[test]
    fn tokens_are_managed_by_the_admin_or_their_own_board_admins() {
        let admin = principal(vec![Scope::Admin], None);
        let board_admin = principal(vec![Scope::BoardAdmin], Some(2));
        let unconfined_board_admin = principal(vec![Scope::BoardAdmin], None);
        assert!(may_manage_token(&admin, None));
        assert!(may_manage_token(&admin, Some(3)));
        assert!(may_manage_token(&board_admin, Some(2)));
        assert!(!may_manage_token(&board_admin, Some(3)));
        assert!(!may_manage_token(&board_admin, None));
        assert!(!may_manage_token(&unconfined_board_admin, Some(2)));
        assert!(check_may_create_board(&admin).is_ok());
        assert!(check_may_create_board(&board_admin).is_err());
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
