//! The mapping between an item and its issue, as pure functions: the
//! remote state an item should have (title, body with a link back and a
//! hidden marker, labels with `bug` and `status:<role>`, open/closed),
//! the minimal change from the last agreed state, and the three-way
//! merge of an inbound edit. No I/O here, so every rule is unit-tested.

use super::provider::{IssueChange, IssueState, RemoteIssue, sorted_labels};
use crate::domain::board::LaneRole;
use crate::domain::item::ItemKind;
use crate::store::model::Item;
use serde::{Deserialize, Serialize};

/// Start of the footer we append to every mirrored body.
const FOOTER_START: &str = "---\n<sub>Mirrored from ";
const MARKER_PREFIX: &str = "<!-- taskharbor:";

/// The issue fields we own, as last agreed with the provider (the
/// snapshot) or as the board wants them (the desired state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteState {
    pub title: String,
    pub body: String,
    /// Sorted, unique.
    pub labels: Vec<String>,
    pub state: IssueState,
}

impl From<&RemoteIssue> for RemoteState {
    fn from(i: &RemoteIssue) -> Self {
        Self {
            title: i.title.clone(),
            body: i.body.clone(),
            labels: sorted_labels(i.labels.clone()),
            state: i.state,
        }
    }
}

/// The hidden marker that names the item an issue or comment mirrors.
/// `nonce` is the link's random id, so two servers mirroring into one
/// repository never mistake each other's issues for their own.
pub fn item_marker(nonce: &str, item_id: i64) -> String {
    format!("{MARKER_PREFIX}{nonce}:item:{item_id} -->")
}

pub fn comment_marker(nonce: &str, comment_id: i64) -> String {
    format!("{MARKER_PREFIX}{nonce}:comment:{comment_id} -->")
}

/// The item id an issue body's marker names, if it is one of ours.
pub fn find_item_marker(body: &str, nonce: &str) -> Option<i64> {
    find_marker(body, nonce, "item")
}

pub fn find_comment_marker(body: &str, nonce: &str) -> Option<i64> {
    find_marker(body, nonce, "comment")
}

fn find_marker(body: &str, nonce: &str, what: &str) -> Option<i64> {
    let needle = format!("{MARKER_PREFIX}{nonce}:{what}:");
    let start = body.find(&needle)? + needle.len();
    let rest = &body[start..];
    let end = rest.find(" -->")?;
    rest[..end].parse().ok()
}

/// The text of a board comment as we mirror it: its body, who wrote it,
/// and the hidden marker naming the board comment.
pub fn comment_body(body: &str, author: &str, nonce: &str, comment_id: i64) -> String {
    format!(
        "{body}\n\n<sub>{author} on TaskHarbor</sub>\n{}",
        comment_marker(nonce, comment_id)
    )
}

/// Whether a remote comment's text is our mirror's, up to line endings
/// and trailing space (web editors send `\r\n`).
pub fn same_comment_text(remote: &str, ours: &str) -> bool {
    normalise_body(remote) == normalise_body(ours)
}

/// The fingerprint of a remote comment's text (SHA-256, hex): an edit is a
/// different fingerprint, a redelivery of the same text is not.
pub fn text_hash(body: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(normalise_body(body).as_bytes()))
}

/// Whether `incoming` is older than `seen` (both RFC 3339). A time that
/// does not parse (GitLab hooks say `2015-05-17 18:21:36 UTC`) orders
/// nothing: the text fingerprint decides alone.
pub fn older_than(incoming: &str, seen: &str) -> bool {
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    matches!((parse(incoming), parse(seen)), (Some(a), Some(b)) if a < b)
}

/// The board comment that records a remote edit of an imported comment
/// (the board keeps the original: it has no comment edit).
pub fn edit_note(provider: &str, author: &str, body: &str) -> String {
    format!("*{provider} comment by @{author} was edited there; it now reads:*\n\n{body}")
}

/// The board comment that records a remote deletion of an imported comment.
pub fn delete_note(provider: &str, author: &str) -> String {
    format!("*A {provider} comment by @{author} was deleted there; the board keeps its copy.*")
}

/// What the footer shows: a link back, and who holds the item.
#[derive(Debug, Clone)]
pub struct FooterContext<'a> {
    pub base_url: &'a str,
    pub nonce: &'a str,
}

/// The remote state `item` should have.
pub fn desired(item: &Item, ctx: &FooterContext<'_>) -> RemoteState {
    let mut footer = format!(
        "{FOOTER_START}[{}]({}/items/{}) by TaskHarbor",
        item.key,
        ctx.base_url.trim_end_matches('/'),
        item.id
    );
    if let Some(claim) = &item.claim {
        footer.push_str(&format!(" · claimed by {}", claim.worker.name));
    }
    footer.push_str("</sub>\n");
    footer.push_str(&item_marker(ctx.nonce, item.id));
    let user = normalise_body(&item.body);
    let body = if user.is_empty() {
        footer
    } else {
        format!("{user}\n\n{footer}")
    };
    let mut labels = item.labels.clone();
    if item.kind == ItemKind::Defect {
        labels.push("bug".into());
    }
    let closed = item.status == LaneRole::Done;
    if !closed {
        labels.push(format!("status:{}", item.status.as_str()));
    }
    RemoteState {
        title: item.title.clone(),
        body,
        labels: sorted_labels(labels),
        state: if closed {
            IssueState::Closed
        } else {
            IssueState::Open
        },
    }
}

/// The minimal change that turns `agreed` into `desired`.
pub fn diff(desired: &RemoteState, agreed: Option<&RemoteState>) -> IssueChange {
    let Some(agreed) = agreed else {
        return IssueChange {
            title: Some(desired.title.clone()),
            body: Some(desired.body.clone()),
            labels: Some(desired.labels.clone()),
            state: Some(desired.state),
        };
    };
    IssueChange {
        title: (desired.title != agreed.title).then(|| desired.title.clone()),
        body: (normalise_body(&desired.body) != normalise_body(&agreed.body))
            .then(|| desired.body.clone()),
        labels: (desired.labels != agreed.labels).then(|| desired.labels.clone()),
        state: (desired.state != agreed.state).then_some(desired.state),
    }
}

/// Line endings and trailing space do not count as an edit (GitHub's web
/// editor sends `\r\n`).
fn normalise_body(body: &str) -> String {
    body.replace("\r\n", "\n").trim_end().to_owned()
}

/// The part of a remote body the user wrote (without our footer).
pub fn user_body(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let user = match body.rfind(FOOTER_START) {
        Some(at) => &body[..at],
        None => body.as_str(),
    };
    user.trim_end().to_owned()
}

/// The labels a user set (without the ones we derive from kind and status).
pub fn user_labels(labels: &[String]) -> Vec<String> {
    sorted_labels(
        labels
            .iter()
            .filter(|l| *l != "bug" && !l.starts_with("status:"))
            .cloned()
            .collect(),
    )
}

/// The fields inbound edits may change, in the board's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardView {
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub closed: bool,
}

impl BoardView {
    pub fn of_remote(state: &RemoteState) -> Self {
        Self {
            title: state.title.clone(),
            body: user_body(&state.body),
            labels: user_labels(&state.labels),
            closed: state.state == IssueState::Closed,
        }
    }
}

/// What an inbound change does to the board.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merge {
    pub title: Option<String>,
    pub body: Option<String>,
    pub labels: Option<Vec<String>>,
    /// `Some(true)`: close (move to done); `Some(false)`: reopen.
    pub closed: Option<bool>,
    /// Fields both sides changed differently: the board's value stays.
    pub conflicts: Vec<&'static str>,
}

/// Three-way merge: a remote edit of a field wins only if the board's
/// field is unchanged since the last agreed state.
pub fn merge(board: &BoardView, agreed: &BoardView, remote: &BoardView) -> Merge {
    fn field<T: PartialEq + Clone>(
        name: &'static str,
        board: &T,
        agreed: &T,
        remote: &T,
        conflicts: &mut Vec<&'static str>,
    ) -> Option<T> {
        if remote == agreed || remote == board {
            None
        } else if board == agreed {
            Some(remote.clone())
        } else {
            conflicts.push(name);
            None
        }
    }
    let mut conflicts = Vec::new();
    Merge {
        title: field(
            "title",
            &board.title,
            &agreed.title,
            &remote.title,
            &mut conflicts,
        ),
        body: field(
            "body",
            &board.body,
            &agreed.body,
            &remote.body,
            &mut conflicts,
        ),
        labels: field(
            "labels",
            &board.labels,
            &agreed.labels,
            &remote.labels,
            &mut conflicts,
        ),
        closed: field(
            "state",
            &board.closed,
            &agreed.closed,
            &remote.closed,
            &mut conflicts,
        ),
        conflicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(title: &str, body: &str, labels: &[&str], closed: bool) -> BoardView {
        BoardView {
            title: title.into(),
            body: body.into(),
            labels: labels.iter().map(|s| (*s).to_owned()).collect(),
            closed,
        }
    }

    #[test]
    fn a_remote_edit_wins_only_where_the_board_is_unchanged() {
        let agreed = view("t", "b", &["x"], false);
        let board = view("t", "board edit", &["x"], false);
        let remote = view("remote title", "remote body", &["x", "y"], true);
        let m = merge(&board, &agreed, &remote);
        assert_eq!(m.title.as_deref(), Some("remote title"));
        assert_eq!(m.body, None, "the board changed the body: it wins");
        assert_eq!(m.labels, Some(vec!["x".into(), "y".into()]));
        assert_eq!(m.closed, Some(true));
        assert_eq!(m.conflicts, vec!["body"]);
    }

    #[test]
    fn an_echo_of_our_own_change_changes_nothing() {
        let agreed = view("old", "b", &[], false);
        let board = view("new", "b", &[], false);
        // The remote now shows what we pushed: same as the board.
        let m = merge(&board, &agreed, &board.clone());
        assert_eq!(m, Merge::default());
    }

    #[test]
    fn the_body_round_trips_through_the_footer_and_markers_are_found() {
        let body = format!(
            "hello\r\n\n{FOOTER_START}[A-1](http://x/items/7) by TaskHarbor</sub>\n{}",
            item_marker("n0nce", 7)
        );
        assert_eq!(user_body(&body), "hello");
        assert_eq!(find_item_marker(&body, "n0nce"), Some(7));
        assert_eq!(find_item_marker(&body, "other"), None);
        assert_eq!(find_comment_marker(&comment_marker("n", 9), "n"), Some(9));
    }

    #[test]
    fn diff_sends_only_changed_fields() {
        let agreed = RemoteState {
            title: "t".into(),
            body: "b".into(),
            labels: vec!["a".into()],
            state: IssueState::Open,
        };
        let mut want = agreed.clone();
        want.state = IssueState::Closed;
        want.body = "b\r\n".into();
        let change = diff(&want, Some(&agreed));
        assert_eq!(
            change,
            IssueChange {
                state: Some(IssueState::Closed),
                ..IssueChange::default()
            }
        );
        assert!(diff(&agreed, Some(&agreed)).is_empty());
    }

    #[test]
    fn comment_texts_compare_by_content_and_time_orders_only_when_it_parses() {
        let ours = comment_body("hi", "ada", "n", 4);
        assert_eq!(find_comment_marker(&ours, "n"), Some(4));
        assert!(same_comment_text(&ours.replace('\n', "\r\n"), &ours));
        assert!(!same_comment_text("hi (edited)", &ours));
        assert_eq!(text_hash("a\r\nb  "), text_hash("a\nb"));
        assert_ne!(text_hash("a"), text_hash("b"));
        assert!(older_than("2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z"));
        assert!(!older_than("2024-01-01T00:00:01Z", "2024-01-01T00:00:01Z"));
        assert!(!older_than(
            "2015-05-17 18:21:36 UTC",
            "2024-01-01T00:00:01Z"
        ));
    }

    #[test]
    fn derived_labels_are_not_user_labels() {
        let labels = vec!["bug".into(), "status:ready".into(), "ui".into()];
        assert_eq!(user_labels(&labels), vec!["ui".to_owned()]);
    }
}
