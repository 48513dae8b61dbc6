//! Finding items by what a person types (issue 14): a key such as
//! `PLAT-8`, a bare number, or words of the title. The dashboard uses it
//! to let people enter dependencies by key instead of internal ids.

use super::error::CommandResult;
use crate::domain::Principal;
use serde::Serialize;
use sqlx::SqlitePool;

/// An item as a picker lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ItemMatch {
    pub id: i64,
    pub key: String,
    pub title: String,
    pub status: String,
}

/// The item number `text` names on a board with `board_key`: `PLAT-8`
/// (any case) or `8`. Another board's key names nothing here.
pub fn number_in(text: &str, board_key: &str) -> Option<i64> {
    let text = text.trim();
    let number = match text.rsplit_once('-') {
        Some((key, n)) if key.eq_ignore_ascii_case(board_key) => n,
        Some(_) => return None,
        None => text,
    };
    number.parse().ok().filter(|n| *n > 0)
}

/// Up to `limit` items of `board_id` that `text` names: the item whose key
/// or number it is first, then titles containing it, newest first.
pub async fn find_items(
    pool: &SqlitePool,
    caller: &Principal,
    board_id: i64,
    text: &str,
    limit: i64,
) -> CommandResult<Vec<ItemMatch>> {
    let board = super::boards::get(pool, caller, board_id).await?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let number = number_in(text, &board.key).unwrap_or(-1);
    let pattern = format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let found: Vec<ItemMatch> = sqlx::query_as(
        "SELECT i.id, b.key || '-' || i.number AS key, i.title, i.status FROM items i \
         JOIN boards b ON b.id = i.board_id WHERE i.board_id = ? \
         AND (i.number = ? OR i.title LIKE ? ESCAPE '\\') \
         ORDER BY i.number = ? DESC, i.id DESC LIMIT ?",
    )
    .bind(board_id)
    .bind(number)
    .bind(pattern)
    .bind(number)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::number_in;

    #[test]
    fn keys_and_numbers_name_items_of_this_board_only() {
        assert_eq!(number_in("PLAT-8", "PLAT"), Some(8));
        assert_eq!(number_in(" plat-8 ", "PLAT"), Some(8));
        assert_eq!(number_in("8", "PLAT"), Some(8));
        assert_eq!(number_in("CORE-8", "PLAT"), None);
        assert_eq!(number_in("PLAT-x", "PLAT"), None);
        assert_eq!(number_in("PLAT-0", "PLAT"), None);
        assert_eq!(number_in("login bug", "PLAT"), None);
    }
}
