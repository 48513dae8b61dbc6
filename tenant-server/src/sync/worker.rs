//! The sync worker: one serial task per linked board (so per repository),
//! doing, in order, the inbound inbox, one page of import, the due outbox
//! items and, when due, a reconciler poll. Serial per repository means an
//! inbound merge and an outbound push of the same item never interleave.
//!
//! Outbound is state-based: the remote state an item should have is
//! computed from its current row and diffed against the last agreed
//! snapshot; only the difference is sent. A create first records that it
//! is about to be sent; if its outcome is unknown, the next attempt looks
//! for the item's hidden marker among recent issues before creating again.

use super::db::{self, LinkRow, OutboxRow};
use super::hooks::CommentAction;
use super::mapping::{self, BoardView, FooterContext, RemoteState};
use super::provider::{
    IssueQuery, IssueState, Provider, ProviderError, RemoteComment, RemoteIssue,
};
use super::{AnyProvider, ProviderKind};
use crate::commands;
use crate::domain::board::LaneRole;
use crate::domain::item::{ItemKind, ItemPatch, NewComment, NewItem};
use crate::domain::{Principal, Scope, WorkerKind};
use crate::store::error::CommandError;
use crate::store::model::{Item, Timestamp};
use crate::store::queue::MoveTarget;
use crate::store::{items, now_ms};
use crate::{AppState, StopSignal};
use std::collections::HashMap;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Outbox rows handled per round before the worker looks at its inbox again.
const BATCH: i64 = 50;
const MAX_BACKOFF_MS: i64 = 10 * 60 * 1000;
/// How far back a search for an unknown-outcome create looks.
const SEARCH_SLACK_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("the board refused the change: {0}")]
    Command(String),
    #[error("database error: {0}")]
    Writer(String),
}

impl From<CommandError> for SyncError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Database(db) => Self::Database(db),
            CommandError::Rule(rule) => Self::Command(rule.to_string()),
            CommandError::Writer(w) => Self::Writer(w.to_string()),
        }
    }
}

/// Starts the supervisor that keeps one task per enabled link.
pub fn spawn(state: AppState, stop: StopSignal) -> JoinHandle<()> {
    tokio::spawn(supervise(state, stop))
}

async fn supervise(state: AppState, stop: StopSignal) {
    let mut tasks: HashMap<i64, JoinHandle<()>> = HashMap::new();
    let mut wake = state.sync.wake.subscribe();
    loop {
        match db::links(&state.store.reader).await {
            Ok(links) => {
                tasks.retain(|board, task| {
                    let keep = !task.is_finished()
                        && links.iter().any(|l| l.board_id == *board && l.enabled);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for link in links.into_iter().filter(|l| l.enabled) {
                    tasks.entry(link.board_id).or_insert_with(|| {
                        tokio::spawn(
                            LinkWorker::new(state.clone(), link.board_id).run(stop.clone()),
                        )
                    });
                }
                if let Ok(depth) = db::queue_depth(&state.store.reader).await {
                    state.sync.metrics.queue_depth.set(depth);
                }
            }
            Err(error) => tracing::warn!(%error, "sync: cannot read links"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            _ = wake.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
    for (_, task) in tasks {
        task.abort();
    }
}

struct LinkWorker {
    state: AppState,
    board_id: i64,
    last_poll_ms: i64,
}

impl LinkWorker {
    fn new(state: AppState, board_id: i64) -> Self {
        Self {
            state,
            board_id,
            last_poll_ms: 0,
        }
    }

    async fn run(mut self, stop: StopSignal) {
        let mut changes = self.state.changes.subscribe();
        let mut wake = self.state.sync.wake.subscribe();
        loop {
            let busy = match self.round().await {
                Ok(Some(busy)) => busy,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(board = self.board_id, %error, "sync round failed");
                    false
                }
            };
            if busy {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                _ = changes.changed() => {}
                _ = wake.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// One round; `None` when the link is gone or disabled (the task ends),
    /// `Some(true)` when there may be more work right away.
    async fn round(&mut self) -> Result<Option<bool>, SyncError> {
        let Some(link) = db::link(&self.state.store.reader, self.board_id).await? else {
            return Ok(None);
        };
        if !link.enabled {
            return Ok(None);
        }
        let provider = match AnyProvider::for_link(&self.state, &link) {
            Ok(p) => p,
            Err(error) => {
                self.progress(db::LinkProgress {
                    last_error: Some(Some(&error.to_string())),
                    ..Default::default()
                })
                .await?;
                return Ok(Some(false));
            }
        };
        let limiter = self
            .state
            .sync
            .limiter(self.board_id, self.state.config.sync_min_interval_ms);
        limiter.restore(link.blocked_until);
        let ctx = Ctx {
            state: &self.state,
            link: &link,
            provider: &provider,
            base_url: self.state.config.base_url(),
        };
        let mut busy = false;
        busy |= ctx.inbox().await?;
        if !link.import_done && link.import_mode != "none" {
            ctx.import_page().await?;
            busy = true;
        }
        busy |= ctx.outbox().await?;
        let now = now_ms();
        if now - self.last_poll_ms
            >= i64::try_from(self.state.config.sync_poll_interval_ms).unwrap_or(i64::MAX)
            && link.import_done | (link.import_mode == "none")
        {
            self.last_poll_ms = now;
            if let Err(error) = ctx.reconcile().await {
                ctx.record_error(&error).await?;
            }
        }
        self.progress(db::LinkProgress {
            blocked_until: Some(limiter.blocked_until_ms()),
            ..Default::default()
        })
        .await?;
        Ok(Some(busy))
    }

    async fn progress(&self, p: db::LinkProgress<'_>) -> Result<(), sqlx::Error> {
        db::record_progress(&self.state.store.writer, self.board_id, &p).await
    }
}

/// What one round works with.
struct Ctx<'a> {
    state: &'a AppState,
    link: &'a LinkRow,
    provider: &'a AnyProvider,
    base_url: String,
}

impl Ctx<'_> {
    fn footer(&self) -> FooterContext<'_> {
        FooterContext {
            base_url: &self.base_url,
            nonce: &self.link.nonce,
        }
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::parse(&self.link.provider).unwrap_or(ProviderKind::Github)
    }

    async fn record_error(&self, error: &SyncError) -> Result<(), sqlx::Error> {
        let text = error.to_string();
        // A rate limit is persisted the moment it is known, so a restart
        // during the wait still waits.
        let blocked_until = matches!(error, SyncError::Provider(ProviderError::RateLimited(_)))
            .then(|| {
                self.state
                    .sync
                    .limiter(self.link.board_id, self.state.config.sync_min_interval_ms)
                    .blocked_until_ms()
            });
        db::record_progress(
            &self.state.store.writer,
            self.link.board_id,
            &db::LinkProgress {
                last_error: Some(Some(&text)),
                blocked_until,
                ..Default::default()
            },
        )
        .await
    }

    async fn load_item(&self, item_id: i64) -> Result<Option<Item>, SyncError> {
        let mut conn = self.state.store.reader.acquire().await?;
        match items::load_row(&mut conn, item_id).await? {
            Some(row) => Ok(Some(row.into_item(now_ms())?)),
            None => Ok(None),
        }
    }

    // ---- outbound ----

    /// Pushes the due items; `true` if it did any.
    async fn outbox(&self) -> Result<bool, SyncError> {
        let rows = db::due(
            &self.state.store.reader,
            self.link.board_id,
            now_ms(),
            BATCH,
        )
        .await?;
        let any = !rows.is_empty();
        for row in rows {
            match self.push_item(row.item_id).await {
                Ok(outcome) => {
                    self.state
                        .sync
                        .metrics
                        .pushes
                        .with_label_values(&[outcome])
                        .inc();
                    db::outbox_done(&self.state.store.writer, &row).await?;
                    if outcome != "unchanged" {
                        db::record_progress(
                            &self.state.store.writer,
                            self.link.board_id,
                            &db::LinkProgress {
                                last_push_at: Some(now_ms()),
                                last_error: Some(None),
                                ..Default::default()
                            },
                        )
                        .await?;
                    }
                }
                Err(error) => {
                    self.retry_later(&row, &error).await?;
                    if matches!(error, SyncError::Provider(ProviderError::RateLimited(_))) {
                        // The whole repository waits: stop this round.
                        break;
                    }
                }
            }
        }
        Ok(any)
    }

    async fn retry_later(&self, row: &OutboxRow, error: &SyncError) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let (attempts, at, outcome) = match error {
            SyncError::Provider(ProviderError::RateLimited(wait)) => (
                row.attempts,
                now + i64::try_from(wait.as_millis()).unwrap_or(MAX_BACKOFF_MS),
                "rate_limited",
            ),
            _ => {
                let attempts = row.attempts + 1;
                let base = 1000_i64
                    .saturating_mul(1 << attempts.min(20))
                    .min(MAX_BACKOFF_MS);
                let jitter = rand::random_range(0..=base / 4);
                (attempts, now + base + jitter, "error")
            }
        };
        self.state
            .sync
            .metrics
            .pushes
            .with_label_values(&[outcome])
            .inc();
        tracing::info!(board = self.link.board_id, item = row.item_id, %error, attempts, "sync push will be retried");
        db::outbox_retry(&self.state.store.writer, row.item_id, attempts, at).await?;
        let text = error.to_string();
        db::set_item_state(
            &self.state.store.writer,
            row.item_id,
            "error",
            Some(&text),
            now,
        )
        .await?;
        self.record_error(error).await
    }

    /// Brings one item's issue up to date; returns the outcome label.
    async fn push_item(&self, item_id: i64) -> Result<&'static str, SyncError> {
        let Some(item) = self.load_item(item_id).await? else {
            return Ok("unchanged");
        };
        if item.board_id != self.link.board_id {
            return Ok("unchanged");
        }
        let repo_key = self.link.repo_key();
        let writer = &self.state.store.writer;
        let mut mapped = db::sync_item(&self.state.store.reader, item_id)
            .await?
            .filter(|m| m.repo_key == repo_key);
        if mapped.as_ref().is_some_and(|m| m.state == "unlinked") {
            // Its issue was deleted or transferred: the item stays unmirrored.
            return Ok("unchanged");
        }
        let desired = mapping::desired(&item, &self.footer());
        let mut outcome = "unchanged";
        if mapped.as_ref().and_then(|m| m.number).is_none() {
            let started = mapped.as_ref().and_then(|m| m.create_started_at);
            let found = match started {
                Some(at) => self.find_created(item_id, at).await?,
                None => None,
            };
            let remote = match found {
                Some(remote) => remote,
                None => {
                    db::create_started(
                        writer,
                        item_id,
                        item.board_id,
                        &repo_key,
                        &self.link.nonce,
                        now_ms(),
                    )
                    .await?;
                    match self
                        .provider
                        .create_issue(&desired.title, &desired.body, &desired.labels)
                        .await
                    {
                        Ok(remote) => {
                            outcome = "created";
                            remote
                        }
                        Err(e) => {
                            if e.certainly_not_applied() {
                                db::clear_create_started(writer, item_id).await?;
                            }
                            return Err(e.into());
                        }
                    }
                }
            };
            db::record_remote(
                writer,
                item_id,
                item.board_id,
                &repo_key,
                &self.link.nonce,
                remote.number,
                &remote.url,
                &RemoteState::from(&remote),
                "pending",
                None,
                now_ms(),
            )
            .await?;
            mapped = db::sync_item(&self.state.store.reader, item_id).await?;
        }
        let Some(mapped) = mapped else {
            return Ok(outcome);
        };
        let Some(number) = mapped.number else {
            return Ok(outcome);
        };
        let agreed = mapped.snapshot();
        let change = mapping::diff(&desired, agreed.as_ref());
        if !change.is_empty() {
            match self.provider.update_issue(number, &change).await {
                Ok(_) => {}
                Err(ProviderError::NotFound) => {
                    db::unlink_item(writer, item_id, now_ms()).await?;
                    return Ok("unlinked");
                }
                Err(e) => return Err(e.into()),
            }
            if outcome == "unchanged" {
                outcome = "updated";
            }
        }
        // What both sides now agree on: the fields we sent, as sent; any
        // field we did not send keeps its last agreed value, so a
        // concurrent remote edit of it still shows up as a change.
        let mut agreed_now = agreed.unwrap_or_else(|| desired.clone());
        if let Some(t) = change.title {
            agreed_now.title = t;
        }
        if let Some(b) = change.body {
            agreed_now.body = b;
        }
        if let Some(l) = change.labels {
            agreed_now.labels = l;
        }
        if let Some(s) = change.state {
            agreed_now.state = s;
        }
        let keep_conflict = mapped.state == "conflict" && outcome == "unchanged";
        db::record_remote(
            writer,
            item_id,
            item.board_id,
            &repo_key,
            &self.link.nonce,
            number,
            mapped.url.as_deref().unwrap_or_default(),
            &agreed_now,
            if keep_conflict { "conflict" } else { "synced" },
            if keep_conflict {
                mapped.error.as_deref()
            } else {
                None
            },
            now_ms(),
        )
        .await?;
        if self.link.comments {
            self.push_comments(item_id, number).await?;
        }
        Ok(outcome)
    }

    /// Looks for an issue carrying the item's marker (a create whose
    /// outcome was unknown), among issues updated since shortly before it.
    async fn find_created(
        &self,
        item_id: i64,
        started_at: i64,
    ) -> Result<Option<RemoteIssue>, SyncError> {
        let since = Timestamp(started_at - SEARCH_SLACK_MS).to_rfc3339();
        let mut query = IssueQuery {
            since: Some(since),
            include_closed: true,
            by_created: false,
            per_page: 100,
            ..IssueQuery::default()
        };
        for _ in 0..20 {
            let page = self.provider.list_issues(&query).await?;
            if let Some(found) = page
                .issues
                .into_iter()
                .find(|i| mapping::find_item_marker(&i.body, &self.link.nonce) == Some(item_id))
            {
                return Ok(Some(found));
            }
            match page.next {
                Some(next) => query.page_url = Some(next),
                None => break,
            }
        }
        Ok(None)
    }

    async fn push_comments(&self, item_id: i64, number: i64) -> Result<(), SyncError> {
        let pending = db::outgoing_comments(&self.state.store.reader, item_id).await?;
        let mut remote_list = None;
        for comment in pending {
            if comment.started {
                if remote_list.is_none() {
                    remote_list = Some(self.provider.list_comments(number).await?);
                }
                let found = remote_list.as_ref().and_then(|list| {
                    list.iter().find(|r| {
                        mapping::find_comment_marker(&r.body, &self.link.nonce) == Some(comment.id)
                    })
                });
                if let Some(found) = found {
                    db::comment_mirrored(&self.state.store.writer, comment.id, found.id).await?;
                    continue;
                }
            }
            db::comment_started(&self.state.store.writer, item_id, comment.id, now_ms()).await?;
            let body =
                mapping::comment_body(&comment.body, &comment.author, &self.link.nonce, comment.id);
            let created = self.provider.create_comment(number, &body).await?;
            db::comment_mirrored(&self.state.store.writer, comment.id, created.id).await?;
        }
        Ok(())
    }

    // ---- inbound ----

    /// Works the stored deliveries; `true` if there were any.
    async fn inbox(&self) -> Result<bool, SyncError> {
        let rows = db::inbox_pending(&self.state.store.reader, self.link.board_id, BATCH).await?;
        let any = !rows.is_empty();
        for row in rows {
            let outcome = match super::hooks::parse_delivery(self.kind(), &row.event, &row.payload)
            {
                Ok(delivery) => match self.apply_delivery(delivery).await {
                    Ok(outcome) => outcome,
                    Err(SyncError::Provider(e))
                        if !e.certainly_not_applied()
                            || matches!(e, ProviderError::RateLimited(_)) =>
                    {
                        // Transient: leave it in the inbox for the next round.
                        self.record_error(&SyncError::Provider(e)).await?;
                        return Ok(false);
                    }
                    // The database failed: keep the delivery for the next round.
                    Err(e @ (SyncError::Database(_) | SyncError::Writer(_))) => return Err(e),
                    Err(e) => {
                        tracing::info!(board = self.link.board_id, error = %e, "inbound delivery not applied");
                        "rejected"
                    }
                },
                Err(_) => "unreadable",
            };
            self.state
                .sync
                .metrics
                .inbound
                .with_label_values(&[outcome])
                .inc();
            db::inbox_done(&self.state.store.writer, row.id, outcome, now_ms()).await?;
            db::record_progress(
                &self.state.store.writer,
                self.link.board_id,
                &db::LinkProgress {
                    last_inbound_at: Some(now_ms()),
                    ..Default::default()
                },
            )
            .await?;
        }
        Ok(any)
    }

    async fn apply_delivery(
        &self,
        delivery: super::hooks::Delivery,
    ) -> Result<&'static str, SyncError> {
        use super::hooks::Delivery;
        match delivery {
            Delivery::Ignored => Ok("ignored"),
            Delivery::IssueGone { number } => self.issue_gone(number).await,
            Delivery::Issue { number, sender } => {
                // The payload only says which issue changed: its current
                // state is read from the provider, so reordered, repeated or
                // lost deliveries all end in the same place.
                match self.provider.get_issue(number).await? {
                    Some(remote) => self.merge_issue(&remote, &sender).await,
                    None => self.issue_gone(number).await,
                }
            }
            Delivery::Comment {
                number,
                remote_id,
                body,
                author,
                updated_at,
                action,
            } => {
                let comment = RemoteComment {
                    id: remote_id,
                    body,
                    author,
                    updated_at,
                    number: Some(number),
                };
                self.apply_comment(number, &comment, action).await
            }
        }
    }

    async fn issue_gone(&self, number: i64) -> Result<&'static str, SyncError> {
        if let Some(m) =
            db::sync_item_by_number(&self.state.store.reader, &self.link.repo_key(), number).await?
        {
            db::unlink_item(&self.state.store.writer, m.item_id, now_ms()).await?;
        }
        Ok("unlinked")
    }

    async fn principal(&self, login: &str) -> Result<Principal, SyncError> {
        let (worker_id, worker_name) = db::remote_worker(
            &self.state.store.writer,
            self.kind().as_str(),
            login,
            now_ms(),
        )
        .await?;
        Ok(Principal {
            token_id: 0,
            worker_id,
            worker_name,
            worker_kind: WorkerKind::Human,
            // The repository is an admin-linked peer of the board: its
            // changes pass the lock, like a board admin's.
            scopes: vec![Scope::BoardAdmin],
            board_id: Some(self.link.board_id),
        })
    }

    /// Brings one remote comment's news onto the board, whether it came by
    /// webhook or by the reconciler: a new comment is added once; an edit
    /// or deletion of an imported comment is recorded as a note (the board
    /// keeps the original); an edit or deletion of our own mirror is undone
    /// (the board's comment wins). Ours are recognised by the stored remote
    /// id or the marker, never by who sent them.
    async fn apply_comment(
        &self,
        number: i64,
        comment: &RemoteComment,
        action: CommentAction,
    ) -> Result<&'static str, SyncError> {
        if !self.link.comments {
            return Ok("ignored");
        }
        let reader = &self.state.store.reader;
        let repo_key = self.link.repo_key();
        let ours = mapping::find_comment_marker(&comment.body, &self.link.nonce).is_some()
            || mapping::find_item_marker(&comment.body, &self.link.nonce).is_some();
        let mut mapped = db::sync_item_by_number(reader, &repo_key, number).await?;
        if mapped.is_none() && action == CommentAction::Upsert && !ours {
            // A comment on an issue the board does not know yet: the issue first.
            if let Some(remote) = self.provider.get_issue(number).await? {
                self.merge_issue(&remote, &comment.author).await?;
            }
            mapped = db::sync_item_by_number(reader, &repo_key, number).await?;
        }
        let Some(mapped) = mapped else {
            return Ok("ignored");
        };
        let item_id = mapped.item_id;
        let known = db::known_comment(reader, item_id, comment.id).await?;
        match known {
            Some(known) if known.origin == "board" => {
                self.remote_change_of_ours(item_id, number, &known, comment, action)
                    .await
            }
            Some(known) => match (action, known.comment_id) {
                (CommentAction::Deleted, _) if known.remote_deleted => Ok("duplicate"),
                (CommentAction::Deleted, _) => {
                    let note = mapping::delete_note(self.kind().display(), &comment.author);
                    self.add_note(item_id, &comment.author, &note).await?;
                    db::remote_comment_deleted(&self.state.store.writer, known.id).await?;
                    Ok("deleted")
                }
                // Interrupted while adding it: finish that first.
                (CommentAction::Upsert, None) => {
                    self.add_inbound_comment(item_id, comment, Some(&known))
                        .await
                }
                (CommentAction::Upsert, Some(board_comment)) => {
                    let hash = mapping::text_hash(&comment.body);
                    if known.remote_hash.is_none() {
                        // Imported before fingerprints were kept: the board's
                        // copy is the baseline.
                        let same = db::board_comment(reader, board_comment)
                            .await?
                            .is_some_and(|(body, _)| mapping::text_hash(&body) == hash);
                        if same {
                            db::remote_comment_seen(
                                &self.state.store.writer,
                                known.id,
                                &hash,
                                &comment.updated_at,
                            )
                            .await?;
                            return Ok("duplicate");
                        }
                    }
                    if known.remote_hash.as_deref() == Some(hash.as_str())
                        || known
                            .remote_updated_at
                            .as_deref()
                            .is_some_and(|seen| mapping::older_than(&comment.updated_at, seen))
                    {
                        return Ok("duplicate");
                    }
                    let note =
                        mapping::edit_note(self.kind().display(), &comment.author, &comment.body);
                    self.add_note(item_id, &comment.author, &note).await?;
                    db::remote_comment_seen(
                        &self.state.store.writer,
                        known.id,
                        &hash,
                        &comment.updated_at,
                    )
                    .await?;
                    Ok("edited")
                }
            },
            None if ours => Ok("echo"),
            None if action == CommentAction::Deleted => Ok("ignored"),
            None => self.add_inbound_comment(item_id, comment, None).await,
        }
    }

    /// Someone edited or deleted our mirror of a board comment: the
    /// board's comment wins, as for any board-owned field.
    async fn remote_change_of_ours(
        &self,
        item_id: i64,
        number: i64,
        known: &db::KnownComment,
        comment: &RemoteComment,
        action: CommentAction,
    ) -> Result<&'static str, SyncError> {
        let Some(comment_id) = known.comment_id else {
            return Ok("echo");
        };
        if action == CommentAction::Deleted {
            // Forgotten, it is posted again with the item's next push.
            db::forget_mirror(&self.state.store.writer, known.id).await?;
            db::enqueue(
                &self.state.store.writer,
                self.link.board_id,
                item_id,
                now_ms(),
            )
            .await?;
            return Ok("restored");
        }
        let Some((body, author)) = db::board_comment(&self.state.store.reader, comment_id).await?
        else {
            return Ok("ignored");
        };
        let expected = mapping::comment_body(&body, &author, &self.link.nonce, comment_id);
        if mapping::same_comment_text(&comment.body, &expected) {
            return Ok("echo");
        }
        self.provider
            .update_comment(number, comment.id, &expected)
            .await?;
        Ok("pushed_back")
    }

    /// Adds a board comment that records what happened remotely; it never mirrors out.
    async fn add_note(&self, item_id: i64, author: &str, text: &str) -> Result<(), SyncError> {
        let caller = self.principal(author).await?;
        let note =
            NewComment::parse(text, None).map_err(|e| SyncError::Command(format!("{e:?}")))?;
        let created = commands::items::add_comment(
            &self.state.store,
            &caller,
            item_id,
            &note,
            None,
            now_ms(),
        )
        .await?;
        db::note_added(&self.state.store.writer, item_id, created.id, now_ms()).await?;
        Ok(())
    }

    async fn add_inbound_comment(
        &self,
        item_id: i64,
        remote: &RemoteComment,
        known: Option<&db::KnownComment>,
    ) -> Result<&'static str, SyncError> {
        let writer = &self.state.store.writer;
        let caller = self.principal(&remote.author).await?;
        if let Some(known) = known {
            // Interrupted before: the comment may already be on the board.
            if let Some(id) = db::find_comment(
                &self.state.store.reader,
                item_id,
                caller.worker_id,
                remote.body.trim(),
                known.started_at,
            )
            .await?
            {
                db::inbound_comment_added(writer, item_id, remote.id, id).await?;
                return Ok("duplicate");
            }
        } else {
            db::inbound_comment_started(
                writer,
                item_id,
                remote.id,
                &mapping::text_hash(&remote.body),
                &remote.updated_at,
                now_ms(),
            )
            .await?;
        }
        let comment = NewComment::parse(&remote.body, None)
            .map_err(|e| SyncError::Command(format!("{e:?}")))?;
        let created = commands::items::add_comment(
            &self.state.store,
            &caller,
            item_id,
            &comment,
            None,
            now_ms(),
        )
        .await?;
        db::inbound_comment_added(writer, item_id, remote.id, created.id).await?;
        Ok("comment")
    }

    /// Brings an inbound issue state onto the board (import or three-way merge).
    async fn merge_issue(
        &self,
        remote: &RemoteIssue,
        sender: &str,
    ) -> Result<&'static str, SyncError> {
        if remote.is_pull_request {
            return Ok("ignored");
        }
        let writer = &self.state.store.writer;
        let repo_key = self.link.repo_key();
        let remote_state = RemoteState::from(remote);
        let mapped =
            db::sync_item_by_number(&self.state.store.reader, &repo_key, remote.number).await?;
        let Some(mapped) = mapped else {
            if let Some(item_id) = mapping::find_item_marker(&remote.body, &self.link.nonce) {
                // Our own create coming back before we recorded it.
                let known = db::sync_item(&self.state.store.reader, item_id).await?;
                if known
                    .as_ref()
                    .is_none_or(|m| m.number.is_none() && m.state != "unlinked")
                {
                    db::record_remote(
                        writer,
                        item_id,
                        self.link.board_id,
                        &repo_key,
                        &self.link.nonce,
                        remote.number,
                        &remote.url,
                        &remote_state,
                        "pending",
                        None,
                        now_ms(),
                    )
                    .await?;
                    db::enqueue(writer, self.link.board_id, item_id, now_ms()).await?;
                }
                return Ok("echo");
            }
            return self.import(remote).await;
        };
        let Some(item) = self.load_item(mapped.item_id).await? else {
            return Ok("ignored");
        };
        let agreed = mapped.snapshot().unwrap_or_else(|| remote_state.clone());
        let board_view = BoardView::of_remote(&mapping::desired(&item, &self.footer()));
        let merge = mapping::merge(
            &board_view,
            &BoardView::of_remote(&agreed),
            &BoardView::of_remote(&remote_state),
        );
        let login = if sender.is_empty() {
            remote.author.as_str()
        } else {
            sender
        };
        let applied = merge.title.is_some()
            || merge.body.is_some()
            || merge.labels.is_some()
            || merge.closed.is_some();
        if applied {
            let caller = self.principal(login).await?;
            let patch = ItemPatch {
                title: merge.title.clone(),
                body: merge.body.clone(),
                labels: merge.labels.clone(),
                ..ItemPatch::default()
            };
            if !patch.is_empty() {
                commands::items::update(
                    &self.state.store,
                    &caller,
                    item.id,
                    &patch,
                    None,
                    None,
                    now_ms(),
                )
                .await?;
            }
            if let Some(closed) = merge.closed {
                let target = if closed {
                    LaneRole::Done
                } else {
                    LaneRole::Backlog
                };
                commands::queue::move_item(
                    &self.state.store,
                    &caller,
                    item.id,
                    MoveTarget::Status(target),
                    None,
                    None,
                    now_ms(),
                )
                .await?;
            }
        }
        let conflict = (!merge.conflicts.is_empty()).then(|| {
            format!(
                "changed on both sides: {}; the board's value was kept",
                merge.conflicts.join(", ")
            )
        });
        db::record_remote(
            writer,
            item.id,
            self.link.board_id,
            &repo_key,
            &self.link.nonce,
            remote.number,
            &remote.url,
            &remote_state,
            if conflict.is_some() {
                "conflict"
            } else {
                "synced"
            },
            conflict.as_deref(),
            now_ms(),
        )
        .await?;
        // The pusher sends back whatever the board keeps (conflicts, derived
        // labels, the footer). Only an item whose remote is behind is
        // queued, so a poll that finds nothing new leaves `pending` alone;
        // changes applied above queued theirs through the history trigger.
        let behind = match self.load_item(item.id).await? {
            Some(now) => {
                !mapping::diff(&mapping::desired(&now, &self.footer()), Some(&remote_state))
                    .is_empty()
            }
            None => false,
        };
        if behind || conflict.is_some() {
            db::enqueue(writer, self.link.board_id, item.id, now_ms()).await?;
        }
        Ok(if conflict.is_some() {
            "conflict"
        } else if applied {
            "applied"
        } else {
            "unchanged"
        })
    }

    /// A remote issue the board does not know: a new item, not agent-ready.
    async fn import(&self, remote: &RemoteIssue) -> Result<&'static str, SyncError> {
        let writer = &self.state.store.writer;
        let caller = self.principal(&remote.author).await?;
        let existing = db::find_unmapped_item(
            &self.state.store.reader,
            self.link.board_id,
            caller.worker_id,
            &remote.title,
            self.link.created_at,
        )
        .await?;
        let item_id = match existing {
            Some(id) => id,
            None => {
                let labels = mapping::user_labels(&remote.labels);
                let new = NewItem::parse(crate::domain::item::NewItemInput {
                    title: &remote.title,
                    body: Some(&mapping::user_body(&remote.body)),
                    kind: Some(if remote.labels.iter().any(|l| l == "bug") {
                        ItemKind::Defect
                    } else {
                        ItemKind::Task
                    }),
                    parent_id: None,
                    priority: None,
                    labels: Some(&labels),
                    agent_ready: Some(false),
                    blocked_by: None,
                    lane_id: None,
                })
                .map_err(|e| SyncError::Command(format!("{e:?}")))?;
                commands::items::create(
                    &self.state.store,
                    &caller,
                    self.link.board_id,
                    &new,
                    now_ms(),
                )
                .await?
                .id
            }
        };
        if remote.state == IssueState::Closed {
            commands::queue::move_item(
                &self.state.store,
                &caller,
                item_id,
                MoveTarget::Status(LaneRole::Done),
                None,
                None,
                now_ms(),
            )
            .await?;
        }
        db::record_remote(
            writer,
            item_id,
            self.link.board_id,
            &self.link.repo_key(),
            &self.link.nonce,
            remote.number,
            &remote.url,
            &RemoteState::from(remote),
            "synced",
            None,
            now_ms(),
        )
        .await?;
        db::enqueue(writer, self.link.board_id, item_id, now_ms()).await?;
        Ok("imported")
    }

    // ---- import and reconciler ----

    /// One page of the import; records where to continue.
    async fn import_page(&self) -> Result<(), SyncError> {
        let query = IssueQuery {
            include_closed: self.link.import_mode == "all",
            by_created: true,
            per_page: 100,
            page_url: self.link.import_next.clone(),
            ..IssueQuery::default()
        };
        let page = match self.provider.list_issues(&query).await {
            Ok(page) => page,
            Err(e) => {
                let e = SyncError::Provider(e);
                self.record_error(&e).await?;
                return Ok(());
            }
        };
        for issue in &page.issues {
            if issue.is_pull_request
                || (self.link.import_mode == "open" && issue.state == IssueState::Closed)
            {
                continue;
            }
            if let Err(e) = self.merge_issue(issue, "").await {
                if let SyncError::Provider(_) | SyncError::Database(_) | SyncError::Writer(_) = e {
                    self.record_error(&e).await?;
                    return Ok(());
                }
                tracing::info!(board = self.link.board_id, number = issue.number, error = %e, "issue not imported");
            }
        }
        db::record_progress(
            &self.state.store.writer,
            self.link.board_id,
            &db::LinkProgress {
                last_error: Some(None),
                ..Default::default()
            },
        )
        .await?;
        db::record_import(
            &self.state.store.writer,
            self.link.board_id,
            page.next.as_deref(),
            page.next.is_none(),
        )
        .await?;
        Ok(())
    }

    /// A change the board refuses (a rule, a too-long text) is logged and
    /// passed by, so one bad issue or comment cannot stall the poll; any
    /// other failure stops it (it is retried from the same place).
    fn skip_refused<T>(&self, result: Result<T, SyncError>, number: i64) -> Result<(), SyncError> {
        match result {
            Ok(_) => Ok(()),
            Err(SyncError::Command(error)) => {
                tracing::info!(board = self.link.board_id, number, %error, "not taken from the remote");
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Catches what webhooks missed: issues updated since the last poll,
    /// then comments.
    async fn reconcile(&self) -> Result<(), SyncError> {
        let updated = self.reconcile_issues().await?;
        self.reconcile_comments(&updated).await
    }

    /// Merges the issues updated since the last poll; returns their numbers.
    async fn reconcile_issues(&self) -> Result<Vec<i64>, SyncError> {
        let mut query = IssueQuery {
            since: self.link.poll_since.clone(),
            include_closed: true,
            by_created: false,
            per_page: 100,
            etag: self.link.poll_etag.clone(),
            ..IssueQuery::default()
        };
        let mut newest = self.link.poll_since.clone();
        let mut first_etag = None;
        let mut updated = Vec::new();
        for page_no in 0..50 {
            let page = self.provider.list_issues(&query).await?;
            if page_no == 0 {
                if page.not_modified {
                    return Ok(updated);
                }
                first_etag = page.etag.clone();
            }
            for issue in &page.issues {
                if issue.is_pull_request {
                    continue;
                }
                self.skip_refused(self.merge_issue(issue, "").await, issue.number)?;
                updated.push(issue.number);
                if newest
                    .as_deref()
                    .is_none_or(|n| issue.updated_at.as_str() > n)
                {
                    newest = Some(issue.updated_at.clone());
                }
            }
            match page.next {
                Some(next) => {
                    query.page_url = Some(next);
                    query.etag = None;
                }
                None => break,
            }
        }
        db::record_poll(
            &self.state.store.writer,
            self.link.board_id,
            newest.as_deref(),
            first_etag.as_deref(),
        )
        .await?;
        Ok(updated)
    }

    /// Comments whose webhook never arrived: GitHub's repository-wide
    /// listing by update time (with `If-None-Match`, like the issue poll);
    /// on GitLab, the notes of each issue the issue poll saw updated (a
    /// new note updates its issue).
    async fn reconcile_comments(&self, updated: &[i64]) -> Result<(), SyncError> {
        if !self.link.comments {
            return Ok(());
        }
        // The first poll starts where the issue poll stands (the link's
        // creation for a new link), not at the repository's beginning.
        let since = self
            .link
            .comment_poll_since
            .clone()
            .or_else(|| self.link.poll_since.clone())
            .unwrap_or_else(|| Timestamp(self.link.created_at).to_rfc3339());
        let mut query = IssueQuery {
            since: Some(since.clone()),
            per_page: 100,
            etag: self.link.comment_poll_etag.clone(),
            ..IssueQuery::default()
        };
        let mut newest = since;
        let mut first_etag = None;
        for page_no in 0..50 {
            let Some(page) = self.provider.poll_comments(&query).await? else {
                for &number in updated {
                    for comment in self.provider.list_comments(number).await? {
                        let applied = self
                            .apply_comment(number, &comment, CommentAction::Upsert)
                            .await;
                        self.skip_refused(applied, number)?;
                    }
                }
                return Ok(());
            };
            if page_no == 0 {
                if page.not_modified {
                    return Ok(());
                }
                first_etag = page.etag.clone();
            }
            for comment in &page.comments {
                if let Some(number) = comment.number {
                    let applied = self
                        .apply_comment(number, comment, CommentAction::Upsert)
                        .await;
                    self.skip_refused(applied, number)?;
                }
                if comment.updated_at > newest {
                    newest = comment.updated_at.clone();
                }
            }
            match page.next {
                Some(next) => {
                    query.page_url = Some(next);
                    query.etag = None;
                }
                None => break,
            }
        }
        db::record_comment_poll(
            &self.state.store.writer,
            self.link.board_id,
            Some(&newest),
            first_etag.as_deref(),
        )
        .await?;
        Ok(())
    }
}
