//! JSON as ctr prints it: Go's `encoding/json`.
//!
//! ctr prints Go structs, so keys come in struct-field order (not sorted),
//! map keys are sorted, and `omitempty` fields vanish when empty. [`Json`]
//! keeps objects as ordered pairs to allow the same, and it parses documents
//! (an OCI spec) without reordering them. Output follows Go byte for byte:
//! `<`, `>` and `&` escaped as `\u003c`…, control characters as `\u00XX`,
//! `json.MarshalIndent(v, "", "    ")` layout for pretty output.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use base64::Engine as _;
use berth_client::prost_types::Any;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their key order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, already formatted.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in output order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// A string map as Go prints a `map[string]string`: keys sorted; `null`
    /// when empty, which is how Go prints a nil map decoded from protobuf.
    pub fn string_map(map: &HashMap<String, String>) -> Json {
        if map.is_empty() {
            return Json::Null;
        }
        let mut pairs: Vec<_> = map.iter().collect();
        pairs.sort();
        Json::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect(),
        )
    }

    /// A protobuf `Any` as Go prints gogo's `types.Any`: `type_url` and a
    /// base64 `value`, each omitted when empty.
    pub fn any(any: &Any) -> Json {
        let value = base64::engine::general_purpose::STANDARD.encode(&any.value);
        Object::new()
            .omitempty("type_url", any.type_url.as_str())
            .omitempty("value", value)
            .build()
    }

    /// Parses a JSON document, keeping object keys in document order.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether Go's `omitempty` drops this value. Objects never are: they
    /// stand for structs (empty maps are dropped by [`Object::omitempty_map`]).
    fn is_empty(&self) -> bool {
        match self {
            Json::Null | Json::Bool(false) => true,
            Json::Number(n) => n == "0",
            Json::String(s) => s.is_empty(),
            Json::Array(a) => a.is_empty(),
            Json::Bool(true) | Json::Object(_) => false,
        }
    }

    /// Go's `json.Marshal`: no whitespace.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None, 0);
        out
    }

    /// Go's `json.MarshalIndent(v, "", "    ")`, without a final newline.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some("    "), 0);
        out
    }

    fn write(&self, out: &mut String, indent: Option<&str>, depth: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                write_container(out, indent, depth, '[', ']', items, |out, item, d| {
                    item.write(out, indent, d)
                })
            }
            Json::Object(pairs) => {
                write_container(out, indent, depth, '{', '}', pairs, |out, (k, v), d| {
                    write_string(out, k);
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    v.write(out, indent, d);
                })
            }
        }
    }
}

/// Writes `[…]` or `{…}`: empty ones stay `[]`/`{}`; indented ones put each
/// element on its own line, one level deeper.
fn write_container<T>(
    out: &mut String,
    indent: Option<&str>,
    depth: usize,
    open: char,
    close: char,
    items: &[T],
    mut write_item: impl FnMut(&mut String, &T, usize),
) {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return;
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(out, indent, depth + 1);
        write_item(out, item, depth + 1);
    }
    newline(out, indent, depth);
    out.push(close);
}

fn newline(out: &mut String, indent: Option<&str>, depth: usize) {
    if let Some(indent) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

/// A string as Go 1.19's `encoding/json` writes it (HTML-safe).
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as Go's `encoding/json` formats a `float64`: shortest digits,
/// exponent form (`1e+21`, `1e-7`) outside `[1e-6, 1e21)`.
fn format_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_compact())
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Json::String(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Json::String(s)
    }
}

impl From<&String> for Json {
    fn from(s: &String) -> Self {
        Json::String(s.clone())
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Json::Bool(b)
    }
}

impl From<u32> for Json {
    fn from(n: u32) -> Self {
        Json::Number(n.to_string())
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Self {
        Json::Number(n.to_string())
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Self {
        Json::Number(n.to_string())
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(value: Option<T>) -> Self {
        value.map_or(Json::Null, Into::into)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(items: Vec<T>) -> Self {
        Json::Array(items.into_iter().map(Into::into).collect())
    }
}

/// Builds an object field by field, the way a Go struct prints.
#[derive(Debug, Default)]
pub struct Object(Vec<(String, Json)>);

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Object::default()
    }

    /// A field that is always printed.
    pub fn field(mut self, key: &str, value: impl Into<Json>) -> Self {
        self.0.push((key.to_string(), value.into()));
        self
    }

    /// A field tagged `omitempty`: dropped when `null`, `false`, `0`, `""`
    /// or `[]`.
    pub fn omitempty(self, key: &str, value: impl Into<Json>) -> Self {
        let value = value.into();
        if value.is_empty() {
            self
        } else {
            self.field(key, value)
        }
    }

    /// A `map[string]string` field tagged `omitempty`.
    pub fn omitempty_map(self, key: &str, map: &HashMap<String, String>) -> Self {
        self.omitempty(key, Json::string_map(map))
    }

    /// The finished object.
    pub fn build(self) -> Json {
        Json::Object(self.0)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Builds a [`Json`] from serde's events, keeping map order.
struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Json, E> {
        Ok(n.into())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Json, E> {
        Ok(n.into())
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Json, E> {
        Ok(Json::Number(format_float(f)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Json, E> {
        Ok(s.into())
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Json, E> {
        Ok(s.into())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut pairs = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            pairs.push((key, value));
        }
        Ok(Json::Object(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_key_order_and_pretty_prints_like_go() {
        let json = Json::parse(r#"{"z":1,"a":[true,null],"m":{},"e":[],"s":"x"}"#).expect("json");
        assert_eq!(
            json.to_pretty(),
            "{\n    \"z\": 1,\n    \"a\": [\n        true,\n        null\n    ],\n    \
             \"m\": {},\n    \"e\": [],\n    \"s\": \"x\"\n}"
        );
        assert_eq!(
            json.to_compact(),
            r#"{"z":1,"a":[true,null],"m":{},"e":[],"s":"x"}"#
        );
    }

    #[test]
    fn strings_are_escaped_like_go() {
        let json = Json::from("a<b>&\"\\\n\t\u{1}\u{7f}é\u{2028}");
        assert_eq!(
            json.to_compact(),
            r#""a\u003cb\u003e\u0026\"\\\n\t\u0001"#.to_string() + "\u{7f}é\\u2028\""
        );
    }

    #[test]
    fn numbers_keep_integers_exact_and_format_floats_like_go() {
        let json = Json::parse("[18446744073709551615,-5,1.5,1e21,0.0000001,1e-6]").expect("json");
        assert_eq!(
            json.to_compact(),
            "[18446744073709551615,-5,1.5,1e+21,1e-7,0.000001]"
        );
    }

    #[test]
    fn omitempty_drops_go_zero_values_but_not_structs() {
        let empty: HashMap<String, String> = HashMap::new();
        let json = Object::new()
            .omitempty("s", "")
            .omitempty("n", 0u32)
            .omitempty("b", false)
            .omitempty("none", None::<Json>)
            .omitempty("list", Vec::<Json>::new())
            .omitempty_map("labels", &empty)
            .omitempty("struct", Object::new().build())
            .field("kept", "")
            .build();
        assert_eq!(json.to_compact(), r#"{"struct":{},"kept":""}"#);
    }

    #[test]
    fn maps_are_sorted_and_null_when_empty() {
        let map: HashMap<String, String> = [("b", "2"), ("a", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(Json::string_map(&map).to_compact(), r#"{"a":"1","b":"2"}"#);
        assert_eq!(Json::string_map(&HashMap::new()), Json::Null);
    }

    #[test]
    fn any_prints_like_gogo_types_any() {
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![],
        };
        assert_eq!(
            Json::any(&any).to_compact(),
            r#"{"type_url":"containerd.runc.v1.Options"}"#
        );
        let any = Any {
            type_url: "x".into(),
            value: vec![1, 2, 3],
        };
        assert_eq!(
            Json::any(&any).to_compact(),
            r#"{"type_url":"x","value":"AQID"}"#
        );
    }
}
