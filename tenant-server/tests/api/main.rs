//! Integration tests: the real server on a loopback port, over a real
//! SQLite file, called over HTTP. One binary (see CONVENTIONS.md).

mod support;

mod auth;
mod bad_input;
mod concurrency;
mod contract;
mod crash;
mod items;
mod mcp;
mod operations;
mod queue;
mod receiver;
mod stats;
mod sync;
mod web;
mod webhooks;
