//! The one error type of the HTTP layer, and the one place where an error becomes a status code
//! and a body. Bodies are simplejwt's and DRF's, byte for byte.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::accounts::AccountError;
use crate::auth::{AuthRejection, WWW_AUTHENTICATE};
use crate::keys::KeyError;
use crate::lifecycle::LifecycleError;
use crate::password::PasswordError;
use crate::store::StoreError;
use crate::telemetry::RefusalReason;
use crate::throttle::{ThrottleError, wait_secs};
use crate::token::TokenError;

/// Field errors in field order: `{"username":["This field is required."]}`.
pub type FieldErrors = Map<String, Value>;

/// Everything a request to restjwt's endpoints can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401, 431 or 503: the request's own token does not authenticate it (an extractor's
    /// answer).
    #[error(transparent)]
    Auth(#[from] AuthRejection),
    /// 401: a token posted to a token endpoint is not valid (flat body).
    #[error("{0}")]
    InvalidToken(TokenError),
    /// 401: a token issued before the user's password changed (`CHECK_REVOKE_TOKEN`).
    #[error("The user's password has been changed.")]
    PasswordChanged,
    /// 401: login failed; the same for an unknown user, an inactive one and a wrong password.
    #[error("No active account found with the given credentials")]
    NoActiveAccount,
    /// 401: a refresh token whose user is gone or inactive.
    #[error("No active account found for the given token.")]
    NoActiveAccountForToken,
    /// 401: dj-rest-auth's `token/refresh/` got no refresh token at all.
    #[error("No valid refresh token found.")]
    NoRefreshToken,
    /// 401: dj-rest-auth's logout refused the refresh token (`{"detail": …}`, no `code`).
    #[error("{0}")]
    LogoutRefused(String),
    /// 400: request fields failed validation.
    #[error("invalid fields")]
    Fields(FieldErrors),
    /// 400: the body could not be parsed; the text follows DRF (`JSON parse error - …`).
    #[error("{0}")]
    Parse(String),
    /// 413: the body is larger than any valid request to this endpoint, or holds a token longer
    /// than any valid token.
    #[error("Request body is too large.")]
    PayloadTooLarge,
    /// 408: the body did not arrive within `BODY_READ_TIMEOUT`.
    #[error("Request body took too long to arrive.")]
    RequestTimeout,
    /// 415: a body in a media type no parser reads.
    #[error("Unsupported media type \"{0}\" in request.")]
    UnsupportedMediaType(String),
    /// 405: the method is not one the endpoint answers.
    #[error("Method \"{0}\" not allowed.")]
    MethodNotAllowed(Method),
    /// 406: the client accepts no media type restjwt renders.
    #[error("Could not satisfy the request Accept header.")]
    NotAcceptable,
    /// 404: no such resource.
    #[error("Not found.")]
    NotFound,
    /// 404 with DRF's message for a missing object (`No Session matches the given query.`).
    #[error("{0}")]
    NotFoundDetail(&'static str),
    /// 429: past a throttle's rate; DRF's body and `Retry-After` with the whole seconds to
    /// wait (rounded up, "1 second" singular as DRF words it).
    #[error("Request was throttled. Expected available in {0} second{s}.", s = if *.0 == 1 { "" } else { "s" })]
    Throttled(u64),
    /// 503: the database cannot be reached or failed; the cause goes to the log only.
    #[error("Service temporarily unavailable, try again later.")]
    Unavailable(#[source] StoreError),
    /// 500: a bug or a misconfiguration. Never expected; the cause goes to the log only.
    #[error("A server error occurred.")]
    Internal(String),
}

impl ApiError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            Auth(rejection) => rejection.status(),
            InvalidToken(_)
            | PasswordChanged
            | NoActiveAccount
            | NoActiveAccountForToken
            | NoRefreshToken
            | LogoutRefused(_) => StatusCode::UNAUTHORIZED,
            Fields(_) | Parse(_) => StatusCode::BAD_REQUEST,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            NotFound | NotFoundDetail(_) => StatusCode::NOT_FOUND,
            Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body, in simplejwt's and DRF's shapes and key order.
    pub fn body(&self) -> Value {
        let detail = self.to_string();
        let with_code = |code: &str| json!({ "detail": detail, "code": code });
        match self {
            ApiError::Auth(rejection) => rejection.body(),
            ApiError::InvalidToken(_) | ApiError::NoRefreshToken => with_code("token_not_valid"),
            ApiError::PasswordChanged => with_code("password_changed"),
            ApiError::Fields(fields) => Value::Object(fields.clone()),
            _ => json!({ "detail": detail }),
        }
    }

    /// Field errors for a whole body that is not an object, under DRF's `non_field_errors`.
    pub fn non_field(message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert("non_field_errors".into(), json!([message.into()]));
        ApiError::Fields(fields)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Auth(rejection) => return rejection.into_response(),
            ApiError::Unavailable(ref cause) => {
                tracing::warn!(
                    error = cause as &dyn std::error::Error,
                    "database unavailable"
                );
            }
            ApiError::Internal(ref cause) => tracing::error!(%cause, "internal error"),
            _ => {}
        }
        let status = self.status();
        let mut response = (status, json_body(&self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
            response
                .extensions_mut()
                .insert(RefusalReason(self.to_string().into()));
        }
        if let ApiError::Throttled(wait) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
                .extensions_mut()
                .insert(RefusalReason("throttled".into()));
        }
        response
    }
}

/// A JSON response body with DRF's content type (no charset) and rendering: compact, UTF-8,
/// U+2028 and U+2029 escaped.
pub(crate) fn json_body<T: serde::Serialize + ?Sized>(
    value: &T,
) -> ([(header::HeaderName, HeaderValue); 1], Vec<u8>) {
    // Serializing cannot fail: every body is a Value or a struct of strings and numbers, so
    // every key is a string.
    let bytes = crate::json::escape_line_separators(serde_json::to_vec(value).unwrap_or_default());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
}

impl From<StoreError> for ApiError {
    /// By meaning: a row gone meanwhile is 404, a taken value a field error, the rest 503.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(field) => {
                let mut fields = FieldErrors::new();
                fields.insert(
                    field.into(),
                    json!([format!("A user with that {field} already exists.")]),
                );
                ApiError::Fields(fields)
            }
            other => ApiError::Unavailable(other),
        }
    }
}

impl From<ThrottleError> for ApiError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Throttled { wait } => ApiError::Throttled(wait_secs(wait)),
            ThrottleError::Store(e) => e.into(),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            // Only a request body brings a token here; a header's is refused earlier (431).
            TokenError::TooLarge => ApiError::PayloadTooLarge,
            e => ApiError::InvalidToken(e),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::InvalidCredentials => ApiError::NoActiveAccount,
            LifecycleError::Token(e) => e.into(),
            LifecycleError::NoActiveAccountForToken => ApiError::NoActiveAccountForToken,
            LifecycleError::PasswordChanged => ApiError::PasswordChanged,
            LifecycleError::EmailTaken => {
                // DRF's UniqueValidator on Django's `email` field ("email address").
                let mut fields = FieldErrors::new();
                fields.insert(
                    "email".into(),
                    json!(["user with this email address already exists."]),
                );
                ApiError::Fields(fields)
            }
            LifecycleError::SessionNotFound => {
                ApiError::NotFoundDetail("No Session matches the given query.")
            }
            LifecycleError::NoStore => ApiError::Internal(
                "restjwt's endpoints need a user store: build the AuthState with one".into(),
            ),
            LifecycleError::Store(e) => e.into(),
            LifecycleError::Key(e) => e.into(),
            LifecycleError::Password(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(fields) => ApiError::Fields(
                fields
                    .into_iter()
                    .map(|(name, messages)| (name, json!(messages)))
                    .collect(),
            ),
            AccountError::NotFound => ApiError::NotFound,
            AccountError::Lifecycle(e) => e.into(),
        }
    }
}
