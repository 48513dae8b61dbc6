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

/// A one-line name or title: not blank, at most `max` characters as sent,
/// no control characters (newlines, NUL, escapes). Returns it trimmed.
pub fn line(errors: &mut FieldErrors, field: &str, value: &str, max: usize) -> String {
    if value.trim().is_empty() {
        errors.add(field, "must not be empty");
    } else if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    } else if value.chars().any(super::limits::is_refused_in_line) {
        errors.add(
            field,
            "must be one line without control characters (newlines, tabs, NUL)",
        );
    }
    value.trim().to_owned()
}

/// A text that may span lines (bodies): at most `max` characters as sent
/// and, if `required`, not blank. Returns it trimmed when required.
pub fn text(
    errors: &mut FieldErrors,
    field: &str,
    value: &str,
    required: bool,
    max: usize,
) -> String {
    if required && value.trim().is_empty() {
        errors.add(field, "must not be empty");
    } else if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    }
    if required {
        value.trim().to_owned()
    } else {
        value.to_owned()
    }
}

/// Checks that an integer lies in `min..=max`.
pub fn range(errors: &mut FieldErrors, field: &str, value: i64, min: i64, max: i64) -> i64 {
    if value < min || value > max {
        errors.add(field, format!("must be between {min} and {max}"));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_control_characters_but_bodies_keep_newlines() {
        for bad in ["a\nb", "nul\u{0}", "tab\there", "esc\u{1b}[31m", "\u{85}x"] {
            let mut errors = FieldErrors::new();
            line(&mut errors, "name", bad, 100);
            assert!(!errors.is_empty(), "{bad:?} should be refused");
        }
        let mut errors = FieldErrors::new();
        assert_eq!(line(&mut errors, "name", " Ready ", 100), "Ready");
        let body = text(&mut errors, "body", "line one\nline two", false, 100);
        assert!(errors.is_empty());
        assert_eq!(body, "line one\nline two");
    }

    #[test]
    fn lengths_count_what_was_sent_and_blank_is_empty() {
        let mut errors = FieldErrors::new();
        line(&mut errors, "title", &format!("{} ", "x".repeat(300)), 300);
        assert!(errors.iter().any(|(_, m)| m.contains("at most 300")));
        let mut errors = FieldErrors::new();
        line(&mut errors, "title", " \u{3000} ", 300);
        assert!(errors.iter().any(|(_, m)| m.contains("empty")));
    }
}
