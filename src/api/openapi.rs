//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]`
//! attributes, at `GET /api/schema/`; and its documentation page, `GET /api/docs/` (Swagger
//! UI served from the binary, feature `docs-ui`).
//!
//! Bodies are described as they are on the wire: DRF's field errors, simplejwt's 401 bodies,
//! DRF's `{"detail": …}`. Every error shape is strict (no other members), so a client
//! generator can tell them apart.
//!
//! # Adding an endpoint
//! Put `#[utoipa::path(…)]` on its handler (method, path, bodies, every status it answers;
//! [`TokenErrors`] and [`AuthErrors`] carry the common ones) and its name in the `paths(…)` of
//! its module's `Doc`. A new module adds its `Doc` to [`openapi`]'s list, one line.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, OpenApi as _, ToSchema};

/// Where the document is served.
pub const SCHEMA_PATH: &str = "/api/schema/";

/// Where the documentation page is served (feature `docs-ui`).
pub const DOCS_PATH: &str = "/api/docs/";

/// The API's OpenAPI 3.1 document: every endpoint of [`super::app`], with its request, response
/// and error bodies. An app that merges restjwt's routers into its own can merge this into its
/// own document (`OpenApi::merge`).
pub fn openapi() -> OpenApi {
    let mut doc = Root::openapi();
    doc.merge(super::tokens::Doc::openapi());
    doc.merge(super::user::Doc::openapi());
    doc.merge(super::sessions::Doc::openapi());
    doc.merge(super::accounts::Doc::openapi());
    doc.merge(super::Doc::openapi());
    doc
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "restjwt",
        description = "JWT authentication wire-compatible with djangorestframework-simplejwt: \
            the token endpoints, the user, sessions, health checks and the JWKS.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0"),
    ),
    modifiers(&BearerScheme),
    components(schemas(
        Detail,
        DetailCode,
        TokenClassMessage,
        TokenNotValid,
        FieldErrors,
        BadRequest,
        Unauthenticated,
        TokenRefused
    )),
    tags(
        (name = "token", description = "simplejwt's token endpoints"),
        (name = "user", description = "The signed-in user"),
        (name = "sessions", description = "The signed-in user's sessions (devices)"),
        (name = "accounts", description = "dj-rest-auth's account endpoints (under AUTH_PREFIX)"),
        (name = "operations", description = "Health checks and public keys"),
    )
)]
struct Root;

/// The `jwt` security scheme: `Authorization: Bearer <access token>`.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `GET /api/schema/` (and the documentation page): the document, rendered once.
pub(super) fn router() -> Router {
    let json = serde_json::to_vec(&openapi()).unwrap_or_default();
    let schema = move || {
        let json = json.clone();
        async move {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/vnd.oai.openapi+json"),
                )],
                json,
            )
                .into_response()
        }
    };
    let router = Router::new().route(SCHEMA_PATH, get(schema));
    docs_page(router)
}

#[cfg(feature = "docs-ui")]
fn docs_page(router: Router) -> Router {
    let ui = utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH.trim_end_matches('/'))
        .config(utoipa_swagger_ui::Config::from(SCHEMA_PATH));
    router.merge(ui)
}

#[cfg(not(feature = "docs-ui"))]
fn docs_page(router: Router) -> Router {
    router
}

// ---------------------------------------------------------------------------------------------
// Shapes shared by several endpoints

/// DRF's error body: `{"detail": "…"}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Detail {
    /// What went wrong, in DRF's words.
    detail: String,
}

/// simplejwt's flat error body: `{"detail": "…", "code": "…"}` (`token_not_valid`,
/// `bad_authorization_header`, `user_not_found`, `user_inactive`, `password_changed`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DetailCode {
    /// What went wrong.
    detail: String,
    /// A machine-readable code.
    code: String,
}

/// One token class's reason in [`TokenNotValid`].
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenClassMessage {
    /// `AccessToken` or `SlidingToken`.
    token_class: String,
    /// `access` or `sliding`.
    token_type: String,
    /// Why the token failed as that class (`Token is expired`, `Token is invalid`, …).
    message: String,
}

/// simplejwt's 401 for a bearer token that fails every accepted token class.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenNotValid {
    /// `Given token not valid for any token type`.
    detail: String,
    /// `token_not_valid`.
    code: String,
    /// The reason for each token class tried.
    messages: Vec<TokenClassMessage>,
}

/// DRF's field errors: each field (or `non_field_errors`) with its messages.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"password": ["This field is required."]}))]
pub(super) struct FieldErrors(std::collections::BTreeMap<String, Vec<String>>);

/// A 400: field errors, or a body that could not be parsed (`{"detail": "JSON parse error - …"}`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum BadRequest {
    /// Fields failed validation.
    Fields(FieldErrors),
    /// The body could not be parsed.
    Parse(Detail),
}

/// A 401 of an authenticated view: no or a malformed `Authorization` header, a token that fails
/// every class, or a user who may not use it.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum Unauthenticated {
    /// `{"detail":"Authentication credentials were not provided."}`.
    NotProvided(Detail),
    /// `bad_authorization_header`, `user_not_found`, `user_inactive`, `password_changed`, or
    /// `token_not_valid` without user identification.
    Coded(DetailCode),
    /// `Given token not valid for any token type`.
    NotValid(TokenNotValid),
}

/// A 401 of a token endpoint: a token that is not valid (`token_not_valid`), a user whose
/// password changed (`password_changed`), or a login or refresh without an active account.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum TokenRefused {
    /// `{"detail":"No active account found with the given credentials"}` and the like.
    Detail(Detail),
    /// `{"detail":"Token is invalid","code":"token_not_valid"}` and the like.
    Coded(DetailCode),
}

/// The errors every token endpoint may answer besides its own 200.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum TokenErrors {
    /// Fields missing or not strings, or a body that is not valid JSON, a form or multipart.
    #[response(status = 400)]
    BadRequest(#[to_schema] BadRequest),
    /// The credentials or the token are refused. Sent with `WWW-Authenticate: Bearer
    /// realm="api"`.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"api\"`")))]
    Unauthorized(#[to_schema] TokenRefused),
    /// `?format=` names no renderer.
    #[response(status = 404)]
    NotFound(#[to_schema] Detail),
    /// The client accepts no JSON.
    #[response(status = 406)]
    NotAcceptable(#[to_schema] Detail),
    /// The body is larger than 64 KiB, or holds a token longer than any valid token.
    #[response(status = 413)]
    TooLarge(#[to_schema] Detail),
    /// A body in a media type no parser reads.
    #[response(status = 415)]
    UnsupportedMediaType(#[to_schema] Detail),
    /// Logins and refreshes past a throttle's rate (`THROTTLE_RATES`), with `Retry-After`.
    #[response(status = 429, headers(("Retry-After" = String, description = "Whole seconds to wait.")))]
    Throttled(#[to_schema] Detail),
    /// The database cannot be reached.
    #[response(status = 503)]
    Unavailable(#[to_schema] Detail),
}

/// The errors every authenticated view may answer besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum AuthErrors {
    /// No credentials, a malformed header, or a token or user that is refused. Sent with
    /// `WWW-Authenticate: Bearer realm="api"`.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"api\"`")))]
    Unauthorized(#[to_schema] Unauthenticated),
    /// `?format=` names no renderer.
    #[response(status = 404)]
    NotFound(#[to_schema] Detail),
    /// The client accepts no JSON.
    #[response(status = 406)]
    NotAcceptable(#[to_schema] Detail),
    /// The `Authorization` header holds a token longer than any valid token.
    #[response(status = 431)]
    HeaderTooLarge(#[to_schema] Detail),
    /// The database cannot be reached.
    #[response(status = 503)]
    Unavailable(#[to_schema] Detail),
}
