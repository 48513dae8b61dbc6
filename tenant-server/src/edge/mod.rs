//! What the HTTP edges (the REST API, the dashboard, `/mcp`) share
//! without importing one another: the error shape of API.md (how a
//! command's refusal becomes a status and a body) and the session
//! cookie's wire format. Each edge parses and presents; the commands they
//! call are `crate::commands`.

pub mod cookies;
pub mod error;
