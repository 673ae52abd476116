//! Compares a JSON document with a reference example by shape, not by value: the REST documents of
//! a live cluster hold ports, LSNs and timestamps that change from run to run, but their fields and
//! JSON types must be Patroni's.
//!
//! Objects: every field of the example must be present (unless listed as possibly absent) with the
//! same shape, and a field the example lacks must be listed as possibly added. Arrays of scalars are
//! tuples (same length, same type at each index); other arrays are lists: each element must match
//! the shape of one of the example's elements. Scalars must have the same JSON type; an example's
//! `null` also accepts a string (a timestamp that is set in one state and not in another).

use serde_json::Value;

/// Which differences from the example are Patroni's own: fields it leaves out or adds in other
/// states. Paths are dotted, with `[]` for "any element": `xlog.replayed_timestamp`,
/// `members[].pending_restart`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShapeRules<'a> {
    /// Fields of the example that may be missing.
    pub may_be_absent: &'a [&'a str],
    /// Fields the example lacks that may be present.
    pub may_be_added: &'a [&'a str],
}

/// The differences between `actual` and the shape of `example`, one line each (empty: same shape).
pub fn shape_differences(example: &Value, actual: &Value, rules: &ShapeRules<'_>) -> Vec<String> {
    let mut out = Vec::new();
    compare(example, actual, "", rules, &mut out);
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn compare(
    example: &Value,
    actual: &Value,
    path: &str,
    rules: &ShapeRules<'_>,
    out: &mut Vec<String>,
) {
    let shown = if path.is_empty() {
        "the document"
    } else {
        path
    };
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = join(path, k);
                match a.get(k) {
                    Some(av) => compare(ev, av, &p, rules, out),
                    None if rules.may_be_absent.contains(&p.as_str()) => {}
                    None => out.push(format!("{p}: missing (Patroni's example has {ev})")),
                }
            }
            for (k, av) in a {
                let p = join(path, k);
                if !e.contains_key(k) && !rules.may_be_added.contains(&p.as_str()) {
                    out.push(format!("{p}: not in Patroni's example (value {av})"));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.iter().all(is_scalar) && !e.is_empty() => {
            if e.len() != a.len() {
                out.push(format!(
                    "{shown}: {} elements, Patroni's example has {}",
                    a.len(),
                    e.len()
                ));
                return;
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                compare(ev, av, &format!("{path}[{i}]"), rules, out);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.is_empty() {
                return;
            }
            let p = format!("{path}[]");
            for (i, av) in a.iter().enumerate() {
                let best = e
                    .iter()
                    .map(|ev| {
                        let mut d = Vec::new();
                        compare(ev, av, &p, rules, &mut d);
                        d
                    })
                    .min_by_key(Vec::len)
                    .unwrap_or_default();
                out.extend(best.into_iter().map(|d| format!("{d} (element {i})")));
            }
        }
        (Value::Null, Value::String(_)) => {}
        (e, a) if kind(e) == kind(a) => {}
        (e, a) => out.push(format!(
            "{shown}: {} {a}, Patroni's example has {} {e}",
            kind(a),
            kind(e)
        )),
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_fields_and_types_match_whatever_the_values() {
        let e = json!({"a": 1, "b": {"c": "x"}, "l": [[1, "s"]], "t": null});
        let a = json!({"a": 7, "b": {"c": "y"}, "l": [[2, "z"], [3, "w"]], "t": "2024"});
        assert!(shape_differences(&e, &a, &ShapeRules::default()).is_empty());
    }

    #[test]
    fn missing_added_and_retyped_fields_are_named() {
        let e = json!({"a": 1, "b": {"c": "x"}, "l": [[1, "s"]]});
        let a = json!({"a": "1", "b": {}, "extra": true, "l": [[1]]});
        let d = shape_differences(&e, &a, &ShapeRules::default());
        assert_eq!(
            d,
            [
                "a: string \"1\", Patroni's example has number 1",
                "b.c: missing (Patroni's example has \"x\")",
                "l[]: 1 elements, Patroni's example has 2 (element 0)",
                "extra: not in Patroni's example (value true)",
            ]
        );
        let rules = ShapeRules {
            may_be_absent: &["b.c"],
            may_be_added: &["extra"],
        };
        assert_eq!(shape_differences(&e, &a, &rules).len(), 2);
    }

    #[test]
    fn list_elements_match_the_closest_example_element() {
        let e = json!([{"role": "leader"}, {"role": "replica", "lag": 0}]);
        assert!(
            shape_differences(
                &e,
                &json!([{"role": "x", "lag": 3}, {"role": "y"}]),
                &ShapeRules::default()
            )
            .is_empty()
        );
        let d = shape_differences(
            &e,
            &json!([{"role": "x", "lag": "3"}]),
            &ShapeRules::default(),
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].starts_with("[].lag: ") && d[0].ends_with("(element 0)"),
            "{d:?}"
        );
    }
}
