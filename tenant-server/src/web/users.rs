//! The admin's user actions (issue 14): disable, enable, delete and reset
//! a password, each a CSRF-checked form post confirmed in the browser
//! first. The work is done by `commands::users`; this parses and presents.

use super::pages::{SignedIn, field, require_admin, users_page};
use super::{WebError, parse_form, session};
use crate::AppState;
use crate::commands::users;
use crate::domain::users::password_ok;
use crate::edge::error::ApiError;
use crate::store::{self, CommandError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

/// `POST /users/{id}/{action}`.
pub async fn user_action(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((user_id, action)): Path<(i64, String)>,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = parse_form(&body);
    if !session::secrets_match(&session.csrf, field(&form, "csrf")) {
        return Err(ApiError::Forbidden("missing or wrong CSRF token".into()).into());
    }
    require_admin(&session)?;
    let admin = session.user.principal();
    let name = field(&form, "username").to_owned();
    let now = store::now_ms();
    let done = match action.as_str() {
        "disable" => users::set_disabled(&state.store, &admin, user_id, true, now)
            .await
            .map(|()| format!("{name} is disabled and signed out.")),
        "enable" => users::set_disabled(&state.store, &admin, user_id, false, now)
            .await
            .map(|()| format!("{name} may sign in again.")),
        "delete" => users::delete(&state.store, &admin, user_id, now)
            .await
            .map(|released| {
                format!("{name} is deleted; {released} claim(s) released. Their history stays.")
            }),
        "password" => {
            let password = field(&form, "password");
            if !password_ok(password) {
                return users_page(
                    &state,
                    &session,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some("The new password must be at least 10 characters."),
                    None,
                )
                .await;
            }
            let hash = session::hash_password_blocking(password.to_owned()).await?;
            users::set_password(&state.store, &admin, user_id, hash)
                .await
                .map(|()| format!("{name} has a new password and was signed out everywhere."))
        }
        _ => return Err(ApiError::NotFound("route".into()).into()),
    };
    match done {
        Ok(notice) => users_page(&state, &session, StatusCode::OK, None, Some(&notice)).await,
        Err(CommandError::Rule(rule)) => {
            let message = rule.to_string();
            let status = ApiError::from(CommandError::Rule(rule)).parts().0;
            users_page(&state, &session, status, Some(&message), None).await
        }
        Err(e) => Err(e.into()),
    }
}
