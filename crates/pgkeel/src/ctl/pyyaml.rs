//! YAML read as PyYAML's `yaml.safe_load` reads it, for `edit-config`'s `-s` values and
//! files: plain scalars are resolved with PyYAML's YAML 1.1 rules (`on`/`yes`/`off` are
//! booleans but `y`/`n` are not, `0o10` and `1e3` are strings, `1:30` is 90, `010` is 8),
//! anchors, aliases and `<<` merge keys work. What JSON cannot hold (`.inf`, `.nan`) is an
//! error; timestamps stay strings.

use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Tag};
use std::collections::HashMap;

/// Why a text could not be read as YAML (or holds what JSON cannot).
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The parser refused the text.
    #[error("{input}: {message}")]
    Syntax {
        /// What was read (a file name, `<stdin>` or the `KEY=VALUE` pair).
        input: String,
        /// The parser's message.
        message: String,
    },
    /// A value JSON cannot hold.
    #[error("{input}: {message}")]
    Unsupported {
        /// What was read.
        input: String,
        /// What was wrong.
        message: String,
    },
}

/// `yaml.safe_load(text)`: the single document's value, null for an empty stream.
pub fn safe_load(text: &str, source: &str) -> Result<Value, YamlError> {
    let mut events = Vec::new();
    for item in Parser::new_from_str(text) {
        let (event, _) = item.map_err(|e| YamlError::Syntax {
            input: source.to_string(),
            message: e.to_string(),
        })?;
        match event {
            Event::Comment(..) | Event::Anchor(..) => {}
            e => events.push(e),
        }
    }
    let mut b = Builder {
        events: events.into_iter(),
        anchors: HashMap::new(),
        source,
    };
    let mut docs = Vec::new();
    while let Some(e) = b.events.next() {
        match e {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(..) => {
                let first = b.next()?;
                docs.push(b.node(first)?);
            }
            _ => return Err(b.unsupported("unexpected event outside a document".into())),
        }
    }
    if docs.len() > 1 {
        return Err(b.unsupported("expected a single document in the stream".into()));
    }
    Ok(docs.pop().unwrap_or(Value::Null))
}

/// Turns the event stream into values.
struct Builder<'a, 's> {
    events: std::vec::IntoIter<Event<'a>>,
    anchors: HashMap<usize, Value>,
    source: &'s str,
}

impl<'a> Builder<'a, '_> {
    fn unsupported(&self, message: String) -> YamlError {
        YamlError::Unsupported {
            input: self.source.to_string(),
            message,
        }
    }

    fn next(&mut self) -> Result<Event<'a>, YamlError> {
        self.events
            .next()
            .ok_or_else(|| self.unsupported("unexpected end of the YAML".into()))
    }

    /// The node starting with `event`.
    fn node(&mut self, event: Event<'a>) -> Result<Value, YamlError> {
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                (self.scalar(&text, style, tag.as_deref())?, anchor)
            }
            Event::Alias(id) => {
                return self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| self.unsupported("found undefined alias".into()));
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        Event::SequenceEnd => break,
                        e => items.push(self.node(e)?),
                    }
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(_, anchor, _) => (self.mapping()?, anchor),
            _ => return Err(self.unsupported("unexpected YAML event".into())),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    /// A mapping's entries up to its end; `<<` merges mappings under the explicit keys.
    fn mapping(&mut self) -> Result<Value, YamlError> {
        let mut own = Map::new();
        let mut merged: Vec<Map<String, Value>> = Vec::new();
        loop {
            let key_event = match self.next()? {
                Event::MappingEnd => break,
                e => e,
            };
            let is_merge =
                matches!(&key_event, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
            let key = self.node(key_event)?;
            let value_event = self.next()?;
            let value = self.node(value_event)?;
            if is_merge {
                match value {
                    Value::Object(m) => merged.push(m),
                    Value::Array(items) => {
                        for item in items {
                            match item {
                                Value::Object(m) => merged.push(m),
                                _ => {
                                    return Err(
                                        self.unsupported("expected a mapping for merging".into())
                                    );
                                }
                            }
                        }
                    }
                    _ => return Err(self.unsupported("expected a mapping for merging".into())),
                }
                continue;
            }
            let key = match key {
                Value::String(s) => s,
                Value::Null => "null".into(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return Err(self.unsupported("a mapping key is not a scalar".into())),
            };
            own.insert(key, value);
        }
        if merged.is_empty() {
            return Ok(Value::Object(own));
        }
        // PyYAML: the first merged mapping wins over later ones, explicit keys over all.
        let mut out = Map::new();
        for m in merged.into_iter().rev() {
            for (k, v) in m {
                out.insert(k, v);
            }
        }
        for (k, v) in own {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }

    /// A scalar: quoted and block scalars are strings; plain ones are resolved.
    fn scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
    ) -> Result<Value, YamlError> {
        if let Some(t) = tag
            && t.is_yaml_core_schema()
        {
            return match t.suffix() {
                "str" => Ok(Value::String(text.to_string())),
                "null" => Ok(Value::Null),
                _ => self.plain(text),
            };
        }
        if style != ScalarStyle::Plain || tag.is_some() {
            return Ok(Value::String(text.to_string()));
        }
        self.plain(text)
    }

    /// PyYAML's implicit resolvers (null, bool, int, float; the rest are strings).
    fn plain(&self, text: &str) -> Result<Value, YamlError> {
        match text {
            "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                return Ok(Value::Bool(true));
            }
            "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
                return Ok(Value::Bool(false));
            }
            _ => {}
        }
        if let Some(v) = int(text) {
            return Ok(v);
        }
        match float(text) {
            Some(Some(f)) => Ok(Number::from_f64(f).map_or(Value::Null, Value::Number)),
            Some(None) => Err(self.unsupported(format!("{text}: JSON cannot hold this float"))),
            None => Ok(Value::String(text.to_string())),
        }
    }
}

/// Splits a leading sign: (negative, rest).
fn sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// PyYAML's int: `0b..`, `0x..`, `0..` (octal), decimal, and base 60 (`1:30`), `_` ignored.
fn int(text: &str) -> Option<Value> {
    let (neg, body) = sign(text);
    let digits_in =
        |s: &str, ok: fn(u8) -> bool| !s.is_empty() && s.bytes().all(|c| ok(c) || c == b'_');
    let value: i128 = if let Some(b) = body.strip_prefix("0b") {
        if !digits_in(b, |c| c == b'0' || c == b'1') {
            return None;
        }
        i128::from_str_radix(&b.replace('_', ""), 2).ok()?
    } else if let Some(h) = body.strip_prefix("0x") {
        if !digits_in(h, |c| c.is_ascii_hexdigit()) {
            return None;
        }
        i128::from_str_radix(&h.replace('_', ""), 16).ok()?
    } else if body == "0" {
        0
    } else if let Some(o) = body.strip_prefix('0') {
        if !digits_in(o, |c| (b'0'..=b'7').contains(&c)) {
            return None;
        }
        i128::from_str_radix(&o.replace('_', ""), 8).ok()?
    } else if body.contains(':') {
        let mut parts = body.split(':');
        let first = parts.next()?;
        if !first.starts_with(|c: char| c.is_ascii_digit() && c != '0')
            || !digits_in(first, |c| c.is_ascii_digit())
        {
            return None;
        }
        let mut v = first.replace('_', "").parse::<i128>().ok()?;
        for p in parts {
            if !sexagesimal_part(p) {
                return None;
            }
            v = v.checked_mul(60)?.checked_add(p.parse::<i128>().ok()?)?;
        }
        v
    } else {
        if !body.starts_with(|c: char| c.is_ascii_digit() && c != '0')
            || !digits_in(body, |c| c.is_ascii_digit())
        {
            return None;
        }
        body.replace('_', "").parse::<i128>().ok()?
    };
    let value = if neg { -value } else { value };
    if let Ok(i) = i64::try_from(value) {
        Some(Value::Number(i.into()))
    } else if let Ok(u) = u64::try_from(value) {
        Some(Value::Number(u.into()))
    } else {
        // Beyond 64 bits: the nearest float (Python would keep every digit).
        Number::from_f64(value as f64).map(Value::Number)
    }
}

/// `[0-5]?[0-9]`.
fn sexagesimal_part(p: &str) -> bool {
    let b = p.as_bytes();
    match b {
        [d] => d.is_ascii_digit(),
        [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
        _ => false,
    }
}

/// PyYAML's float: `Some(Some(f))` for a finite float, `Some(None)` for `.inf`/`.nan`,
/// `None` when `text` is not a float.
fn float(text: &str) -> Option<Option<f64>> {
    let (neg, body) = sign(text);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return Some(None);
    }
    if text.len() == body.len() && matches!(body, ".nan" | ".NaN" | ".NAN") {
        return Some(None);
    }
    let digit_or_us = |s: &str| s.bytes().all(|c| c.is_ascii_digit() || c == b'_');
    // Base 60: `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`.
    if body.contains(':') {
        let (whole, frac) = body.split_once('.')?;
        if !digit_or_us(frac) {
            return None;
        }
        let mut parts = whole.split(':');
        let first = parts.next()?;
        if !first.starts_with(|c: char| c.is_ascii_digit()) || !digit_or_us(first) {
            return None;
        }
        let mut v: f64 = first.replace('_', "").parse().ok()?;
        let mut any = false;
        for p in parts {
            if !sexagesimal_part(p) {
                return None;
            }
            any = true;
            v = v * 60.0 + p.parse::<f64>().ok()?;
        }
        if !any {
            return None;
        }
        let frac = frac.replace('_', "");
        if !frac.is_empty() {
            v += format!("0.{frac}").parse::<f64>().ok()?;
        }
        return Some(Some(if neg { -v } else { v }));
    }
    // `[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?` or (unsigned) `\.[0-9_]+([eE][-+][0-9]+)?`.
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, frac) = mantissa.split_once('.')?;
    if whole.is_empty() {
        if text.len() != body.len() || frac.is_empty() || !digit_or_us(frac) {
            return None;
        }
    } else if !whole.starts_with(|c: char| c.is_ascii_digit())
        || !digit_or_us(whole)
        || !digit_or_us(frac)
    {
        return None;
    }
    if let Some(e) = exponent {
        let (_, digits) = match e.as_bytes().first() {
            Some(b'-' | b'+') => sign(e),
            _ => return None,
        };
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let clean = body.replace('_', "");
    let clean = if clean.starts_with('.') {
        format!("0{clean}")
    } else {
        clean
    };
    let v: f64 = clean.parse().ok()?;
    if !v.is_finite() {
        return Some(None);
    }
    Some(Some(if neg { -v } else { v }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_resolve_like_pyyaml() {
        // python3 -c "import yaml, json; print(json.dumps(yaml.safe_load(V)))" for each V.
        for (text, want) in [
            ("1:30", "90"),
            ("0x1F", "31"),
            ("1_000", "1000"),
            ("010", "8"),
            ("0o10", "\"0o10\""),
            ("+1", "1"),
            ("-0", "0"),
            (".5", "0.5"),
            ("1e3", "\"1e3\""),
            ("1.0e3", "\"1.0e3\""),
            ("1.0e+3", "1000.0"),
            ("1.", "1.0"),
            ("-1.5", "-1.5"),
            ("1:30.5", "90.5"),
            ("2001-12-14", "\"2001-12-14\""),
            ("Yes", "true"),
            ("NO", "false"),
            ("y", "\"y\""),
            ("n", "\"n\""),
            ("~", "null"),
            ("", "null"),
            ("Null", "null"),
            ("None", "\"None\""),
            ("'on'", "\"on\""),
            ("0b101", "5"),
            ("08", "\"08\""),
            ("[a, on, 1]", "[\"a\",true,1]"),
            ("{a: 1, 2: b}", "{\"a\":1,\"2\":\"b\"}"),
            ("!!str 1", "\"1\""),
            (
                "a: &x {b: 1}\nc: *x\nd:\n  <<: *x\n  e: 2",
                "{\"a\":{\"b\":1},\"c\":{\"b\":1},\"d\":{\"b\":1,\"e\":2}}",
            ),
            ("|\n  text\n", "\"text\\n\""),
        ] {
            let v = safe_load(text, "t").unwrap();
            assert_eq!(v.to_string(), want, "{text:?}");
        }
        assert!(safe_load(".inf", "t").is_err());
        assert!(safe_load("a: [1", "t").is_err());
        assert!(safe_load("a\n---\nb", "t").is_err());
    }
}
