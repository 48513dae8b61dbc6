//! The queue rules: who may claim, move, release or touch an item, and
//! what happens to the claim. Pure functions over plain values; the
//! `store` calls them inside the command's transaction, so what they
//! decide is what gets written.

use super::auth::WorkerKind;
use super::board::{BoardRules, LaneRole, Who};
use super::error::{DomainError, WorkerRef};

/// The live or recorded claim on an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub worker: WorkerRef,
    pub claimed_at_ms: i64,
    pub lease_expires_at_ms: i64,
    /// Fencing token: grows with every new claim of the item.
    pub token: i64,
}

impl Claim {
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.lease_expires_at_ms > now_ms
    }
}

/// Who is acting, as the rules need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub worker_id: i64,
    pub kind: WorkerKind,
    /// Board admin (or global admin) on the item's board.
    pub is_board_admin: bool,
}

/// What the rules need to know about an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub lane_id: i64,
    pub role: LaneRole,
    pub agent_ready: bool,
    pub claim: Option<Claim>,
    /// How many of its `blocked_by` items are not done.
    pub open_blockers: i64,
}

impl ItemState {
    pub fn live_claim(&self, now_ms: i64) -> Option<&Claim> {
        self.claim.as_ref().filter(|c| c.is_live(now_ms))
    }

    fn live_holder_is(&self, worker_id: i64, now_ms: i64) -> bool {
        self.live_claim(now_ms)
            .is_some_and(|c| c.worker.id == worker_id)
    }
}

/// A lane as a move target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneState {
    pub id: i64,
    pub role: LaneRole,
    pub wip_limit: Option<i64>,
    pub who: Who,
    /// Items currently in the lane.
    pub count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimDecision {
    /// A new claim (the fencing token grows).
    New,
    /// The caller already holds it: renew the lease, keep the token.
    Renew,
}

/// Refuses writes to a locked board by anyone but its admins.
pub fn check_unlocked(actor: &Actor, rules: &BoardRules) -> Result<(), DomainError> {
    if rules.locked && !actor.is_board_admin {
        return Err(DomainError::BoardLocked);
    }
    Ok(())
}

/// `X-Claim-Token`: a holder's write carrying a stale token is refused.
pub fn check_fence(sent: Option<i64>, item: &ItemState) -> Result<(), DomainError> {
    match sent {
        None => Ok(()),
        Some(token) => {
            let current = item.claim.as_ref().map(|c| c.token);
            if current == Some(token) {
                Ok(())
            } else {
                Err(DomainError::LeaseSuperseded { current })
            }
        }
    }
}

/// Why an item is not claimable by `actor` regardless of who holds it.
fn check_claimable(actor: &Actor, rules: &BoardRules, item: &ItemState) -> Result<(), DomainError> {
    if item.open_blockers > 0 {
        return Err(DomainError::NotClaimable(format!(
            "blocked by {} unfinished item(s)",
            item.open_blockers
        )));
    }
    if actor.kind == WorkerKind::Agent && rules.agents_need_ready && !item.agent_ready {
        return Err(DomainError::NotClaimable("not flagged agent-ready".into()));
    }
    Ok(())
}

fn conflict(claim: &Claim) -> DomainError {
    DomainError::ClaimConflict {
        holder: claim.worker.clone(),
        claimed_at_ms: claim.claimed_at_ms,
        lease_expires_at_ms: claim.lease_expires_at_ms,
    }
}

fn check_limit(rules: &BoardRules, held: i64) -> Result<(), DomainError> {
    if held >= rules.claim_limit {
        return Err(DomainError::ClaimLimitReached {
            limit: rules.claim_limit,
            held,
        });
    }
    Ok(())
}

/// `POST /claim`. `held` counts the actor's live claims on the board.
pub fn check_claim(
    actor: &Actor,
    rules: &BoardRules,
    item: &ItemState,
    held: i64,
    now_ms: i64,
) -> Result<ClaimDecision, DomainError> {
    check_unlocked(actor, rules)?;
    if let Some(claim) = item.live_claim(now_ms) {
        return if claim.worker.id == actor.worker_id {
            Ok(ClaimDecision::Renew)
        } else {
            Err(conflict(claim))
        };
    }
    if !item.role.is_open() {
        return Err(DomainError::NotClaimable(format!(
            "items in a {} lane cannot be claimed",
            item.role.as_str()
        )));
    }
    check_claimable(actor, rules, item)?;
    check_limit(rules, held)?;
    Ok(ClaimDecision::New)
}

/// Entering `lane` from another lane: the lane's `who` and WIP limit.
pub fn check_enter_lane(
    actor: &Actor,
    lane: &LaneState,
    from_lane_id: i64,
) -> Result<(), DomainError> {
    if !lane.who.admits(actor.kind) {
        return Err(DomainError::Forbidden(format!(
            "only {} may move items into this lane",
            lane.who.as_str()
        )));
    }
    if lane.id != from_lane_id
        && let Some(limit) = lane.wip_limit
        && lane.count >= limit
    {
        return Err(DomainError::WipLimitReached {
            lane_id: lane.id,
            limit,
        });
    }
    Ok(())
}

/// What a move does to the item's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimEffect {
    Keep,
    /// review, blocked, done: the work is handed on.
    End,
    /// An unclaimed item moved into `in_progress` becomes the mover's.
    ClaimForMover,
}

/// `POST /move`.
pub fn check_move(
    actor: &Actor,
    rules: &BoardRules,
    item: &ItemState,
    to: &LaneState,
    held: i64,
    now_ms: i64,
) -> Result<ClaimEffect, DomainError> {
    check_unlocked(actor, rules)?;
    let live = item.live_claim(now_ms);
    if let Some(claim) = live
        && claim.worker.id != actor.worker_id
        && !actor.is_board_admin
    {
        return Err(DomainError::NotHolder(format!(
            "{} holds this item; only the holder or a board admin may move it",
            claim.worker.name
        )));
    }
    check_enter_lane(actor, to, item.lane_id)?;
    if to.role.ends_claim() {
        return Ok(if item.claim.is_some() {
            ClaimEffect::End
        } else {
            ClaimEffect::Keep
        });
    }
    if to.role == LaneRole::InProgress && live.is_none() {
        check_claimable(actor, rules, item)?;
        // `held` counts live claims only; a lapsed claim of the mover's on
        // this item is not among them, so nothing is subtracted.
        check_limit(rules, held)?;
        return Ok(ClaimEffect::ClaimForMover);
    }
    Ok(ClaimEffect::Keep)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseKind {
    Holder,
    /// A board admin releasing someone else's claim.
    Forced,
}

/// `POST /release`: the holder, or a board admin. Works on a locked board.
pub fn check_release(actor: &Actor, item: &ItemState) -> Result<ReleaseKind, DomainError> {
    match &item.claim {
        None => Err(DomainError::NotHolder("the item is not claimed".into())),
        Some(claim) if claim.worker.id == actor.worker_id => Ok(ReleaseKind::Holder),
        Some(_) if actor.is_board_admin => Ok(ReleaseKind::Forced),
        Some(claim) => Err(DomainError::NotHolder(format!(
            "{} holds this item",
            claim.worker.name
        ))),
    }
}

/// `POST /heartbeat`: only the live holder. A lapsed lease is lost even
/// before the reaper clears it: reviving it could exceed the claim limit.
pub fn check_heartbeat(actor: &Actor, item: &ItemState, now_ms: i64) -> Result<(), DomainError> {
    match &item.claim {
        Some(claim) if claim.worker.id == actor.worker_id && claim.is_live(now_ms) => Ok(()),
        Some(claim) if claim.worker.id == actor.worker_id => Err(DomainError::NotHolder(
            "the lease expired; claim the item again".into(),
        )),
        Some(claim) => Err(DomainError::NotHolder(format!(
            "the claim was lost: {} holds this item now",
            claim.worker.name
        ))),
        None => Err(DomainError::NotHolder(
            "the item is not claimed (lease expired or released)".into(),
        )),
    }
}

/// Edits and comments: allowed to any writer, refused on a locked board.
/// Returns whether the actor is the live holder (its lease is then renewed).
pub fn check_holder_write(
    actor: &Actor,
    rules: &BoardRules,
    item: &ItemState,
    fence: Option<i64>,
    now_ms: i64,
) -> Result<bool, DomainError> {
    check_unlocked(actor, rules)?;
    check_fence(fence, item)?;
    Ok(item.live_holder_is(actor.worker_id, now_ms))
}

/// Where a released or expired item goes: out of `in_progress` back to
/// the first ready lane (else backlog), so it really is claimable again.
pub fn lane_after_release(current: LaneRole) -> Option<[LaneRole; 2]> {
    (current == LaneRole::InProgress).then_some([LaneRole::Ready, LaneRole::Backlog])
}

/// The claimability predicate: may a worker of `kind` take this item as a
/// new claim now? (Lock and claim limit are about the worker, checked
/// apart.) Its SQL twin is `store::queue::candidate_sql`; a property test
/// holds the two equal.
pub fn claimable(rules: &BoardRules, kind: WorkerKind, item: &ItemState, now_ms: i64) -> bool {
    item.role.is_open()
        && item.live_claim(now_ms).is_none()
        && item.open_blockers == 0
        && (kind != WorkerKind::Agent || !rules.agents_need_ready || item.agent_ready)
}

/// Whether an item in this state can be claimed by agents right now
/// (drives the `item.agent-ready` event).
pub fn claimable_by_agents(
    rules: &BoardRules,
    role: LaneRole,
    agent_ready: bool,
    open_blockers: i64,
    claimed: bool,
) -> bool {
    role.is_open() && !claimed && open_blockers == 0 && (agent_ready || !rules.agents_need_ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> BoardRules {
        BoardRules {
            locked: false,
            claim_limit: 2,
            agent_lease_seconds: 60,
            human_lease_seconds: 600,
            agents_need_ready: true,
        }
    }

    fn agent(id: i64) -> Actor {
        Actor {
            worker_id: id,
            kind: WorkerKind::Agent,
            is_board_admin: false,
        }
    }

    fn human(id: i64) -> Actor {
        Actor {
            worker_id: id,
            kind: WorkerKind::Human,
            is_board_admin: false,
        }
    }

    fn claim_by(id: i64, expires: i64) -> Claim {
        Claim {
            worker: WorkerRef {
                id,
                name: format!("w{id}"),
                kind: WorkerKind::Agent,
            },
            claimed_at_ms: 0,
            lease_expires_at_ms: expires,
            token: 7,
        }
    }

    fn ready_item() -> ItemState {
        ItemState {
            lane_id: 2,
            role: LaneRole::Ready,
            agent_ready: true,
            claim: None,
            open_blockers: 0,
        }
    }

    #[test]
    fn second_claimer_gets_a_conflict_naming_the_holder() {
        let item = ItemState {
            claim: Some(claim_by(1, 100)),
            ..ready_item()
        };
        match check_claim(&agent(2), &rules(), &item, 0, 50) {
            Err(DomainError::ClaimConflict {
                holder,
                lease_expires_at_ms,
                ..
            }) => {
                assert_eq!(holder.id, 1);
                assert_eq!(lease_expires_at_ms, 100);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            check_claim(&agent(1), &rules(), &item, 1, 50),
            Ok(ClaimDecision::Renew)
        );
    }

    #[test]
    fn an_expired_lease_is_free_to_take() {
        let item = ItemState {
            claim: Some(claim_by(1, 100)),
            ..ready_item()
        };
        assert_eq!(
            check_claim(&agent(2), &rules(), &item, 0, 100),
            Ok(ClaimDecision::New)
        );
    }

    #[test]
    fn agents_need_the_ready_flag_but_humans_do_not() {
        let item = ItemState {
            agent_ready: false,
            ..ready_item()
        };
        assert!(matches!(
            check_claim(&agent(1), &rules(), &item, 0, 0),
            Err(DomainError::NotClaimable(_))
        ));
        assert_eq!(
            check_claim(&human(1), &rules(), &item, 0, 0),
            Ok(ClaimDecision::New)
        );
    }

    #[test]
    fn unresolved_dependencies_and_closed_lanes_are_not_claimable() {
        let blocked = ItemState {
            open_blockers: 1,
            ..ready_item()
        };
        assert!(matches!(
            check_claim(&agent(1), &rules(), &blocked, 0, 0),
            Err(DomainError::NotClaimable(_))
        ));
        let done = ItemState {
            role: LaneRole::Done,
            ..ready_item()
        };
        assert!(matches!(
            check_claim(&agent(1), &rules(), &done, 0, 0),
            Err(DomainError::NotClaimable(_))
        ));
    }

    #[test]
    fn the_claim_limit_counts_held_claims() {
        assert_eq!(
            check_claim(&agent(1), &rules(), &ready_item(), 2, 0),
            Err(DomainError::ClaimLimitReached { limit: 2, held: 2 })
        );
    }

    #[test]
    fn a_locked_board_refuses_claims_but_not_releases() {
        let locked = BoardRules {
            locked: true,
            ..rules()
        };
        assert_eq!(
            check_claim(&agent(1), &locked, &ready_item(), 0, 0),
            Err(DomainError::BoardLocked)
        );
        let held = ItemState {
            claim: Some(claim_by(1, 100)),
            ..ready_item()
        };
        assert_eq!(check_release(&agent(1), &held), Ok(ReleaseKind::Holder));
        let admin = Actor {
            is_board_admin: true,
            ..agent(3)
        };
        assert_eq!(
            check_claim(&admin, &locked, &ready_item(), 0, 0),
            Ok(ClaimDecision::New)
        );
    }

    #[test]
    fn review_gate_forbids_agents_by_kind_even_admins() {
        let done = LaneState {
            id: 6,
            role: LaneRole::Done,
            wip_limit: None,
            who: Who::Humans,
            count: 0,
        };
        let admin_agent = Actor {
            is_board_admin: true,
            ..agent(1)
        };
        assert!(matches!(
            check_move(&admin_agent, &rules(), &ready_item(), &done, 0, 0),
            Err(DomainError::Forbidden(_))
        ));
        assert!(check_move(&human(2), &rules(), &ready_item(), &done, 0, 0).is_ok());
    }

    #[test]
    fn wip_limit_refuses_entry_but_not_moves_within_the_lane() {
        let lane = LaneState {
            id: 3,
            role: LaneRole::InProgress,
            wip_limit: Some(1),
            who: Who::Any,
            count: 1,
        };
        assert_eq!(
            check_move(&agent(1), &rules(), &ready_item(), &lane, 0, 0),
            Err(DomainError::WipLimitReached {
                lane_id: 3,
                limit: 1
            })
        );
        let inside = ItemState {
            lane_id: 3,
            role: LaneRole::InProgress,
            claim: Some(claim_by(1, 10)),
            ..ready_item()
        };
        assert_eq!(
            check_move(&agent(1), &rules(), &inside, &lane, 1, 0),
            Ok(ClaimEffect::Keep)
        );
    }

    #[test]
    fn only_the_holder_or_an_admin_moves_a_claimed_item() {
        let item = ItemState {
            claim: Some(claim_by(1, 100)),
            ..ready_item()
        };
        let review = LaneState {
            id: 4,
            role: LaneRole::Review,
            wip_limit: None,
            who: Who::Any,
            count: 0,
        };
        assert!(matches!(
            check_move(&agent(2), &rules(), &item, &review, 0, 0),
            Err(DomainError::NotHolder(_))
        ));
        assert_eq!(
            check_move(&agent(1), &rules(), &item, &review, 1, 0),
            Ok(ClaimEffect::End)
        );
    }

    #[test]
    fn moving_an_item_with_ones_own_lapsed_claim_into_progress_respects_the_limit() {
        // Found by the property test: the lapsed claim is not in `held`.
        let lapsed_own = ItemState {
            claim: Some(claim_by(1, 10)),
            ..ready_item()
        };
        let in_progress = LaneState {
            id: 3,
            role: LaneRole::InProgress,
            wip_limit: None,
            who: Who::Any,
            count: 0,
        };
        assert_eq!(
            check_move(&agent(1), &rules(), &lapsed_own, &in_progress, 2, 20),
            Err(DomainError::ClaimLimitReached { limit: 2, held: 2 })
        );
        assert_eq!(
            check_move(&agent(1), &rules(), &lapsed_own, &in_progress, 1, 20),
            Ok(ClaimEffect::ClaimForMover)
        );
    }

    #[test]
    fn a_stale_fencing_token_is_superseded() {
        let item = ItemState {
            claim: Some(claim_by(1, 100)),
            ..ready_item()
        };
        assert_eq!(check_fence(Some(7), &item), Ok(()));
        assert_eq!(
            check_fence(Some(6), &item),
            Err(DomainError::LeaseSuperseded { current: Some(7) })
        );
        assert_eq!(check_fence(None, &item), Ok(()));
    }

    mod properties {
        //! Random command sequences against a tiny in-memory board run
        //! through the real rules: no item ever has two live holders, no
        //! worker exceeds its limit, no lane exceeds its WIP limit.
        use super::*;
        use proptest::prelude::*;

        const WORKERS: i64 = 4;
        const ITEMS: usize = 6;

        #[derive(Debug, Clone)]
        enum Cmd {
            Claim {
                worker: i64,
                item: usize,
            },
            Move {
                worker: i64,
                item: usize,
                lane: usize,
            },
            Release {
                worker: i64,
                item: usize,
            },
            Tick(i64),
        }

        fn cmd() -> impl Strategy<Value = Cmd> {
            prop_oneof![
                (1..=WORKERS, 0..ITEMS).prop_map(|(worker, item)| Cmd::Claim { worker, item }),
                (1..=WORKERS, 0..ITEMS, 0..4usize).prop_map(|(worker, item, lane)| Cmd::Move {
                    worker,
                    item,
                    lane
                }),
                (1..=WORKERS, 0..ITEMS).prop_map(|(worker, item)| Cmd::Release { worker, item }),
                (1..40i64).prop_map(Cmd::Tick),
            ]
        }

        fn lanes() -> [(LaneRole, Option<i64>); 4] {
            [
                (LaneRole::Backlog, None),
                (LaneRole::Ready, None),
                (LaneRole::InProgress, Some(2)),
                (LaneRole::Done, None),
            ]
        }

        fn actor(worker: i64) -> Actor {
            let kind = if worker % 2 == 0 {
                WorkerKind::Human
            } else {
                WorkerKind::Agent
            };
            Actor {
                worker_id: worker,
                kind,
                is_board_admin: worker == WORKERS,
            }
        }

        fn lane_state(items: &[ItemState], index: usize) -> LaneState {
            let (role, wip_limit) = lanes()[index];
            let id = index as i64;
            LaneState {
                id,
                role,
                wip_limit,
                who: Who::Any,
                count: items.iter().filter(|i| i.lane_id == id).count() as i64,
            }
        }

        fn held(items: &[ItemState], worker: i64, now: i64) -> i64 {
            items
                .iter()
                .filter(|i| i.live_claim(now).is_some_and(|c| c.worker.id == worker))
                .count() as i64
        }

        fn claim_for(worker: i64, now: i64, rules: &BoardRules, token: i64) -> Claim {
            let a = actor(worker);
            Claim {
                worker: WorkerRef {
                    id: worker,
                    name: format!("w{worker}"),
                    kind: a.kind,
                },
                claimed_at_ms: now,
                lease_expires_at_ms: now + rules.lease_ms(a.kind) / 1000,
                token,
            }
        }

        proptest! {
            #[test]
            fn random_commands_keep_the_queue_invariants(cmds in proptest::collection::vec(cmd(), 1..120)) {
                let rules = BoardRules { locked: false, claim_limit: 2, agent_lease_seconds: 30, human_lease_seconds: 90, agents_need_ready: true };
                let mut items: Vec<ItemState> = (0..ITEMS)
                    .map(|i| ItemState { lane_id: (i % 2) as i64, role: lanes()[i % 2].0, agent_ready: i % 3 != 0, claim: None, open_blockers: 0 })
                    .collect();
                let mut now = 0i64;
                let mut token = 0i64;
                for cmd in cmds {
                    match cmd {
                        Cmd::Tick(ms) => now += ms,
                        Cmd::Claim { worker, item } => {
                            let h = held(&items, worker, now);
                            if let Ok(decision) = check_claim(&actor(worker), &rules, &items[item], h, now) {
                                if let Some(other) = items[item].live_claim(now) {
                                    prop_assert_eq!(other.worker.id, worker, "claim granted over a live claim");
                                }
                                if decision == ClaimDecision::New { token += 1; }
                                let t = if decision == ClaimDecision::New { token } else { items[item].claim.as_ref().map_or(token, |c| c.token) };
                                items[item].claim = Some(claim_for(worker, now, &rules, t));
                            }
                        }
                        Cmd::Move { worker, item, lane } => {
                            let to = lane_state(&items, lane);
                            let h = held(&items, worker, now);
                            if let Ok(effect) = check_move(&actor(worker), &rules, &items[item], &to, h, now) {
                                let it = &mut items[item];
                                it.lane_id = to.id;
                                it.role = to.role;
                                match effect {
                                    ClaimEffect::Keep => {}
                                    ClaimEffect::End => it.claim = None,
                                    ClaimEffect::ClaimForMover => { token += 1; it.claim = Some(claim_for(worker, now, &rules, token)); }
                                }
                            }
                        }
                        Cmd::Release { worker, item } => {
                            if check_release(&actor(worker), &items[item]).is_ok() {
                                items[item].claim = None;
                            }
                        }
                    }
                    for w in 1..=WORKERS {
                        prop_assert!(held(&items, w, now) <= rules.claim_limit, "worker {} over its limit", w);
                    }
                    for l in 0..lanes().len() {
                        let state = lane_state(&items, l);
                        if let Some(limit) = state.wip_limit {
                            // Items may start in a lane only through moves, so the limit holds.
                            prop_assert!(state.count <= limit, "lane {} over WIP", l);
                        }
                    }
                }
            }
        }
    }
}
