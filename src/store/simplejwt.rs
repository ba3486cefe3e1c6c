//! One blacklist across restjwt and simplejwt, when both run on one database.
//!
//! Django's `rest_framework_simplejwt.token_blacklist` app keeps two tables:
//! `token_blacklist_outstandingtoken` (`id`, `token`, `jti` unique, `user_id`, `created_at`,
//! `expires_at`) and `token_blacklist_blacklistedtoken` (`id`, `token_id` unique, pointing at
//! an outstanding row, `blacklisted_at`). simplejwt refuses a refresh token whose `jti` has a
//! blacklisted row; its `blacklist()` records the token as outstanding first when it is not.
//!
//! When both tables exist, each backend
//! - counts a token as blacklisted when either blacklist holds its `jti` (so a token Django
//!   blacklisted, by logout or rotation, is refused here, even one restjwt never saw), and
//! - writes every token it blacklists (logout, rotation, and every unexpired token of a session
//!   it ends) into simplejwt's tables too, in the same transaction, so Django refuses it.
//!
//! simplejwt's `token` column holds the whole token; restjwt keeps no token, so its rows there
//! hold [`TOKEN_PREFIX`] and the token's SHA-256 instead. simplejwt reads only `jti` to decide.

/// What restjwt writes in simplejwt's `token` column, before the token's SHA-256 (hex).
pub(crate) const TOKEN_PREFIX: &str = "restjwt-sha256:";

/// Which of our recorded tokens to copy into simplejwt's blacklist.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tokens<'a> {
    /// The token with this `jti`.
    One(&'a str),
    /// Every unexpired token of this session.
    OfSession(&'a str),
}
