//! The password and registration flows of dj-rest-auth with allauth: change, reset (request
//! and confirm), registration, email confirmation and resend. Inputs are values the HTTP layer
//! has already read as DRF fields (present, trimmed); every check after that, its order and
//! its message, is here.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::signing::{base36_to_int, int_to_base36};
use super::validation::UserAttributes;
use super::{AccountError, Accounts, Invalid, NON_FIELD_ERRORS, USERNAME_TAKEN};
use crate::lifecycle::{ClientInfo, LifecycleError, LoggedIn};
use crate::mail::{Mail, Templates};
use crate::settings::EmailVerification;
use crate::store::{NewUser, StoreError, User};

/// Django's `SetPasswordForm` message, with its U+2019.
pub const PASSWORDS_DIFFER: &str = "The two password fields didn\u{2019}t match.";

/// dj-rest-auth's registration message, with an ASCII quote.
pub const PASSWORDS_DIFFER_REGISTRATION: &str = "The two password fields didn't match.";

/// Django's `PasswordChangeForm` message for a wrong current password.
pub const OLD_PASSWORD_WRONG: &str =
    "Your old password was entered incorrectly. Please enter it again.";

/// dj-rest-auth's message for an address some account already has.
pub const EMAIL_TAKEN: &str = "User is already registered with this e-mail address.";

/// How many account jobs (reset mails, resends) may wait at a time before new ones are
/// dropped.
pub const MAX_PENDING_JOBS: usize = 1000;

/// dj-rest-auth's message for a bad reset `uid` or `token`.
pub const INVALID_VALUE: &str = "Invalid value";

/// A password change: the passwords as given.
#[derive(Clone)]
pub struct PasswordChange {
    /// The current password, with `OLD_PASSWORD_FIELD_ENABLED`.
    pub old_password: Option<String>,
    /// The new password.
    pub new_password1: String,
    /// The new password again.
    pub new_password2: String,
}

/// A reset confirmation, as posted.
#[derive(Clone)]
pub struct ResetConfirm {
    /// The new password.
    pub new_password1: String,
    /// The new password again.
    pub new_password2: String,
    /// The user's pk in base 36.
    pub uid: String,
    /// The reset token.
    pub token: String,
}

/// A registration, as posted.
#[derive(Clone)]
pub struct Registration {
    /// The username, trimmed.
    pub username: String,
    /// The address.
    pub email: String,
    /// The password.
    pub password1: String,
    /// The password again.
    pub password2: String,
}

/// What a registration ends with.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made once per registration, moved once: boxing buys nothing
pub enum Registered {
    /// Logged in at once (verification `none` or `optional`).
    LoggedIn(Box<LoggedIn>),
    /// Verification is mandatory: a confirmation mail went out, nobody is logged in.
    VerificationSent,
}

/// Where mailed links point: the frontend's origin (`FRONTEND_ORIGIN`) or the request's.
#[derive(Debug, Clone)]
pub struct LinkOrigin(pub String);

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordChange(<redacted>)")
    }
}

impl std::fmt::Debug for ResetConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetConfirm")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("username", &self.username)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

fn time(at: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(at, 0).unwrap_or_default()
}

impl Accounts {
    /// Django's `SetPasswordForm` check of two new passwords for `user`: a mismatch, else the
    /// validators' messages, all under `new_password2`.
    fn check_new_passwords(
        &self,
        user: &UserAttributes,
        one: &str,
        two: &str,
    ) -> Result<(), AccountError> {
        if one != two {
            return Err(AccountError::field("new_password2", PASSWORDS_DIFFER));
        }
        let errors = self.validators.validate(two, Some(user));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AccountError::Invalid(vec![(
                "new_password2".into(),
                errors,
            )]))
        }
    }

    /// dj-rest-auth's password change for the signed-in `user`, whose request's token belongs
    /// to `session`. With `OLD_PASSWORD_FIELD_ENABLED` a wrong current password is reported
    /// alone. The user's other sessions end (all of them with `LOGOUT_ON_PASSWORD_CHANGE`):
    /// their refresh tokens stop at once, access tokens too with `ACCESS_TOKEN_REVOCATION =
    /// "session"`.
    pub async fn change_password(
        &self,
        user: &User,
        session: Option<&str>,
        change: PasswordChange,
    ) -> Result<(), AccountError> {
        if let Some(old) = change.old_password {
            let verified = self
                .lifecycle
                .hasher()
                .verify(old, Some(user.password.clone()))
                .await
                .map_err(LifecycleError::from)?;
            if !verified.is_valid {
                return Err(AccountError::field("old_password", OLD_PASSWORD_WRONG));
            }
        }
        self.check_new_passwords(&user.into(), &change.new_password1, &change.new_password2)?;
        let keep = if self.lifecycle.settings().logout_on_password_change {
            None
        } else {
            session
        };
        self.lifecycle
            .set_password(user.id, &change.new_password1, keep)
            .await?;
        Ok(())
    }

    /// The addresses allauth binds a reset token to: the user's allauth addresses.
    async fn addresses_of(&self, user: &User) -> Result<Vec<String>, AccountError> {
        Ok(self
            .store()?
            .find_email_addresses_of_user(user.id)
            .await?
            .into_iter()
            .map(|a| a.email)
            .collect())
    }

    /// dj-rest-auth's reset request: mails a reset link to every active user with `email`
    /// (compared without regard to case; one mail per user). An unknown address gets the same
    /// answer in the same time: the request only hands the address to a background job, which
    /// looks it up and does everything per user (their addresses, the token, the mail). Even
    /// the lookup is off the request path, because a row found costs more than none. A
    /// database failure there is logged; the answer is the same (nothing in it depends on
    /// what was found).
    ///
    /// Fails only without a store ([`LifecycleError::NoStore`]), which needs no lookup.
    pub fn request_password_reset(
        self: &Arc<Self>,
        email: &str,
        origin: &LinkOrigin,
    ) -> Result<(), AccountError> {
        self.store()?;
        let (email, origin) = (email.to_owned(), origin.clone());
        self.in_background("password reset", move |this| async move {
            this.mail_reset_links(&email, &origin).await
        });
        Ok(())
    }

    /// The reset request's work, off the request path.
    async fn mail_reset_links(&self, email: &str, origin: &LinkOrigin) -> Result<(), AccountError> {
        let users = self.store()?.find_users_by_any_email(email).await?;
        let now = self.lifecycle.now();
        for user in users.into_iter().filter(|u| u.is_active) {
            let addresses = self.addresses_of(&user).await?;
            let token = self.signer.reset_token(&user, &addresses, now);
            let url = format!(
                "{}{}{}/{token}/",
                origin.0,
                self.lifecycle.settings().password_reset_confirm_path,
                int_to_base36(u64::try_from(user.id).unwrap_or(0))
            );
            let values = [
                ("site_name", self.lifecycle.settings().site_name.as_str()),
                ("username", user.username.as_str()),
                ("password_reset_url", url.as_str()),
            ];
            // allauth writes to the user's own spelling of the address.
            let to = if user.email.eq_ignore_ascii_case(email) {
                user.email.clone()
            } else {
                email.to_owned()
            };
            self.mailer.send(Mail {
                to,
                subject: Templates::render_subject(&self.templates.password_reset_subject, &values),
                body: Templates::render(&self.templates.password_reset_message, &values),
            });
        }
        Ok(())
    }

    /// Runs `job` on a task of its own, so that the request that asked for it answers without
    /// waiting and in the same time whatever the job finds to do. At most
    /// [`MAX_PENDING_JOBS`] run at a time; past that a job is dropped with a warning (a flood
    /// must not grow memory without bound; the throttles keep floods short). Failures are
    /// logged, never answered.
    fn in_background<F, Fut>(self: &Arc<Self>, what: &'static str, job: F)
    where
        F: FnOnce(Arc<Self>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), AccountError>> + Send + 'static,
    {
        let Ok(permit) = Arc::clone(&self.jobs).try_acquire_owned() else {
            tracing::warn!(job = what, "too many account jobs pending: dropped");
            return;
        };
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = job(this).await {
                tracing::warn!(job = what, %error, "account job failed");
            }
            drop(permit);
        });
    }

    /// dj-rest-auth's reset confirmation: the uid names a user, the token is one Django or
    /// restjwt made for that user as it is now and not older than `PASSWORD_RESET_TIMEOUT`,
    /// the passwords match and pass the validators; then the password is set and every session
    /// of the user ends. Checked in that order, the first failure alone reported.
    pub async fn confirm_password_reset(&self, confirm: ResetConfirm) -> Result<(), AccountError> {
        let store = self.store()?;
        let user = match base36_to_int(&confirm.uid).and_then(|pk| i64::try_from(pk).ok()) {
            Some(pk) => store.find_user_by_id(pk).await?,
            None => None,
        };
        let Some(user) = user else {
            return Err(AccountError::field("uid", INVALID_VALUE));
        };
        let addresses = self.addresses_of(&user).await?;
        let timeout = self.lifecycle.settings().password_reset_timeout.as_secs();
        if !self.signer.check_reset_token(
            &user,
            &addresses,
            &confirm.token,
            self.lifecycle.now(),
            timeout,
        ) {
            return Err(AccountError::field("token", INVALID_VALUE));
        }
        self.check_new_passwords(
            &(&user).into(),
            &confirm.new_password1,
            &confirm.new_password2,
        )?;
        self.lifecycle
            .set_password(user.id, &confirm.new_password1, None)
            .await?;
        Ok(())
    }

    /// The field checks of a registration that need the database or the validators, in
    /// dj-rest-auth's order (username, email, password1), each field's messages together; a
    /// field the HTTP layer already refused is `None` and skipped.
    pub async fn registration_field_errors(
        &self,
        username: Option<&str>,
        email: Option<&str>,
        password1: Option<&str>,
    ) -> Result<Invalid, AccountError> {
        let store = self.store()?;
        let mut errors = Invalid::new();
        if let Some(username) = username {
            let username_errors = super::username_errors(username);
            if !username_errors.is_empty() {
                errors.push(("username".into(), username_errors));
            } else if store.is_username_taken(username, None).await? {
                errors.push(("username".into(), vec![USERNAME_TAKEN.into()]));
            }
        }
        if let Some(email) = email
            && store.is_email_taken(email).await?
        {
            errors.push(("email".into(), vec![EMAIL_TAKEN.into()]));
        }
        if let Some(password1) = password1 {
            let password_errors = self.validators.validate_without_user(password1);
            if !password_errors.is_empty() {
                errors.push(("password1".into(), password_errors));
            }
        }
        Ok(errors)
    }

    /// dj-rest-auth's registration with allauth: the username free (without regard to case),
    /// the address not held by any account (verified or waiting: unlike allauth, which lets a
    /// second account take an unverified address), the password valid, both passwords equal,
    /// the password not similar to the username or address; then the user and its primary
    /// address are created, a confirmation mailed (unless verification is `none`), and the
    /// user logged in unless verification is `mandatory`.
    pub async fn register(
        &self,
        reg: Registration,
        origin: &LinkOrigin,
        client: ClientInfo,
    ) -> Result<Registered, AccountError> {
        let errors = self
            .registration_field_errors(Some(&reg.username), Some(&reg.email), Some(&reg.password1))
            .await?;
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        if reg.password1 != reg.password2 {
            return Err(AccountError::non_field(PASSWORDS_DIFFER_REGISTRATION));
        }
        let attributes = UserAttributes {
            username: reg.username.clone(),
            email: reg.email.clone(),
            ..Default::default()
        };
        if let Some(similar) = self.validators.similarity(&reg.password1, &attributes) {
            return Err(AccountError::non_field(similar));
        }
        let hash = self
            .lifecycle
            .hasher()
            .hash(reg.password1.clone())
            .await
            .map_err(LifecycleError::from)?;
        let now = self.lifecycle.now();
        let new_user = NewUser {
            username: reg.username.clone(),
            password_hash: hash,
            email: reg.email.clone(),
            first_name: String::new(),
            last_name: String::new(),
            is_staff: false,
            is_superuser: false,
            is_active: true,
            date_joined: time(now),
        };
        let (user, address) = match self.store()?.create_user_with_email(new_user, false).await {
            Ok(created) => created,
            // Another registration took the address since the check above.
            Err(StoreError::Conflict("email")) => {
                return Err(AccountError::field("email", EMAIL_TAKEN));
            }
            Err(StoreError::Conflict(_)) => {
                return Err(AccountError::field("username", USERNAME_TAKEN));
            }
            Err(e) => return Err(e.into()),
        };
        let verification = self.lifecycle.settings().account_email_verification;
        if verification != EmailVerification::None {
            self.send_confirmation(&user, address.id, &address.email, origin)
                .await?;
        }
        if verification == EmailVerification::Mandatory {
            return Ok(Registered::VerificationSent);
        }
        Ok(Registered::LoggedIn(Box::new(
            self.lifecycle.start_session(user, client).await?,
        )))
    }

    /// Mails a fresh confirmation key for the address `address_id` of `user`, and records the
    /// sending (for the cooldown).
    async fn send_confirmation(
        &self,
        user: &User,
        address_id: i64,
        email: &str,
        origin: &LinkOrigin,
    ) -> Result<(), AccountError> {
        let now = self.lifecycle.now();
        let key = self.signer.confirmation_key(address_id, now);
        self.store()?
            .create_email_confirmation(address_id, &key, time(now))
            .await?;
        let url = format!(
            "{}{}/registration/account-confirm-email/{key}/",
            origin.0,
            self.lifecycle.settings().auth_prefix
        );
        let values = [
            ("site_name", self.lifecycle.settings().site_name.as_str()),
            ("username", user.username.as_str()),
            ("activate_url", url.as_str()),
        ];
        self.mailer.send(Mail {
            to: email.to_owned(),
            subject: Templates::render_subject(&self.templates.email_confirmation_subject, &values),
            body: Templates::render(&self.templates.email_confirmation_message, &values),
        });
        Ok(())
    }

    /// allauth's confirmation: a key this secret signed, not older than
    /// `ACCOUNT_EMAIL_CONFIRMATION_EXPIRE`, for an address not yet verified. Anything else is
    /// [`AccountError::NotFound`] (a used key too).
    pub async fn confirm_email(&self, key: &str) -> Result<(), AccountError> {
        let max_age = self
            .lifecycle
            .settings()
            .account_email_confirmation_expire
            .as_secs();
        let id = self
            .signer
            .check_confirmation_key(key, self.lifecycle.now(), max_age)
            .ok_or(AccountError::NotFound)?;
        if self.store()?.update_email_address_verified(id).await? {
            Ok(())
        } else {
            Err(AccountError::NotFound)
        }
    }

    /// dj-rest-auth's resend: mails a fresh key when an unverified address spelled exactly
    /// `email` exists, unless one was mailed within `ACCOUNT_EMAIL_CONFIRMATION_COOLDOWN` (the
    /// limit allauth used to have; the reference has none). Answers the same in every case,
    /// in the same time: everything (the lookup, the cooldown, the new key's row, the mail)
    /// runs in a background job, as for a reset.
    ///
    /// Fails only without a store ([`LifecycleError::NoStore`]).
    pub fn resend_confirmation(
        self: &Arc<Self>,
        email: &str,
        origin: &LinkOrigin,
    ) -> Result<(), AccountError> {
        self.store()?;
        let (email, origin) = (email.to_owned(), origin.clone());
        self.in_background("confirmation resend", move |this| async move {
            match this.store()?.find_email_address_by_email(&email).await? {
                Some(address) if !address.verified => {
                    this.resend_to(address.id, address.user_id, &address.email, &origin)
                        .await
                }
                _ => Ok(()),
            }
        });
        Ok(())
    }

    /// The resend's work for an unverified address, off the request path.
    async fn resend_to(
        &self,
        address_id: i64,
        user_id: i64,
        email: &str,
        origin: &LinkOrigin,
    ) -> Result<(), AccountError> {
        let store = self.store()?;
        // One resend at a time in this process: the cooldown is a read then a write, and two
        // resends asked for in a row must not both pass it.
        let _one_at_a_time = self.resend_lock.lock().await;
        let cooldown = i64::try_from(
            self.lifecycle
                .settings()
                .account_email_confirmation_cooldown
                .as_secs(),
        )
        .unwrap_or(i64::MAX);
        if let Some(last) = store.find_last_confirmation_sent(address_id).await?
            && self.lifecycle.now() - last.timestamp() < cooldown
        {
            tracing::info!("confirmation resend within the cooldown: not sent");
            return Ok(());
        }
        let Some(user) = store.find_user_by_id(user_id).await? else {
            return Ok(());
        };
        self.send_confirmation(&user, address_id, email, origin)
            .await
    }

    /// With `ACCOUNT_EMAIL_VERIFICATION = "mandatory"`, whether `user` may log in: some
    /// address of theirs is verified.
    pub(super) async fn is_verified_enough(&self, user: &User) -> Result<bool, AccountError> {
        if self.lifecycle.settings().account_email_verification != EmailVerification::Mandatory {
            return Ok(true);
        }
        Ok(self
            .store()?
            .find_email_addresses_of_user(user.id)
            .await?
            .iter()
            .any(|a| a.verified))
    }
}

/// The field errors of `a` then `b`, each field once, in the order the serializer declares
/// `order`.
pub fn merge_in_order(order: &[&str], a: Invalid, b: Invalid) -> Invalid {
    let mut all: Invalid = Vec::new();
    for name in order.iter().copied().chain([NON_FIELD_ERRORS]) {
        for (field, messages) in a.iter().chain(b.iter()) {
            if field == name && !all.iter().any(|(f, _)| f == field) {
                all.push((field.clone(), messages.clone()));
            }
        }
    }
    all
}
