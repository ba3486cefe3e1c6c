//! The seed's `UserAPIView`: the authenticated user's public fields.

use serde_json::json;

use super::JsonResponse;
use crate::auth::CurrentUser;

/// `GET /api/user/`: `{"id","username","email","first_name","last_name"}` of the user whose
/// access token authenticates the request.
pub async fn get_user(CurrentUser(user): CurrentUser) -> JsonResponse {
    JsonResponse(json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
    }))
}
