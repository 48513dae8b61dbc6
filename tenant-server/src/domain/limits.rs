//! Every bound the server enforces on input, in one place.
//!
//! The parsers in `domain` check values against these constants, and
//! `api::contract` writes the very same constants into the OpenAPI document
//! (utoipa's attributes take only literals), so the published contract and
//! the server's behaviour cannot drift apart.

/// Item titles, in characters.
pub const TITLE_MAX: usize = 300;
/// Item and comment bodies, move notes, in characters.
pub const BODY_MAX: usize = 100_000;
/// Labels per item (as sent, duplicates included).
pub const LABELS_MAX: usize = 20;
/// One label, in characters.
pub const LABEL_MAX: usize = 50;
/// `blocked_by` ids per item (as sent).
pub const BLOCKERS_MAX: usize = 100;
/// Priority: 0 is the most urgent.
pub const PRIORITY_MIN: i64 = 0;
pub const PRIORITY_MAX: i64 = 4;

/// Board, lane, token and worker names, in characters.
pub const NAME_MAX: usize = 100;
/// A board key: an upper-case letter, then 1 to 9 upper-case letters or digits.
pub const BOARD_KEY_PATTERN: &str = "^[A-Z][A-Z0-9]{1,9}$";
pub const BOARD_KEY_MIN: usize = 2;
pub const BOARD_KEY_MAX: usize = 10;

/// Claims one worker may hold on a board.
pub const CLAIM_LIMIT_MIN: i64 = 1;
pub const CLAIM_LIMIT_MAX: i64 = 1000;
/// Lease lengths, in seconds (one second to one year).
pub const LEASE_SECONDS_MIN: i64 = 1;
pub const LEASE_SECONDS_MAX: i64 = 365 * 24 * 3600;
/// A lane's WIP limit (0 closes the lane to new work).
pub const WIP_LIMIT_MIN: i64 = 0;
pub const WIP_LIMIT_MAX: i64 = 100_000;
/// A lane's 0-based position.
pub const LANE_POSITION_MIN: i64 = 0;
pub const LANE_POSITION_MAX: i64 = 1000;
/// Lanes one board may have.
pub const LANES_PER_BOARD_MAX: i64 = 50;

/// A release reason, in characters.
pub const REASON_MAX: usize = 2000;
/// A webhook URL, in characters.
pub const URL_MAX: usize = 2000;
/// A linked repository's path (`owner/name`, `group/sub/project`), in characters.
pub const REPO_MAX: usize = 300;
/// A GitHub/GitLab token given with a sync link, in characters.
pub const PROVIDER_TOKEN_MAX: usize = 1000;
/// How long a rotated webhook secret keeps signing, in seconds.
pub const OVERLAP_SECONDS_MIN: i64 = 0;
pub const OVERLAP_SECONDS_MAX: i64 = 7 * 86_400;
pub const OVERLAP_SECONDS_DEFAULT: i64 = 86_400;

/// Page sizes: the queue, item lists and webhook deliveries.
pub const LIST_LIMIT_MAX: i64 = 200;
pub const LIST_LIMIT_DEFAULT: i64 = 50;
/// Page sizes: comments, history and the event feed.
pub const PAGE_LIMIT_MAX: i64 = 500;
pub const PAGE_LIMIT_DEFAULT: i64 = 100;
/// Long-poll wait of `GET /api/allowed`, in seconds.
pub const WAIT_SECONDS_MAX: i64 = 60;

/// Characters Rust's `char::is_whitespace` accepts (Unicode White_Space),
/// spelled out for JSON Schema patterns so both sides agree exactly.
const WHITESPACE_CLASS: &str =
    r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (Unicode category Cc).
const CONTROL_CLASS: &str = r"\u0000-\u001f\u007f-\u009f";

/// A name or title: one line, no control characters, not blank.
pub fn single_line_pattern() -> String {
    format!("^[^{CONTROL_CLASS}]*[^{CONTROL_CLASS}{WHITESPACE_CLASS}][^{CONTROL_CLASS}]*$")
}

/// A text that must not be blank (a comment): contains a non-space character.
pub fn not_blank_pattern() -> String {
    format!("[^{WHITESPACE_CLASS}]")
}

/// Whether `c` is refused in names and titles.
pub fn is_refused_in_line(c: char) -> bool {
    c.is_control()
}
