//! The JSON layer shared by every header: from header bytes to one JSON object, with
//! the `bad-json` rules of PROTOCOL.md section 2 (UTF-8, no byte-order mark, valid
//! JSON, no duplicate keys at any nesting level, an object at the top), and typed
//! field access whose errors name the field.
//!
//! serde_json keeps the last of two equal keys when it builds a `Value` or a map, and
//! a derived struct reports a duplicate field as a *data* error, indistinguishable
//! from a mistyped one. So the bytes go through [`StrictValue`] first, a visitor that
//! builds the `Value` and fails on a repeated key; only then are fields converted to
//! their types, where every failure is a `bad-request`-class error.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{detail, excerpt};

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Why header bytes are not a JSON object: the detail of a `bad-json` error.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    if bytes.starts_with(BYTE_ORDER_MARK) {
        return Err("it starts with a UTF-8 byte-order mark".to_owned());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("it is not UTF-8 (invalid byte at offset {})", e.valid_up_to()))?;
    let mut de = serde_json::Deserializer::from_str(text);
    // serde_json's recursion limit (128) stays on, so deep nesting is an error, not
    // a stack overflow.
    let value = StrictValue.deserialize(&mut de).map_err(detail)?;
    de.end().map_err(detail)?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("it is {} instead of an object", kind(&other))),
    }
}

/// The JSON kind of a value, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A required field, converted to `T`; the error names the field.
pub(crate) fn required<T: DeserializeOwned>(object: &Map<String, Value>, name: &str) -> Result<T, String> {
    match object.get(name) {
        Some(value) => convert(value, name),
        None => Err(format!("missing field `{name}`")),
    }
}

/// An optional field: absent is `None`; present (even `null`) must convert to `T`.
pub(crate) fn optional<T: DeserializeOwned>(
    object: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, String> {
    object.get(name).map(|value| convert(value, name)).transpose()
}

/// Converts one value; the error names `what` (a field name or a path like
/// `rejected[3].seq`).
pub(crate) fn convert<T: DeserializeOwned>(value: &Value, what: &str) -> Result<T, String> {
    T::deserialize(value).map_err(|e| format!("field `{}`: {}", excerpt(what), detail(e)))
}

/// Deserializes any JSON value like `serde_json::Value` does, but fails on an object
/// that repeats a key (compared after unescaping, so `"a"` and `"\u0061"` clash).
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity, and serde_json refuses numbers
        // that overflow f64, so this is always Some; stay total anyway.
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {:?}", excerpt(&key))));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_every_level() {
        assert!(parse_object(br#"{"a":1,"a":1}"#).is_err());
        assert!(parse_object(br#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(parse_object(br#"{"a":[{"b":1},{"c":1,"c":1}]}"#).is_err());
        let err = parse_object(br#"{"a":1,"\u0061":2}"#).unwrap_err();
        assert!(err.contains("duplicate key"), "{err}");
        assert!(parse_object(br#"{"a":{"b":1},"b":{"a":1}}"#).is_ok());
    }

    #[test]
    fn only_one_object_in_utf8_without_bom_is_accepted() {
        assert!(parse_object(b"{}").is_ok());
        assert!(parse_object(b" {} \n").is_ok());
        for bad in
            [&b"\xEF\xBB\xBF{}"[..], b"{\"a\":\"\xff\"}", b"[]", b"\"x\"", b"1", b"null", b"{} {}", b"{", b""]
        {
            assert!(parse_object(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_object(deep.as_bytes()).is_err());
    }
}
