//! Reading request cookies as Django does (`django.http.cookie.parse_cookie`), so a cookie
//! reaches restjwt exactly as it reaches a DRF view.

use axum::http::{HeaderMap, header};

/// The value of cookie `name` in the request's `Cookie` header(s), or `None` when it is not
/// there. Django's rules: pairs split on `;`, names and values trimmed, a chunk without `=` is
/// a value with an empty name, the last pair of a name wins, and a double-quoted value is
/// unquoted. An empty value (`name=`) is a value, not an absence.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        // Cookies are ASCII; a header that is not is read leniently rather than refused.
        let text = String::from_utf8_lossy(value.as_bytes());
        for chunk in text.split(';') {
            let (key, val) = chunk.split_once('=').unwrap_or(("", chunk));
            if key.trim() == name && !(key.trim().is_empty() && val.trim().is_empty()) {
                found = Some(unquote(val.trim()));
            }
        }
    }
    found
}

/// Python's `http.cookies._unquote`: a value in double quotes loses them and its backslash
/// escapes (`\"`, `\\`, and three octal digits).
fn unquote(value: &str) -> String {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|_| value.len() >= 2)
    else {
        return value.to_owned();
    };
    let bytes = inner.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let octal = bytes
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)) && d[0] <= b'3');
            if let Some(digits) = octal {
                out.push(digits.iter().fold(0u8, |n, d| n * 8 + (d - b'0')));
                i += 4;
            } else {
                out.push(bytes[i + 1]);
                i += 2;
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::COOKIE, HeaderValue::from_str(v).expect("ascii"));
        }
        map
    }

    #[test]
    fn reads_as_django_does() {
        let h = headers(&["a=1; my-app-auth=tok.en.x ; b = 2"]);
        assert_eq!(get(&h, "my-app-auth").as_deref(), Some("tok.en.x"));
        assert_eq!(get(&h, "b").as_deref(), Some("2"));
        assert_eq!(get(&h, "c"), None);
        // An empty value is there.
        assert_eq!(
            get(&headers(&["my-app-auth="]), "my-app-auth").as_deref(),
            Some("")
        );
        // The last one wins, across headers too.
        assert_eq!(
            get(&headers(&["a=1; a=2", "a=3"]), "a").as_deref(),
            Some("3")
        );
        // Quoted values, as Django's own deletion cookies write them.
        assert_eq!(get(&headers(&["a=\"\""]), "a").as_deref(), Some(""));
        assert_eq!(
            get(&headers(&[r#"a="x\"y\\z\073""#]), "a").as_deref(),
            Some("x\"y\\z;")
        );
        // A chunk without "=" has an empty name.
        assert_eq!(get(&headers(&["lonely"]), "").as_deref(), Some("lonely"));
        assert_eq!(get(&headers(&["lonely"]), "lonely"), None);
    }
}
