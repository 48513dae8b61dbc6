//! The one error a command can end with: a rule said no, or the database failed.

use crate::domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Rule(#[from] DomainError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database error")]
    Writer(#[from] super::writer::WriterError),
}

impl From<rusqlite::Error> for CommandError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Writer(e.into())
    }
}

impl From<crate::domain::FieldErrors> for CommandError {
    fn from(errors: crate::domain::FieldErrors) -> Self {
        Self::Rule(DomainError::Validation(errors))
    }
}

pub type CommandResult<T> = Result<T, CommandError>;

pub fn not_found(what: &'static str) -> CommandError {
    CommandError::Rule(DomainError::NotFound(what))
}
