//! The HTTP API of API.md under `/api`, plus the operations endpoints.
//!
//! Routes are registered through utoipa-axum from the handlers' own
//! `#[utoipa::path]` annotations, so the OpenAPI document served at
//! `/api/openapi.json` is generated from the very routes that run.

pub mod boards;
pub mod contract;
pub mod error;
pub mod events;
pub mod extract;
pub mod items;
pub mod middleware;
pub mod ops;
pub mod queue;
pub mod stats;
pub mod sync;
pub mod tokens;
pub mod webhooks;

use crate::AppState;
use axum::Router;
use axum::routing::get;
use error::ApiError;
use serde::{Deserialize, Deserializer};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "TaskHarbor tenant API", description = "A concurrency-safe work queue for humans and AI agents. See API.md."),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("api_key" = [])),
    components(schemas(error::ErrorBody))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The `/api` routes and the OpenAPI document describing exactly them.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tokens::create_token, tokens::list_tokens))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(tokens::me))
        .routes(routes!(boards::create_board, boards::list_boards))
        .routes(routes!(boards::get_board, boards::patch_board))
        .routes(routes!(boards::list_lanes, boards::create_lane))
        .routes(routes!(boards::patch_lane, boards::delete_lane))
        .routes(routes!(stats::board_stats))
        .routes(routes!(items::create_item, items::list_items))
        .routes(routes!(items::get_item, items::patch_item))
        .routes(routes!(items::add_comment, items::list_comments))
        .routes(routes!(items::item_events))
        .routes(routes!(queue::allowed))
        .routes(routes!(queue::claim))
        .routes(routes!(queue::claim_next))
        .routes(routes!(queue::heartbeat))
        .routes(routes!(queue::release))
        .routes(routes!(queue::move_item))
        .routes(routes!(events::feed))
        .routes(routes!(events::stream))
        .routes(routes!(webhooks::create_webhook, webhooks::list_webhooks))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::patch_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::retry_delivery))
        .routes(routes!(sync::put_link, sync::get_link, sync::delete_link))
        .routes(routes!(sync::rotate_secret))
        .split_for_parts()
}

/// The operations routes (no authentication).
pub fn ops_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(ops::openapi))
}

/// Unknown paths answer in the API.md shape.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("route".into())
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Pagination cursors: the last id seen, as decimal digits. Clients treat
/// them as opaque; the document states their pattern so that a generated
/// client can tell a well-formed cursor from garbage.
pub struct Cursor;

impl Cursor {
    pub const PATTERN: &'static str = "^[0-9]{1,18}$";

    pub fn encode(last_id: i64) -> String {
        last_id.to_string()
    }

    pub fn decode(cursor: &str) -> Result<i64, ApiError> {
        (!cursor.is_empty() && cursor.len() <= 18 && cursor.bytes().all(|b| b.is_ascii_digit()))
            .then(|| cursor.parse().ok())
            .flatten()
            .ok_or_else(|| {
                ApiError::Invalid("cursor must be the next_cursor of a previous page".into())
            })
    }
}
