//! Accounts the way dj-rest-auth and django-allauth keep them, free of HTTP: logging in with
//! allauth's checks, the user's own profile, and (in the submodules) passwords, their
//! validation, reset tokens and email confirmation.
//!
//! Every token decision goes through [`Lifecycle`]: this module decides what dj-rest-auth's
//! flows mean (which checks run, in which order, with which of Django's messages) and asks the
//! lifecycle to log in, refresh, blacklist or set a password. Its one error type,
//! [`AccountError`], carries Django's messages by field; the HTTP layer renders them.

mod flows;
pub mod signing;
pub mod validation;

pub use flows::{
    EMAIL_TAKEN, INVALID_VALUE, LinkOrigin, MAX_PENDING_JOBS, OLD_PASSWORD_WRONG, PASSWORDS_DIFFER,
    PASSWORDS_DIFFER_REGISTRATION, PasswordChange, Registered, Registration, ResetConfirm,
    merge_in_order,
};

use std::sync::Arc;

use unicode_normalization::UnicodeNormalization;

use crate::lifecycle::{ClientInfo, Lifecycle, LifecycleError, LoggedIn};
use crate::mail::{MailError, Mailer, Templates};
use crate::settings::UsernameField;
use crate::store::{ProfileUpdate, User};

/// Field errors in field order, each with Django's messages; `non_field_errors` for checks of
/// the whole form.
pub type Invalid = Vec<(String, Vec<String>)>;

/// The field name DRF gives checks of a whole form.
pub const NON_FIELD_ERRORS: &str = "non_field_errors";

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The request's values failed Django's or allauth's checks: 400 with these messages.
    #[error("invalid fields")]
    Invalid(Invalid),
    /// The thing asked for does not exist (an unknown or used confirmation key): 404.
    #[error("not found")]
    NotFound,
    /// A lifecycle failure (a bad token, the store): answered as the lifecycle's errors are.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

impl From<crate::store::StoreError> for AccountError {
    fn from(e: crate::store::StoreError) -> Self {
        AccountError::Lifecycle(e.into())
    }
}

impl AccountError {
    /// One message for one field.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        AccountError::Invalid(vec![(name.to_owned(), vec![message.into()])])
    }

    /// One message for the whole form.
    pub fn non_field(message: impl Into<String>) -> Self {
        Self::field(NON_FIELD_ERRORS, message)
    }
}

/// dj-rest-auth's login failure, one message for an unknown user, an inactive one and a wrong
/// password.
pub const UNABLE_TO_LOG_IN: &str = "Unable to log in with provided credentials.";

/// Django's `UnicodeUsernameValidator` message.
pub const INVALID_USERNAME: &str = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";

/// Django's unique message for the username.
pub const USERNAME_TAKEN: &str = "A user with that username already exists.";

/// Django's `UnicodeUsernameValidator` and the model's `max_length=150`, as DRF runs them on
/// an already trimmed, non-blank value: every message that applies, in Django's order.
pub fn username_errors(username: &str) -> Vec<String> {
    let mut errors = Vec::new();
    // `^[\w.@+-]+\Z` with Python's Unicode `\w`: letters, digits (any script), underscore.
    let is_valid = !username.is_empty()
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '@' | '+' | '-'));
    if !is_valid {
        errors.push(INVALID_USERNAME.to_owned());
    }
    if username.chars().count() > 150 {
        errors.push("Ensure this field has no more than 150 characters.".to_owned());
    }
    errors
}

/// The profile fields dj-rest-auth's `UserDetailsSerializer` lets a user change (`email` and
/// `pk` are read-only there); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    /// A new username, already checked against [`username_errors`].
    pub username: Option<String>,
    /// A new first name.
    pub first_name: Option<String>,
    /// A new last name.
    pub last_name: Option<String>,
}

/// dj-rest-auth's account flows over a [`Lifecycle`], with the validators, the signer of
/// reset tokens and confirmation keys, and the mailer the settings describe.
pub struct Accounts {
    lifecycle: Arc<Lifecycle>,
    validators: validation::PasswordValidators,
    signer: signing::Signer,
    mailer: Mailer,
    templates: Templates,
    /// Permits of the background jobs ([`MAX_PENDING_JOBS`]).
    jobs: Arc<tokio::sync::Semaphore>,
    /// Held by a resend from its cooldown check to its new key's row.
    resend_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// The account flows of `lifecycle`, under its settings: the validators of
    /// `AUTH_PASSWORD_VALIDATORS`, links signed with `SECRET_KEY`, mail through
    /// `EMAIL_BACKEND` with the templates of `EMAIL_TEMPLATE_DIR`.
    ///
    /// Fails when the mail settings are unusable (a template file that cannot be read, an SMTP
    /// host lettre refuses).
    pub fn new(lifecycle: Arc<Lifecycle>) -> Result<Self, MailError> {
        let settings = lifecycle.settings();
        let validators =
            validation::PasswordValidators::new(settings.auth_password_validators.clone());
        let secret = match (&settings.secret_key, &settings.signing_key) {
            (Some(secret), _) => secret.as_bytes().to_vec(),
            (None, Some(key)) if settings.algorithm.is_hmac() => key.as_bytes().to_vec(),
            _ => {
                tracing::warn!(
                    "SECRET_KEY is not set: reset links and confirmation keys are signed with a \
                     random secret and stop working when this process ends"
                );
                let mut secret = vec![0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
                secret
            }
        };
        let mailer = Mailer::from_settings(settings)?;
        let templates = Templates::from_settings(settings)?;
        Ok(Self {
            validators,
            signer: signing::Signer::new(secret),
            mailer,
            templates,
            lifecycle,
            jobs: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_JOBS)),
            resend_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The store, which every account flow needs.
    fn store(&self) -> Result<Arc<dyn crate::store::Store>, AccountError> {
        Ok(self
            .lifecycle
            .store()
            .ok_or(LifecycleError::NoStore)?
            .clone())
    }

    /// The password validators of `AUTH_PASSWORD_VALIDATORS`.
    pub fn validators(&self) -> &validation::PasswordValidators {
        &self.validators
    }

    /// The mailer.
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// The lifecycle every token decision goes through.
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    /// dj-rest-auth's login: `login` is the username (the email with `USERNAME_FIELD =
    /// "email"`), already checked to be present. Checks the password as the lifecycle does
    /// (one answer, after the same work, for an unknown user, an inactive one and a wrong
    /// password) and then starts a session.
    pub async fn log_in(
        &self,
        login: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<LoggedIn, AccountError> {
        let user = match self.lifecycle.check_credentials(login, password).await {
            Ok(user) => user,
            Err(LifecycleError::InvalidCredentials) => {
                return Err(AccountError::non_field(UNABLE_TO_LOG_IN));
            }
            Err(e) => return Err(e.into()),
        };
        // allauth checks the address after the password: a wrong password keeps the generic
        // message.
        if !self.is_verified_enough(&user).await? {
            return Err(AccountError::non_field("E-mail is not verified."));
        }
        Ok(self.lifecycle.start_session(user, client).await?)
    }

    /// The message dj-rest-auth gives when the login field or the password is missing.
    pub fn missing_credentials_message(&self) -> &'static str {
        match self.lifecycle.settings().username_field {
            UsernameField::Username => "Must include \"username\" and \"password\".",
            UsernameField::Email => "Must include \"email\" and \"password\".",
        }
    }

    /// Changes the user's own profile. A new username must be free, compared without regard to
    /// case; the user's own current name counts as free (allauth refuses it too, which makes a
    /// PUT that keeps the name impossible: not copied).
    pub async fn update_user(&self, user: &User, change: UserChange) -> Result<User, AccountError> {
        let store = self.store()?;
        let username = change.username.map(|u| u.nfkc().collect::<String>());
        if let Some(name) = &username
            && store.is_username_taken(name, Some(user.id)).await?
        {
            return Err(AccountError::field("username", USERNAME_TAKEN));
        }
        let update = ProfileUpdate {
            username,
            email: None,
            first_name: change.first_name,
            last_name: change.last_name,
        };
        if update == ProfileUpdate::default() {
            return Ok(user.clone());
        }
        match self.lifecycle.update_profile(user.id, update).await {
            Ok(user) => Ok(user),
            Err(LifecycleError::Store(crate::store::StoreError::Conflict(_))) => {
                Err(AccountError::field("username", USERNAME_TAKEN))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_djangos_validator() {
        assert!(username_errors("bob.smith+x@y-z_1").is_empty());
        assert!(username_errors("Jöhn").is_empty());
        assert_eq!(username_errors("b o b"), vec![INVALID_USERNAME.to_owned()]);
        assert_eq!(username_errors(&"a".repeat(151)).len(), 1);
        assert_eq!(username_errors(&"a b".repeat(60)).len(), 2);
    }
}
