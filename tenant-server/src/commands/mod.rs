//! The commands every edge calls: REST handlers, MCP tools, the dashboard,
//! the lease reaper (and next, sync).
//!
//! A command takes values the edge already parsed into domain types, and
//! runs as one closure on the store's writer thread: one hop, inside a
//! group-committed transaction, answered only once that
//! transaction is durable (see `store::writer`). The change notification
//! fires from that commit, so no edge announces changes itself. Reads stay
//! on the store's reader pool and are called directly.

pub mod boards;
pub mod idempotency;
pub mod items;
pub mod queue;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod webhooks;

#[cfg(test)]
mod admin_tests;
#[cfg(test)]
mod tests;
