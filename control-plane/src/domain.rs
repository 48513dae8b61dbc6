//! Pure rules of the control plane: what a valid signup and tenant id are,
//! and how secrets are generated and hashed. No axum, no sqlx, no kube here.

use std::collections::BTreeMap;

use rand::RngCore;
use sha2::{Digest, Sha256};
use taskharbor_operator::crd::{InvalidSpec, TaskHarborSpec};

pub const EMAIL_MAX: usize = 254;
pub const COMPANY_MAX: usize = 200;
pub const NOTE_MAX: usize = 2000;

/// An email address with plausible syntax, kept as typed (trimmed) plus a
/// lower-cased form used for case-insensitive deduplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub display: String,
    pub normalized: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("is required");
        }
        if s.chars().count() > EMAIL_MAX {
            return Err("must be at most 254 characters");
        }
        let (local, domain) = s.rsplit_once('@').ok_or("must be an email address")?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && domain.len() <= 253
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()));
        if !local_ok || !domain_ok {
            return Err("must be an email address");
        }
        Ok(Email {
            display: s.to_owned(),
            normalized: s.to_ascii_lowercase(),
        })
    }
}

/// What a waitlist form or JSON body carries, before validation.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct SignupInput {
    pub email: Option<String>,
    pub company: Option<String>,
    pub note: Option<String>,
    /// Honeypot: hidden from humans by CSS; bots fill it in.
    #[serde(default)]
    pub website: Option<String>,
    /// CSRF token of the HTML form (ignored for JSON).
    #[serde(default)]
    pub csrf_token: Option<String>,
}

impl SignupInput {
    pub fn is_bot(&self) -> bool {
        self.website
            .as_deref()
            .is_some_and(|w| !w.trim().is_empty())
    }
}

/// A validated signup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSignup {
    pub email: Email,
    pub company: Option<String>,
    pub note: Option<String>,
}

/// Per-field messages, as in the `validation_failed` details.
pub type FieldErrors = BTreeMap<&'static str, String>;

impl NewSignup {
    pub fn parse(input: &SignupInput) -> Result<NewSignup, FieldErrors> {
        let mut errors = FieldErrors::new();
        let email = match Email::parse(input.email.as_deref().unwrap_or("")) {
            Ok(email) => Some(email),
            Err(message) => {
                errors.insert("email", message.to_owned());
                None
            }
        };
        let company = optional_text(
            &mut errors,
            "company",
            input.company.as_deref(),
            COMPANY_MAX,
        );
        let note = optional_text(&mut errors, "note", input.note.as_deref(), NOTE_MAX);
        match email {
            Some(email) if errors.is_empty() => Ok(NewSignup {
                email,
                company,
                note,
            }),
            _ => Err(errors),
        }
    }
}

fn optional_text(
    errors: &mut FieldErrors,
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if value.chars().count() > max {
        errors.insert(field, format!("must be at most {max} characters"));
        return None;
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        errors.insert(field, "must not contain control characters".to_owned());
        return None;
    }
    Some(value.to_owned())
}

/// The spec of a newly approved tenant, validated with the operator's own
/// rules (so the tenant id is exactly what the operator accepts).
pub fn tenant_spec(tenant: &str, version: &str) -> Result<TaskHarborSpec, InvalidSpec> {
    let spec: TaskHarborSpec =
        serde_json::from_value(serde_json::json!({"tenant": tenant, "version": version}))
            .map_err(|_| InvalidSpec::Tenant(tenant.to_owned()))?;
    spec.validate()?;
    Ok(spec)
}

/// 32 random bytes, hex-encoded: reveal tokens and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_normalized_for_dedupe() {
        let e = Email::parse("  Ada.Lovelace+tt@Example.COM ").expect("valid");
        assert_eq!(e.display, "Ada.Lovelace+tt@Example.COM");
        assert_eq!(e.normalized, "ada.lovelace+tt@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a..b@example.com",
            "ada@-x.com",
            "ada@example.c0m",
            "a b@example.com",
            "<script>@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn signup_reports_every_bad_field() {
        let input = SignupInput {
            email: Some("nope".into()),
            company: Some("c".repeat(COMPANY_MAX + 1)),
            note: Some("n".repeat(NOTE_MAX + 1)),
            ..SignupInput::default()
        };
        let errors = NewSignup::parse(&input).expect_err("invalid");
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            ["company", "email", "note"]
        );
    }

    #[test]
    fn blank_optional_fields_become_none() {
        let input = SignupInput {
            email: Some("a@b.io".into()),
            company: Some("  ".into()),
            note: None,
            ..SignupInput::default()
        };
        let s = NewSignup::parse(&input).expect("valid");
        assert_eq!(s.company, None);
    }

    #[test]
    fn tenant_ids_follow_the_operator_rules() {
        assert!(tenant_spec("acme", "0.1.0").is_ok());
        for bad in ["Acme", "-acme", "acme-", "a_b", "", &"a".repeat(41)] {
            assert!(tenant_spec(bad, "0.1.0").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 64);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
