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
            let multipart = Multipart::from_request(req, state).await.map_err(|e| {
                ApiError::Parse(format!("Multipart form parse error - {}", e.body_text()))
            })?;
            return read_multipart(multipart).await;
        }

        let body = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        // DRF reads an empty body as no data at all, whatever its media type says.
        if body.is_empty() {
            return Ok(Payload::default());
        }
        match media_type.as_str() {
            "application/json" => read_json(&body),
            "application/x-www-form-urlencoded" => read_form(&body),
            _ => Err(ApiError::UnsupportedMediaType(content_type)),
        }
    }
}

fn read_json(body: &Bytes) -> Result<Payload, ApiError> {
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
        Value::Null => Err(ApiError::non_field("This field may not be null.")),
        other => Err(ApiError::non_field(format!(
            "Invalid data. Expected a dictionary, but got {}.",
            python_type_name(&other)
        ))),
    }
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
    let mut total = 0usize;
    let parse_error = |e: axum::extract::multipart::MultipartError| {
        ApiError::Parse(format!("Multipart form parse error - {}", e.body_text()))
    };
    while let Some(field) = multipart.next_field().await.map_err(parse_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = field.file_name().is_some();
        let bytes = field.bytes().await.map_err(parse_error)?;
        total += bytes.len();
        if total > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
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

    /// `Ok` when no field failed, else the 400 with every field's errors.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Fields(self.errors))
        }
    }
}
