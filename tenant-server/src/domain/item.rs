//! Items and comments: kinds, and request parsing into valid values.

use super::limits::{
    BLOCKERS_MAX, BODY_MAX, LABEL_MAX, LABELS_MAX, PRIORITY_MAX, PRIORITY_MIN, TITLE_MAX,
};
use super::validate::{self, FieldErrors};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Task,
    Subtask,
    Defect,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Subtask => "subtask",
            Self::Defect => "defect",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Task, Self::Subtask, Self::Defect]
            .into_iter()
            .find(|k| k.as_str() == value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommentKind {
    Comment,
    Progress,
    Checkpoint,
}

impl CommentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Comment => "comment",
            Self::Progress => "progress",
            Self::Checkpoint => "checkpoint",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Comment, Self::Progress, Self::Checkpoint]
            .into_iter()
            .find(|k| k.as_str() == value)
    }
}

pub const DEFAULT_PRIORITY: i64 = 2;

fn parse_title(errors: &mut FieldErrors, title: &str) -> String {
    validate::line(errors, "title", title, TITLE_MAX)
}

fn parse_body(errors: &mut FieldErrors, body: &str) -> String {
    validate::text(errors, "body", body, false, BODY_MAX)
}

fn parse_priority(errors: &mut FieldErrors, priority: i64) -> i64 {
    validate::range(errors, "priority", priority, PRIORITY_MIN, PRIORITY_MAX)
}

/// Bounds labels as sent, then trims and drops duplicates (first-seen order).
fn parse_labels(errors: &mut FieldErrors, labels: &[String]) -> Vec<String> {
    if labels.len() > LABELS_MAX {
        errors.add("labels", format!("at most {LABELS_MAX} labels"));
    }
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for label in labels {
        let mut one = FieldErrors::new();
        let label = validate::line(&mut one, "labels", label, LABEL_MAX);
        if !one.is_empty() {
            errors.add(
                "labels",
                format!("each label must be one line of 1 to {LABEL_MAX} characters"),
            );
            continue;
        }
        if !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

fn parse_blockers(errors: &mut FieldErrors, blockers: &[i64]) -> Vec<i64> {
    if blockers.len() > BLOCKERS_MAX {
        errors.add("blocked_by", format!("at most {BLOCKERS_MAX} items"));
    }
    let mut out: Vec<i64> = Vec::with_capacity(blockers.len());
    for &id in blockers {
        if id <= 0 {
            errors.add("blocked_by", "ids are positive integers");
        } else if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// The fields of a request to create an item, as received.
#[derive(Debug, Clone, Default)]
pub struct NewItemInput<'a> {
    pub title: &'a str,
    pub body: Option<&'a str>,
    pub kind: Option<ItemKind>,
    pub parent_id: Option<i64>,
    pub priority: Option<i64>,
    pub labels: Option<&'a [String]>,
    pub agent_ready: Option<bool>,
    pub blocked_by: Option<&'a [i64]>,
    pub lane_id: Option<i64>,
}

/// An item that may be created: every field already valid on its own.
/// (Rules that need the database, such as "the parent exists", are checked
/// by the command.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub title: String,
    pub body: String,
    pub kind: ItemKind,
    pub parent_id: Option<i64>,
    pub priority: i64,
    pub labels: Vec<String>,
    pub agent_ready: bool,
    pub blocked_by: Vec<i64>,
    pub lane_id: Option<i64>,
}

impl NewItem {
    pub fn parse(input: NewItemInput<'_>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let title = parse_title(&mut errors, input.title);
        let body = parse_body(&mut errors, input.body.unwrap_or_default());
        let kind = input.kind.unwrap_or(ItemKind::Task);
        let priority = parse_priority(&mut errors, input.priority.unwrap_or(DEFAULT_PRIORITY));
        let labels = parse_labels(&mut errors, input.labels.unwrap_or_default());
        let blocked_by = parse_blockers(&mut errors, input.blocked_by.unwrap_or_default());
        if kind == ItemKind::Subtask && input.parent_id.is_none() {
            errors.add("parent_id", "a subtask needs a parent item");
        }
        errors.into_result()?;
        Ok(Self {
            title,
            body,
            kind,
            parent_id: input.parent_id,
            priority,
            labels,
            agent_ready: input.agent_ready.unwrap_or(false),
            blocked_by,
            lane_id: input.lane_id,
        })
    }
}

/// The fields of an edit, as received. `parent_id: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ItemPatchInput<'a> {
    pub title: Option<&'a str>,
    pub body: Option<&'a str>,
    pub kind: Option<ItemKind>,
    pub parent_id: Option<Option<i64>>,
    pub priority: Option<i64>,
    pub labels: Option<&'a [String]>,
    pub agent_ready: Option<bool>,
    pub blocked_by: Option<&'a [i64]>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemPatch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub kind: Option<ItemKind>,
    pub parent_id: Option<Option<i64>>,
    pub priority: Option<i64>,
    pub labels: Option<Vec<String>>,
    pub agent_ready: Option<bool>,
    pub blocked_by: Option<Vec<i64>>,
}

impl ItemPatch {
    pub fn parse(input: ItemPatchInput<'_>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let patch = Self {
            title: input.title.map(|t| parse_title(&mut errors, t)),
            body: input.body.map(|b| parse_body(&mut errors, b)),
            kind: input.kind,
            parent_id: input.parent_id,
            priority: input.priority.map(|p| parse_priority(&mut errors, p)),
            labels: input.labels.map(|l| parse_labels(&mut errors, l)),
            agent_ready: input.agent_ready,
            blocked_by: input.blocked_by.map(|b| parse_blockers(&mut errors, b)),
        };
        errors.into_result()?;
        Ok(patch)
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComment {
    pub body: String,
    pub kind: CommentKind,
}

impl NewComment {
    pub fn parse(body: &str, kind: Option<CommentKind>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let trimmed = validate::text(&mut errors, "body", body, true, BODY_MAX);
        errors.into_result()?;
        Ok(Self {
            body: trimmed,
            kind: kind.unwrap_or(CommentKind::Comment),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_title_and_a_bad_priority_are_both_reported() {
        let err = NewItem::parse(NewItemInput {
            title: "  ",
            priority: Some(9),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<_> = err.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["priority", "title"]);
    }

    #[test]
    fn labels_are_trimmed_and_deduplicated() {
        let labels = vec![" ui ".to_owned(), "ui".to_owned(), "api".to_owned()];
        let item = NewItem::parse(NewItemInput {
            title: "x",
            labels: Some(&labels),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(item.labels, ["ui", "api"]);
        assert_eq!(item.priority, DEFAULT_PRIORITY);
        assert_eq!(item.kind, ItemKind::Task);
    }

    #[test]
    fn a_subtask_needs_a_parent() {
        let err = NewItem::parse(NewItemInput {
            title: "x",
            kind: Some(ItemKind::Subtask),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.iter().any(|(f, _)| f == "parent_id"));
    }
}
