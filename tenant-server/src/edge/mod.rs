//! What the HTTP edges (the REST API, the dashboard, `/mcp`) share
//! without importing one another: the session cookie's wire format. Each
//! edge parses and presents; the commands they call are `crate::commands`.

pub mod cookies;
