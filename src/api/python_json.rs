//! Placeholder until the Python-compatible message port lands.
pub(crate) fn parse_error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(_) => "Expecting value: line 1 column 1 (char 0)".to_owned(),
        Err(e) => e.to_string(),
    }
}
