//! The REST API's error type is the one every HTTP edge answers with; it
//! lives in `crate::edge::error` so the dashboard can use it without
//! importing the API. Re-exported here for the API's own modules.

pub use crate::edge::error::*;
