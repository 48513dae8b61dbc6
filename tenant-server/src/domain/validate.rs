//! Per-field validation messages, collected so a client sees every problem
//! of a request at once (`422 validation_failed`, `details` by field).

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| message.into());
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

/// Trims `value` and checks its length in characters.
pub fn text(errors: &mut FieldErrors, field: &str, value: &str, min: usize, max: usize) -> String {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len < min {
        if min == 1 {
            errors.add(field, "must not be empty");
        } else {
            errors.add(field, format!("must be at least {min} characters"));
        }
    } else if len > max {
        errors.add(field, format!("must be at most {max} characters"));
    }
    trimmed.to_owned()
}

/// Checks that an integer lies in `min..=max`.
pub fn range(errors: &mut FieldErrors, field: &str, value: i64, min: i64, max: i64) -> i64 {
    if value < min || value > max {
        errors.add(field, format!("must be between {min} and {max}"));
    }
    value
}
