//! Django's password validators (`AUTH_PASSWORD_VALIDATORS`) with Django's messages and its
//! list of 20,000 common passwords: for registration, password change and reset, and the
//! user commands.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::settings::PasswordValidatorConfig;

/// Django's list of common passwords (`django/contrib/auth/common-passwords.txt.gz`,
/// decompressed), one a line, lower case.
const COMMON_PASSWORDS: &str = include_str!("../../assets/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    // Built once, on first use: a constant table, not configuration.
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS.lines().map(str::trim).collect())
}

/// The user fields the similarity validator compares with (a user being created has no row
/// yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAttributes {
    /// `username`.
    pub username: String,
    /// `first_name`.
    pub first_name: String,
    /// `last_name`.
    pub last_name: String,
    /// `email`.
    pub email: String,
}

impl From<&crate::store::User> for UserAttributes {
    fn from(user: &crate::store::User) -> Self {
        Self {
            username: user.username.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            email: user.email.clone(),
        }
    }
}

/// The configured validators.
#[derive(Debug, Clone)]
pub struct PasswordValidators {
    validators: Vec<PasswordValidatorConfig>,
}

impl PasswordValidators {
    /// The validators of `AUTH_PASSWORD_VALIDATORS`, in order.
    pub fn new(validators: Vec<PasswordValidatorConfig>) -> Self {
        Self { validators }
    }

    /// Django's `validate_password`: every validator's message, in order; empty when the
    /// password passes. Without `user` the similarity validator is skipped, as Django skips
    /// it.
    pub fn validate(&self, password: &str, user: Option<&UserAttributes>) -> Vec<String> {
        let mut errors = Vec::new();
        for validator in &self.validators {
            let error = match validator {
                PasswordValidatorConfig::UserAttributeSimilarity {
                    user_attributes,
                    max_similarity_permille,
                } => user.and_then(|user| {
                    similar_attribute(password, user, user_attributes, *max_similarity_permille)
                }),
                PasswordValidatorConfig::MinimumLength { min_length } => {
                    (password.chars().count() < *min_length).then(|| {
                        let unit = if *min_length == 1 {
                            "character"
                        } else {
                            "characters"
                        };
                        format!(
                            "This password is too short. It must contain at least {min_length} {unit}."
                        )
                    })
                }
                PasswordValidatorConfig::CommonPassword => common_passwords()
                    .contains(password.to_lowercase().trim())
                    .then(|| "This password is too common.".to_owned()),
                PasswordValidatorConfig::NumericPassword => {
                    (!password.is_empty() && password.chars().all(char::is_numeric))
                        .then(|| "This password is entirely numeric.".to_owned())
                }
            };
            errors.extend(error);
        }
        errors
    }

    /// Only the similarity validator's message, if any (allauth's registration checks the
    /// others on the field and this one on the whole form).
    pub fn similarity(&self, password: &str, user: &UserAttributes) -> Option<String> {
        self.validators.iter().find_map(|v| match v {
            PasswordValidatorConfig::UserAttributeSimilarity {
                user_attributes,
                max_similarity_permille,
            } => similar_attribute(password, user, user_attributes, *max_similarity_permille),
            _ => None,
        })
    }

    /// [`Self::validate`] without the similarity validator.
    pub fn validate_without_user(&self, password: &str) -> Vec<String> {
        self.validate(password, None)
    }
}

/// Django's `UserAttributeSimilarityValidator`: the message for the first attribute (or part
/// of one, split at non-word characters) whose `SequenceMatcher.quick_ratio` with the password
/// reaches the maximum.
fn similar_attribute(
    password: &str,
    user: &UserAttributes,
    attributes: &[String],
    max_permille: u32,
) -> Option<String> {
    let max = f64::from(max_permille) / 1000.0;
    let password = password.to_lowercase();
    for attribute in attributes {
        let (value, verbose) = match attribute.as_str() {
            "username" => (&user.username, "username"),
            "first_name" => (&user.first_name, "first name"),
            "last_name" => (&user.last_name, "last name"),
            "email" => (&user.email, "email address"),
            _ => continue,
        };
        if value.is_empty() {
            continue;
        }
        let value = value.to_lowercase();
        let parts = value
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .chain(std::iter::once(value.as_str()));
        for part in parts {
            if exceeds_maximum_length_ratio(&password, max, part) {
                continue;
            }
            if quick_ratio(&password, part) >= max {
                return Some(format!("The password is too similar to the {verbose}."));
            }
        }
    }
    None
}

fn exceeds_maximum_length_ratio(password: &str, max_similarity: f64, value: &str) -> bool {
    let pwd_len = password.chars().count();
    let length_bound_similarity = max_similarity / 2.0 * pwd_len as f64;
    let value_len = value.chars().count();
    pwd_len >= 10 * value_len && (value_len as f64) < length_bound_similarity
}

/// Python's `difflib.SequenceMatcher(a, b).quick_ratio()`: twice the characters in common
/// (as multisets) over the total length.
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut counts = std::collections::HashMap::new();
    for c in b.chars() {
        *counts.entry(c).or_insert(0i64) += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        if let Some(n) = counts.get_mut(&c)
            && *n > 0
        {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> PasswordValidators {
        PasswordValidators::new(PasswordValidatorConfig::django_defaults())
    }

    fn user(username: &str, email: &str) -> UserAttributes {
        UserAttributes {
            username: username.into(),
            email: email.into(),
            ..Default::default()
        }
    }

    #[test]
    fn one_gets_djangos_three_messages_in_order() {
        assert_eq!(
            defaults().validate("1", Some(&user("carol", "carol@example.com"))),
            [
                "This password is too short. It must contain at least 8 characters.",
                "This password is too common.",
                "This password is entirely numeric."
            ]
        );
    }

    #[test]
    fn similarity_follows_the_reference() {
        let v = defaults();
        assert_eq!(
            v.validate("carol1234", Some(&user("carol", "carol@example.com"))),
            ["The password is too similar to the username."]
        );
        assert_eq!(
            v.validate("example12", Some(&user("dave", "dave@example.com"))),
            ["The password is too similar to the email address."]
        );
        assert!(
            v.validate(
                "correct-horse-battery",
                Some(&user("carol", "c@example.com"))
            )
            .is_empty()
        );
        assert_eq!(
            v.validate("similar12", Some(&user("similar", ""))),
            ["The password is too similar to the username."]
        );
    }

    #[test]
    fn common_passwords_are_djangos_list() {
        let v = defaults();
        assert_eq!(
            v.validate("Password1", None),
            ["This password is too common."]
        );
        assert!(v.validate("bob-pass-1234", None).is_empty());
        assert!(common_passwords().len() > 19_000);
    }
}
