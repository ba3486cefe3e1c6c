//! Request bodies read as DRF reads them: JSON, form-encoded or multipart into one map of
//! fields, with DRF's answers to everything else, and DRF's `CharField` rules for the fields.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use serde_json::{Map, Value, json};

use super::ApiError;
use super::error::FieldErrors;
use super::python_json;

/// The largest body a token endpoint reads. Valid requests are a few hundred bytes; a bigger
/// body is refused before parsing, so it costs no memory or CPU.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The fields of a request body, whatever its media type.
#[derive(Debug, Default)]
pub struct Payload(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Payload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();

        if media_type == "multipart/form-data" {
            // The limit counts the raw body as it arrives, boundaries and part headers
            // included: counting only field values let 20,000 empty fields through, and a big
            // field was buffered whole before it was refused.
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
                .await
                .map_err(body_error)?;
            let req = Request::from_parts(parts, axum::body::Body::from(body));
            // Django's own message for a multipart body without a usable boundary.
            let multipart = Multipart::from_request(req, state).await.map_err(|_| {
                ApiError::Parse(
                    "Multipart form parse error - Invalid boundary in multipart: None".into(),
                )
            })?;
            return read_multipart(multipart).await;
        }

        let body = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(body_error)?;
        // DRF reads an empty body as no data at all, whatever its media type says.
        if body.is_empty() {
            return Ok(Payload::default());
        }
        match media_type.as_str() {
            // DRF's negotiation lets wildcards pick its first parser, JSON.
            "application/json" | "*/*" | "application/*" => read_json(&body, &content_type),
            "application/x-www-form-urlencoded" => read_form(&body),
            _ => Err(ApiError::UnsupportedMediaType(content_type)),
        }
    }
}

/// A body that could not be read: too slow (`BODY_READ_TIMEOUT`, 408), or else too large (or
/// cut off, which the client will not read an answer to anyway).
fn body_error(e: axum::Error) -> ApiError {
    // The timeout comes wrapped (the body's error inside the length limit's inside axum's).
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(error) = cause {
        if error.is::<super::BodyTimeout>() {
            return ApiError::RequestTimeout;
        }
        cause = error.source();
    }
    ApiError::PayloadTooLarge
}

fn read_json(body: &Bytes, content_type: &str) -> Result<Payload, ApiError> {
    // DRF decodes with the charset the client names; Latin-1 is the one seen in practice
    // besides UTF-8. Unknown charsets fall back to UTF-8, as DRF's do.
    let latin1;
    let body: &[u8] = if is_latin1(content_type) {
        latin1 = body.iter().map(|&b| char::from(b)).collect::<String>();
        latin1.as_bytes()
    } else {
        body
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            return Err(ApiError::Parse(format!(
                "JSON parse error - {}",
                python_json::parse_error_message(body)
            )));
        }
    };
    match value {
        Value::Object(map) => Ok(Payload(map)),
        Value::Null => Err(ApiError::non_field("No data provided")),
        other => Err(ApiError::non_field(format!(
            "Invalid data. Expected a dictionary, but got {}.",
            python_type_name(&other)
        ))),
    }
}

fn is_latin1(content_type: &str) -> bool {
    content_type.split(';').skip(1).any(|param| {
        let Some((name, value)) = param.split_once('=') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("charset")
            && matches!(
                value.trim().trim_matches('"').to_ascii_lowercase().as_str(),
                "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1"
            )
    })
}

/// The Python type name DRF puts in "Expected a dictionary, but got …".
fn python_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn read_form(body: &Bytes) -> Result<Payload, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| ApiError::Parse("Form parse error".to_owned()))?;
    let mut map = Map::new();
    // Django's QueryDict answers the last value of a repeated key.
    for (key, value) in pairs {
        map.insert(key, Value::String(value));
    }
    Ok(Payload(map))
}

async fn read_multipart(mut multipart: Multipart) -> Result<Payload, ApiError> {
    let mut map = Map::new();
    // Django reads a garbled multipart body as no fields at all; keep what parsed before the
    // damage and let the field rules answer.
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = field.file_name().is_some();
        let Ok(bytes) = field.bytes().await else {
            break;
        };
        // An uploaded file is not a string; CharField refuses it as "Not a valid string.".
        let value = if is_file {
            json!({ "file": true })
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        map.insert(name, value);
    }
    Ok(Payload(map))
}

/// Collects field errors in field order, then answers 400 with all of them at once, as a DRF
/// serializer does.
#[derive(Debug, Default)]
pub struct Fields {
    errors: FieldErrors,
}

impl Fields {
    /// Reads `name` as DRF's `CharField()` does: required, not null, not blank after trimming
    /// whitespace, a string or a number (coerced), no NUL character. Returns the trimmed value,
    /// or records the error and returns `None`.
    pub fn char_field(&mut self, payload: &Payload, name: &str) -> Option<String> {
        let result = match payload.0.get(name) {
            None => Err("This field is required."),
            Some(Value::Null) => Err("This field may not be null."),
            Some(Value::String(s)) => {
                let trimmed = s.trim();
                if trimmed.is_empty() {
                    Err("This field may not be blank.")
                } else if trimmed.contains('\0') {
                    Err("Null characters are not allowed.")
                } else {
                    Ok(trimmed.to_owned())
                }
            }
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err("Not a valid string."),
        };
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.errors.insert(name.to_owned(), json!([message]));
                None
            }
        }
    }

    /// Reads an optional model `CharField(max_length, blank=True)` as DRF's `ModelSerializer`
    /// does: absent is `None` (left as it is), present must be a string or number, not null,
    /// at most `max_chars` characters after trimming, no NUL; `is_email` adds the email check.
    pub fn optional_char_field(
        &mut self,
        payload: &Payload,
        name: &str,
        max_chars: usize,
        is_email: bool,
    ) -> Option<String> {
        let result = match payload.0.get(name)? {
            Value::Null => Err("This field may not be null.".to_owned()),
            Value::String(s) => Ok(s.trim().to_owned()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err("Not a valid string.".to_owned()),
        }
        .and_then(|value| {
            if value.contains('\0') {
                Err("Null characters are not allowed.".to_owned())
            } else if value.chars().count() > max_chars {
                Err(format!(
                    "Ensure this field has no more than {max_chars} characters."
                ))
            } else if is_email && !value.is_empty() && !is_valid_email(&value) {
                Err("Enter a valid email address.".to_owned())
            } else {
                Ok(value)
            }
        });
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.errors.insert(name.to_owned(), json!([message]));
                None
            }
        }
    }

    /// A password field of dj-rest-auth's serializers: a `CharField(max_length=128)`.
    pub fn password_field(&mut self, payload: &Payload, name: &str) -> Option<String> {
        let value = self.char_field(payload, name)?;
        if value.chars().count() > 128 {
            self.errors.insert(
                name.to_owned(),
                json!(["Ensure this field has no more than 128 characters."]),
            );
            return None;
        }
        Some(value)
    }

    /// DRF's `EmailField()`: required, not blank, a valid address.
    pub fn email_field(&mut self, payload: &Payload, name: &str) -> Option<String> {
        let value = self.char_field(payload, name)?;
        if !is_valid_email(&value) {
            self.errors
                .insert(name.to_owned(), json!(["Enter a valid email address."]));
            return None;
        }
        Some(value)
    }

    /// The one required `EmailField` of a body, or the 400 that names it.
    pub fn single_email(payload: &Payload, name: &str) -> Result<String, ApiError> {
        let mut fields = Fields::default();
        let value = fields.email_field(payload, name);
        fields.finish()?;
        Ok(value.unwrap_or_default())
    }

    /// The one required `CharField` of a body (`refresh`, `token`): its trimmed value, or the
    /// 400 that names it.
    pub fn single(payload: &Payload, name: &str) -> Result<String, ApiError> {
        let mut fields = Fields::default();
        let value = fields.char_field(payload, name);
        fields.finish()?;
        Ok(value.unwrap_or_default())
    }

    /// `Ok` when no field failed, else the 400 with every field's errors.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Fields(self.errors))
        }
    }
}

/// Django's `EmailValidator`, in its common shape: a dot-atom local part, `@`, and a domain of
/// dot-separated labels (letters, digits, hyphens inside) whose last label is not numeric.
pub fn is_valid_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    local_ok && domain_ok
}
