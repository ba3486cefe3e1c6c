//! The text Python gives for a JSON body it cannot read, so that our 400 says what DRF says.
//!
//! DRF answers a malformed JSON body with `JSON parse error - <str(exc)>`, where `exc` comes
//! from `codecs.getreader("utf-8")(stream).read()` followed by `json.loads` with a
//! `parse_constant` that refuses `NaN` and the infinities. Clients and tests compare that text
//! byte for byte, and serde_json neither fails at the same places nor words its errors alike,
//! so this module re-runs the body through a port of CPython's C decoder (`Modules/_json.c`,
//! which `json` uses whenever it is built) and of the UTF-8 stream reader in front of it, only
//! to find the first error and its position.
//!
//! The messages follow the reference server's interpreter, CPython 3.12.1. Python 3.13 words
//! one thing differently, a comma just before `]` or `}`; [`PYTHON_3_13`] switches to that.

/// Whether the reference runs CPython 3.13 or later, which reports a trailing comma as
/// "Illegal trailing comma before end of array/object" at the comma, where 3.12 reports the
/// missing value or property name after it. The reference's venv is 3.12.1. Switching also
/// calls for re-measuring [`RECURSION_BUDGET`], as 3.13 limits recursion differently.
const PYTHON_3_13: bool = false;

/// How deep the decoder can recurse on the reference before Python raises `RecursionError`.
/// CPython 3.12 bounds C recursion at 1500 calls and the stack above the decoder uses some, so
/// this was measured on the reference (gunicorn sync worker, `POST /api/token/`): 1467 nested
/// arrays parse, 1468 give a 500. Each open array or object costs one unit, and so does raising
/// an exception from C ([`C_RAISE_COST`]) or calling back into Python ([`CALLBACK_COST`]).
const RECURSION_BUDGET: usize = 1467;

/// Units that `StopIteration` or a plain `ValueError` costs when C raises it: creating the
/// exception object is itself a call.
const C_RAISE_COST: usize = 1;

/// Units that building a `JSONDecodeError` or calling DRF's `strict_constant` costs: both run
/// Python code. Measured: with 1463 containers open the reference still answers 400, with 1464
/// it answers 500.
const CALLBACK_COST: usize = 4;

/// Python refuses integer literals longer than this (`sys.get_int_max_str_digits()`, 3.11+).
const MAX_INT_DIGITS: usize = 4300;

/// Python's `RecursionError` text for an exception raised too deep. Its exact wording varies
/// with where the limit is hit, but it does not reach the client: DRF only catches
/// `ValueError`, so the reference answers these with a 500.
const CALLBACK_RECURSION: &str = "maximum recursion depth exceeded while calling a Python object";

/// Returned for a body Python would accept. serde_json refuses a few documents Python takes
/// (lone `\ud800` escapes, numbers beyond `f64`, nesting deeper than 128, a body whose last
/// bytes are a cut-off UTF-8 sequence, which the stream reader silently drops), and there is no
/// Python message to copy for those.
const ACCEPTED_BY_PYTHON: &str = "Unsupported JSON document";

/// The message Python's `json.loads` (as DRF calls it) gives for a body that is not valid JSON,
/// e.g. `Expecting value: line 1 column 1 (char 0)`. Only called after serde_json refused the body.
///
/// A message starting with `maximum recursion depth exceeded` is Python's `RecursionError` for a
/// body nested about 1,470 deep, which DRF does not catch: the reference answers it with a 500.
pub(crate) fn parse_error_message(body: &[u8]) -> String {
    python_error(body, PYTHON_3_13).unwrap_or_else(|| ACCEPTED_BY_PYTHON.to_owned())
}

/// `str()` of the exception DRF's JSON parser catches for `body`, or `None` if Python would
/// parse it. `python_3_13` picks 3.13's trailing-comma messages.
fn python_error(body: &[u8], python_3_13: bool) -> Option<String> {
    let doc = match decode_utf8_stream(body) {
        Ok(doc) => doc,
        Err(message) => return Some(message),
    };
    // `json.loads` checks for a BOM itself; the plain "utf-8" codec DRF uses keeps it.
    if doc.first() == Some(&'\u{feff}') {
        return Some(decode_error_text(
            "Unexpected UTF-8 BOM (decode using utf-8-sig)",
            &doc,
            0,
        ));
    }
    let scanner = Scanner {
        s: &doc,
        python_3_13,
    };
    scanner.decode().err()
}

/// `str(JSONDecodeError(msg, doc, pos))`: positions count code points, lines count `\n` only.
fn decode_error_text(msg: &str, doc: &[char], pos: usize) -> String {
    let before = doc.get(..pos).unwrap_or(doc);
    let lineno = before.iter().filter(|&&c| c == '\n').count() + 1;
    let colno = match before.iter().rposition(|&c| c == '\n') {
        Some(newline) => pos - newline,
        None => pos + 1,
    };
    format!("{msg}: line {lineno} column {colno} (char {pos})")
}

/// The body as `codecs.getreader("utf-8")(stream).read()` returns it, or the `str()` of the
/// `UnicodeDecodeError` it raises.
///
/// The stream reader decodes with `final=False`, so a sequence cut off by the end of the body
/// is not an error: it waits in the reader's buffer and is dropped. The error cases and their
/// byte ranges follow CPython's `utf8_decode` (`Objects/stringlib/codecs.h`).
fn decode_utf8_stream(body: &[u8]) -> Result<Vec<char>, String> {
    let is_continuation = |b: u8| (0x80..=0xbf).contains(&b);
    let byte = |i: usize| body.get(i).copied().unwrap_or(0);
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b0 = byte(i);
        let available = body.len() - i;
        // Ok(Some(len)): a whole sequence; Ok(None): cut off by the end; Err: bad bytes.
        let sequence: Result<Option<usize>, (usize, &str)> = match b0 {
            0x00..=0x7f => Ok(Some(1)),
            0x80..=0xc1 | 0xf5..=0xff => Err((1, "invalid start byte")),
            0xc2..=0xdf => {
                if available < 2 {
                    Ok(None)
                } else if !is_continuation(byte(i + 1)) {
                    Err((1, "invalid continuation byte"))
                } else {
                    Ok(Some(2))
                }
            }
            0xe0..=0xef => {
                let b1 = byte(i + 1);
                let bad_b1 =
                    !is_continuation(b1) || (b0 == 0xe0 && b1 < 0xa0) || (b0 == 0xed && b1 >= 0xa0);
                if available < 2 {
                    Ok(None)
                } else if available == 2 {
                    // A cut-off surrogate (\xed\xa0-\xbf) counts as incomplete, not invalid,
                    // when the decoder is not final.
                    if bad_b1 && !(b0 == 0xed && is_continuation(b1)) {
                        Err((1, "invalid continuation byte"))
                    } else {
                        Ok(None)
                    }
                } else if bad_b1 {
                    Err((1, "invalid continuation byte"))
                } else if !is_continuation(byte(i + 2)) {
                    Err((2, "invalid continuation byte"))
                } else {
                    Ok(Some(3))
                }
            }
            0xf0..=0xf4 => {
                let b1 = byte(i + 1);
                let bad_b1 =
                    !is_continuation(b1) || (b0 == 0xf0 && b1 < 0x90) || (b0 == 0xf4 && b1 >= 0x90);
                if available >= 2 && bad_b1 {
                    Err((1, "invalid continuation byte"))
                } else if available >= 3 && !is_continuation(byte(i + 2)) {
                    Err((2, "invalid continuation byte"))
                } else if available < 4 {
                    Ok(None)
                } else if !is_continuation(byte(i + 3)) {
                    Err((3, "invalid continuation byte"))
                } else {
                    Ok(Some(4))
                }
            }
        };
        match sequence {
            Ok(Some(len)) => {
                let bytes = body.get(i..i + len).unwrap_or_default();
                // The checks above admit exactly the well-formed sequences.
                if let Some(c) = std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.chars().next())
                {
                    out.push(c);
                }
                i += len;
            }
            Ok(None) => break,
            Err((1, reason)) => {
                return Err(format!(
                    "'utf-8' codec can't decode byte 0x{b0:02x} in position {i}: {reason}"
                ));
            }
            Err((len, reason)) => {
                return Err(format!(
                    "'utf-8' codec can't decode bytes in position {i}-{}: {reason}",
                    i + len - 1
                ));
            }
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Array,
    Object,
}

/// Why scanning stopped, before it is turned into the text Python would show.
enum Failure {
    /// `StopIteration(pos)`: no value starts at `pos`. It is `raw_decode`, back in Python at the
    /// top level, that turns it into "Expecting value", so the text is built there.
    NoValue(usize),
    /// The complete message, already rendered.
    Message(String),
}

/// Port of the C scanner's control flow, iterative so no input can exhaust our stack.
struct Scanner<'a> {
    s: &'a [char],
    python_3_13: bool,
}

impl Scanner<'_> {
    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn is(&self, i: usize, c: char) -> bool {
        self.at(i) == Some(c)
    }

    fn starts_with(&self, i: usize, word: &str) -> bool {
        word.chars().enumerate().all(|(k, c)| self.is(i + k, c))
    }

    fn skip_whitespace(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    fn is_digit(&self, i: usize) -> bool {
        matches!(self.at(i), Some('0'..='9'))
    }

    /// The `StopIteration` the C scanner raises when no value starts at `pos`.
    fn no_value(&self, pos: usize, open: usize) -> Failure {
        if open + C_RAISE_COST > RECURSION_BUDGET {
            return Failure::Message(CALLBACK_RECURSION.to_owned());
        }
        Failure::NoValue(pos)
    }

    /// A `JSONDecodeError` raised from C with `open` containers around it. Building it calls
    /// into Python, which can itself hit the recursion limit.
    fn decode_error(&self, msg: &str, pos: usize, open: usize) -> Failure {
        if open + CALLBACK_COST > RECURSION_BUDGET {
            return Failure::Message(CALLBACK_RECURSION.to_owned());
        }
        Failure::Message(decode_error_text(msg, self.s, pos))
    }

    /// `JSONDecoder.decode`: one value between optional whitespace.
    fn decode(&self) -> Result<(), String> {
        let start = self.skip_whitespace(0);
        let end = match self.scan_value(start) {
            Ok(end) => end,
            Err(Failure::NoValue(pos)) => {
                return Err(decode_error_text("Expecting value", self.s, pos));
            }
            Err(Failure::Message(message)) => return Err(message),
        };
        let end = self.skip_whitespace(end);
        if end != self.s.len() {
            return Err(decode_error_text("Extra data", self.s, end));
        }
        Ok(())
    }

    /// `scan_once_unicode` and the array and object parsers it recurses into, with the open
    /// containers kept in a `Vec` instead of on the call stack. Returns the index after the
    /// value that starts at `idx`.
    fn scan_value(&self, mut idx: usize) -> Result<usize, Failure> {
        let mut open: Vec<Container> = Vec::new();
        loop {
            let Some(first) = self.at(idx) else {
                return Err(self.no_value(idx, open.len()));
            };
            let mut end = match first {
                '"' => self.scan_string(idx + 1, open.len())?,
                '[' | '{' => {
                    let kind = if first == '[' {
                        Container::Array
                    } else {
                        Container::Object
                    };
                    if open.len() + 1 > RECURSION_BUDGET {
                        let what = if kind == Container::Array {
                            "array"
                        } else {
                            "object"
                        };
                        return Err(Failure::Message(format!(
                            "maximum recursion depth exceeded while decoding a JSON {what} \
                             from a unicode string"
                        )));
                    }
                    open.push(kind);
                    let inner = self.skip_whitespace(idx + 1);
                    let closer = if kind == Container::Array { ']' } else { '}' };
                    if self.is(inner, closer) {
                        open.pop();
                        inner + 1
                    } else {
                        idx = match kind {
                            Container::Array => inner,
                            Container::Object => self.scan_key(inner, open.len())?,
                        };
                        continue;
                    }
                }
                'n' if self.starts_with(idx, "null") => idx + 4,
                't' if self.starts_with(idx, "true") => idx + 4,
                'f' if self.starts_with(idx, "false") => idx + 5,
                'N' if self.starts_with(idx, "NaN") => {
                    return Err(self.strict_constant("NaN", open.len()));
                }
                'I' if self.starts_with(idx, "Infinity") => {
                    return Err(self.strict_constant("Infinity", open.len()));
                }
                '-' if self.starts_with(idx, "-Infinity") => {
                    return Err(self.strict_constant("-Infinity", open.len()));
                }
                _ => self.scan_number(idx, open.len())?,
            };
            // Where C would return from the nested parsers, one per closed container; each
            // checks for its closer before its comma, as `_parse_array_unicode` does.
            loop {
                let Some(&kind) = open.last() else {
                    return Ok(end);
                };
                let closer = if kind == Container::Array { ']' } else { '}' };
                let i = self.skip_whitespace(end);
                if self.is(i, closer) {
                    open.pop();
                    end = i + 1;
                    continue;
                }
                if !self.is(i, ',') {
                    return Err(self.decode_error("Expecting ',' delimiter", i, open.len()));
                }
                let next = self.skip_whitespace(i + 1);
                if self.python_3_13 && self.is(next, closer) {
                    let msg = if kind == Container::Array {
                        "Illegal trailing comma before end of array"
                    } else {
                        "Illegal trailing comma before end of object"
                    };
                    return Err(self.decode_error(msg, i, open.len()));
                }
                idx = match kind {
                    Container::Array => next,
                    Container::Object => self.scan_key(next, open.len())?,
                };
                break;
            }
        }
    }

    /// An object's key, its `:` and the whitespace after it; returns where the value starts.
    fn scan_key(&self, idx: usize, open: usize) -> Result<usize, Failure> {
        if !self.is(idx, '"') {
            return Err(self.decode_error(
                "Expecting property name enclosed in double quotes",
                idx,
                open,
            ));
        }
        let after_key = self.skip_whitespace(self.scan_string(idx + 1, open)?);
        if !self.is(after_key, ':') {
            return Err(self.decode_error("Expecting ':' delimiter", after_key, open));
        }
        Ok(self.skip_whitespace(after_key + 1))
    }

    /// DRF's `strict_constant`, which refuses the constant as soon as the scanner reads it.
    fn strict_constant(&self, name: &str, open: usize) -> Failure {
        if open + CALLBACK_COST > RECURSION_BUDGET {
            return Failure::Message(CALLBACK_RECURSION.to_owned());
        }
        Failure::Message(format!(
            "Out of range float values are not JSON compliant: '{name}'"
        ))
    }

    /// `scanstring_unicode`: `start` is just after the opening quote; returns the index after
    /// the closing one. Its quirks are kept: an escape error points at the backslash, and a
    /// `\u` with fewer than five characters after the `u` is an invalid escape even when the
    /// string is merely cut off.
    fn scan_string(&self, start: usize, open: usize) -> Result<usize, Failure> {
        let len = self.s.len();
        let begin = start.saturating_sub(1);
        let mut end = start;
        loop {
            let mut next = end;
            let terminator = loop {
                match self.at(next) {
                    None => break None,
                    Some(c @ ('"' | '\\')) => break Some(c),
                    Some(c) if c <= '\u{1f}' => {
                        return Err(self.decode_error("Invalid control character at", next, open));
                    }
                    Some(_) => next += 1,
                }
            };
            match terminator {
                Some('"') => return Ok(next + 1),
                Some(_) => {}
                None => {
                    return Err(self.decode_error("Unterminated string starting at", begin, open));
                }
            }
            next += 1;
            let Some(escape) = self.at(next) else {
                return Err(self.decode_error("Unterminated string starting at", begin, open));
            };
            if escape != 'u' {
                end = next + 1;
                if !matches!(escape, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') {
                    return Err(self.decode_error("Invalid \\escape", end - 2, open));
                }
                continue;
            }
            next += 1;
            end = next + 4;
            if end >= len {
                return Err(self.decode_error("Invalid \\uXXXX escape", next - 1, open));
            }
            let Some(unit) = self.hex4(next) else {
                return Err(self.decode_error("Invalid \\uXXXX escape", end - 5, open));
            };
            // A high surrogate followed by `\u` takes the next four hex digits too; they must be
            // hex even when they turn out not to be a low surrogate.
            if (0xd800..=0xdbff).contains(&unit)
                && end + 6 < len
                && self.is(end, '\\')
                && self.is(end + 1, 'u')
            {
                end += 6;
                let Some(low) = self.hex4(end - 4) else {
                    return Err(self.decode_error("Invalid \\uXXXX escape", end - 5, open));
                };
                if !(0xdc00..=0xdfff).contains(&low) {
                    end -= 6;
                }
            }
        }
    }

    /// The four hex digits at `i`; C accepts either case and nothing else (no sign, no `_`).
    fn hex4(&self, i: usize) -> Option<u32> {
        let mut value = 0;
        for j in i..i + 4 {
            value = value * 16 + self.at(j)?.to_digit(16)?;
        }
        Some(value)
    }

    /// `_match_number_unicode`, including its look-ahead limits: a fraction or exponent is only
    /// taken when a character follows the `.` or `e`, and a bare `e` is left for the caller.
    fn scan_number(&self, start: usize, open: usize) -> Result<usize, Failure> {
        let last = self.s.len().saturating_sub(1);
        let mut idx = start;
        let negative = self.is(idx, '-');
        if negative {
            idx += 1;
            if idx > last {
                return Err(self.no_value(start, open));
            }
        }
        match self.at(idx) {
            Some('1'..='9') => {
                idx += 1;
                while self.is_digit(idx) {
                    idx += 1;
                }
            }
            Some('0') => idx += 1,
            _ => return Err(self.no_value(start, open)),
        }
        let mut is_float = false;
        if idx < last && self.is(idx, '.') && self.is_digit(idx + 1) {
            is_float = true;
            idx += 2;
            while self.is_digit(idx) {
                idx += 1;
            }
        }
        if idx < last && matches!(self.at(idx), Some('e' | 'E')) {
            let e_start = idx;
            idx += 1;
            if idx < last && matches!(self.at(idx), Some('-' | '+')) {
                idx += 1;
            }
            while self.is_digit(idx) {
                idx += 1;
            }
            if self.is_digit(idx - 1) {
                is_float = true;
            } else {
                idx = e_start;
            }
        }
        let digits = idx - start - usize::from(negative);
        if !is_float && digits > MAX_INT_DIGITS {
            if open + C_RAISE_COST > RECURSION_BUDGET {
                return Err(Failure::Message(CALLBACK_RECURSION.to_owned()));
            }
            return Err(Failure::Message(format!(
                "Exceeds the limit ({MAX_INT_DIGITS} digits) for integer string conversion: \
                 value has {digits} digits; use sys.set_int_max_str_digits() to increase the limit"
            )));
        }
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies and the text the reference (CPython 3.12.1, DRF 3.18.3) puts after
    /// "JSON parse error - ", picked from a few thousand cases generated against it.
    const CASES: &[(&[u8], &str)] = &[
        (b"", "Expecting value: line 1 column 1 (char 0)"),
        (b" \n", "Expecting value: line 2 column 1 (char 2)"),
        (b"[1,", "Expecting value: line 1 column 4 (char 3)"),
        (b"-", "Expecting value: line 1 column 1 (char 0)"),
        (b"[-]", "Expecting value: line 1 column 2 (char 1)"),
        (b"{\"a\":}", "Expecting value: line 1 column 6 (char 5)"),
        (b".5", "Expecting value: line 1 column 1 (char 0)"),
        (b"01", "Extra data: line 1 column 2 (char 1)"),
        (b"1.", "Extra data: line 1 column 2 (char 1)"),
        (b"1e", "Extra data: line 1 column 2 (char 1)"),
        (b"[1.]", "Expecting ',' delimiter: line 1 column 3 (char 2)"),
        (b"1.5.5", "Extra data: line 1 column 4 (char 3)"),
        (
            b"{",
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            b"{'a':1}",
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            b"{\"a\":1,}",
            "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)",
        ),
        (b"[1,]", "Expecting value: line 1 column 4 (char 3)"),
        (
            b"{\"a\" 1}",
            "Expecting ':' delimiter: line 1 column 6 (char 5)",
        ),
        (
            b"{\"a\"",
            "Expecting ':' delimiter: line 1 column 5 (char 4)",
        ),
        (
            b"[1 2]",
            "Expecting ',' delimiter: line 1 column 4 (char 3)",
        ),
        (
            b"{\"a\":1 \"b\":2}",
            "Expecting ',' delimiter: line 1 column 8 (char 7)",
        ),
        (b"[1", "Expecting ',' delimiter: line 1 column 3 (char 2)"),
        (b"{\"a\":1}x", "Extra data: line 1 column 8 (char 7)"),
        (b"{}\n\n x", "Extra data: line 3 column 2 (char 5)"),
        (b"null null", "Extra data: line 1 column 6 (char 5)"),
        (
            b"\"abc",
            "Unterminated string starting at: line 1 column 1 (char 0)",
        ),
        (
            b"{\"username\":\"bob",
            "Unterminated string starting at: line 1 column 13 (char 12)",
        ),
        (
            b"\"a\x00b\"",
            "Invalid control character at: line 1 column 3 (char 2)",
        ),
        (
            b"\"a\nb\"",
            "Invalid control character at: line 1 column 3 (char 2)",
        ),
        (
            b"{\"a\":\"b\rc\"}",
            "Invalid control character at: line 1 column 8 (char 7)",
        ),
        (b"\"\\x\"", "Invalid \\escape: line 1 column 2 (char 1)"),
        (
            b"\"\\u12\"",
            "Invalid \\uXXXX escape: line 1 column 3 (char 2)",
        ),
        (
            b"\"\\u1234",
            "Invalid \\uXXXX escape: line 1 column 3 (char 2)",
        ),
        (
            b"\"\\uZZZZ\"",
            "Invalid \\uXXXX escape: line 1 column 3 (char 2)",
        ),
        (
            b"\"\\ud800\\uZZZZ\"",
            "Invalid \\uXXXX escape: line 1 column 9 (char 8)",
        ),
        (
            b"\"\\ud800\\udc00",
            "Invalid \\uXXXX escape: line 1 column 9 (char 8)",
        ),
        (
            b"NaN",
            "Out of range float values are not JSON compliant: 'NaN'",
        ),
        (
            b"{\"a\":-Infinity,",
            "Out of range float values are not JSON compliant: '-Infinity'",
        ),
        (b"[x, NaN]", "Expecting value: line 1 column 2 (char 1)"),
        (b"-Infinit", "Expecting value: line 1 column 1 (char 0)"),
        (b"nul", "Expecting value: line 1 column 1 (char 0)"),
        (b"True", "Expecting value: line 1 column 1 (char 0)"),
        (
            b"\xef\xbb\xbf{}",
            "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)",
        ),
        (
            b" \xef\xbb\xbf{}",
            "Expecting value: line 1 column 2 (char 1)",
        ),
        (
            b"\xff",
            "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
        ),
        (
            b"{\"a\":\"\xc3\"}",
            "'utf-8' codec can't decode byte 0xc3 in position 6: invalid continuation byte",
        ),
        (
            b"\"\xe2\x82x\"",
            "'utf-8' codec can't decode bytes in position 1-2: invalid continuation byte",
        ),
        (
            b"\"\xf0\x90\x80x",
            "'utf-8' codec can't decode bytes in position 1-3: invalid continuation byte",
        ),
        (
            b"\"\xed\xa0\x80\"",
            "'utf-8' codec can't decode byte 0xed in position 1: invalid continuation byte",
        ),
        (
            b"\xc0\x80",
            "'utf-8' codec can't decode byte 0xc0 in position 0: invalid start byte",
        ),
        (
            b"\xf4\x90\x80\x80",
            "'utf-8' codec can't decode byte 0xf4 in position 0: invalid continuation byte",
        ),
        (
            b"{\"username\":\"\xe2\x82",
            "Unterminated string starting at: line 1 column 13 (char 12)",
        ),
        (b"[\xed\xa0", "Expecting value: line 1 column 2 (char 1)"),
        (
            b"\xe0\x80",
            "'utf-8' codec can't decode byte 0xe0 in position 0: invalid continuation byte",
        ),
        (
            b"\n\n  {\"a\":\n  1,,}",
            "Expecting property name enclosed in double quotes: line 4 column 5 (char 14)",
        ),
        (
            b"\r\n{\r\n\"a\"\r\n:",
            "Expecting value: line 4 column 2 (char 11)",
        ),
        (
            b"[\"\xc3\xa9\", x]",
            "Expecting value: line 1 column 7 (char 6)",
        ),
        (
            b"[\"\xf0\x9f\x98\x80\", x]",
            "Expecting value: line 1 column 7 (char 6)",
        ),
        (
            b"{\"username\":\"bob\",\"password\":\"x\"",
            "Expecting ',' delimiter: line 1 column 33 (char 32)",
        ),
        (
            b"{\"username\":\"bob\",\"password\":\"x\"}}",
            "Extra data: line 1 column 34 (char 33)",
        ),
        (
            b"{\"username\":\"bob\" \"password\":\"x\"}",
            "Expecting ',' delimiter: line 1 column 19 (char 18)",
        ),
        (
            b"{\"username\":\"bob\",,\"password\":\"x\"}",
            "Expecting property name enclosed in double quotes: line 1 column 19 (char 18)",
        ),
        (
            b"{\"username\":bob,\"password\":\"x\"}",
            "Expecting value: line 1 column 13 (char 12)",
        ),
    ];

    #[test]
    fn matches_the_reference() {
        for (body, expected) in CASES {
            assert_eq!(
                parse_error_message(body),
                *expected,
                "body {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn python_3_13_reports_trailing_commas_at_the_comma() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"[1,]",
                "Illegal trailing comma before end of array: line 1 column 3 (char 2)",
            ),
            (
                b"{\"a\":1 ,\n}",
                "Illegal trailing comma before end of object: line 1 column 8 (char 7)",
            ),
            (b"[1,", "Expecting value: line 1 column 4 (char 3)"),
        ];
        for (body, expected) in cases {
            assert_eq!(python_error(body, true).as_deref(), Some(*expected));
        }
    }

    #[test]
    fn long_integers_hit_pythons_digit_limit() {
        let mut body = b"[".to_vec();
        body.extend(std::iter::repeat_n(b'7', 4301));
        body.extend(b", x");
        assert_eq!(
            parse_error_message(&body),
            "Exceeds the limit (4300 digits) for integer string conversion: value has 4301 \
             digits; use sys.set_int_max_str_digits() to increase the limit"
        );
        // Floats have no limit, and 4300 digits are still an int.
        let float = [vec![b'1'; 5000], b".5 x".to_vec()].concat();
        assert_eq!(
            parse_error_message(&float),
            "Extra data: line 1 column 5004 (char 5003)"
        );
        assert_eq!(parse_error_message(&[b'1'; 4300]), ACCEPTED_BY_PYTHON);
    }

    fn nested(depth: usize, tail: &[u8]) -> Vec<u8> {
        [vec![b'['; depth], tail.to_vec()].concat()
    }

    /// Depths measured on the reference: where Python raises `RecursionError` (a 500 there).
    #[test]
    fn deep_nesting_follows_the_reference_recursion_limit() {
        assert_eq!(
            parse_error_message(&nested(1467, b"")),
            CALLBACK_RECURSION,
            "StopIteration costs one more unit"
        );
        assert_eq!(
            parse_error_message(&nested(1466, b"")),
            "Expecting value: line 1 column 1467 (char 1466)"
        );
        assert_eq!(
            parse_error_message(&nested(1468, b"")),
            "maximum recursion depth exceeded while decoding a JSON array from a unicode string"
        );
        assert_eq!(
            parse_error_message(&[b"[".repeat(1467), b"{}".to_vec()].concat()),
            "maximum recursion depth exceeded while decoding a JSON object from a unicode string"
        );
        assert_eq!(
            parse_error_message(&[nested(1467, b""), b"]".repeat(1467), b"x".to_vec()].concat()),
            "Extra data: line 1 column 2935 (char 2934)"
        );
        assert_eq!(
            parse_error_message(&nested(1463, b"\"")),
            "Unterminated string starting at: line 1 column 1464 (char 1463)"
        );
        assert_eq!(
            parse_error_message(&nested(1464, b"\"")),
            CALLBACK_RECURSION
        );
        assert_eq!(
            parse_error_message(&nested(1464, b"NaN")),
            CALLBACK_RECURSION
        );
        // Far deeper than any call stack would allow, were the scanner recursive.
        assert!(
            parse_error_message(&nested(1_000_000, b""))
                .starts_with("maximum recursion depth exceeded")
        );
    }

    #[test]
    fn documents_python_accepts_get_the_generic_message() {
        for body in [
            &b"{\"username\":\"bob\",\"password\":\"x\"}"[..],
            b" [1, 2.5e-3, true, false, null, {\"a\": [\"\\ud800\"]}]\r\n",
            b"1e400",
            b"{\"a\":\"b\"}\xe2\x82",
            &[b"[".repeat(1000), b"]".repeat(1000)].concat(),
        ] {
            assert_eq!(parse_error_message(body), ACCEPTED_BY_PYTHON);
        }
    }

    /// xorshift64*, so the fuzz inputs are the same on every run without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let alphabet =
            b"{}[]\",:\\ \t\n\r0123456789-+.eEuaflsnrtNIy\x00\x1f\x7f\xc3\xa9\xed\xa0\xf0\x9f\xff";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let len = rng.below(40);
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    if round % 2 == 0 {
                        alphabet[rng.below(alphabet.len())]
                    } else {
                        rng.next().to_le_bytes()[0]
                    }
                })
                .collect();
            assert!(!parse_error_message(&body).is_empty());
        }
    }
}
