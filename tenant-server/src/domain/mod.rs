//! The queue's rules as pure functions over plain values.
//!
//! Nothing in here knows about HTTP, SQL or the wall clock: callers pass the
//! current time in milliseconds. `store` loads the values, calls these rules
//! inside its transaction and writes what they decide; `api` and the MCP
//! endpoint only ever reach the rules through `store`'s commands.

pub mod auth;
pub mod board;
pub mod error;
pub mod event;
pub mod flow;
pub mod item;
pub mod limits;
pub mod queue;
pub mod users;
pub mod validate;
pub mod webhook;

pub use auth::{MintTarget, Principal, Scope, WorkerKind};
pub use error::DomainError;
pub use validate::FieldErrors;
