//! `synchronous_standby_names`: read it as PostgreSQL does, write it as Patroni 4.1 does.
//! Reference: Patroni's `patroni/postgresql/sync.py` (`parse_sync_standby_names`,
//! `set_synchronous_standby_names`).

use std::collections::BTreeSet;
use std::fmt;

/// The name Patroni puts into `synchronous_standby_names` when commits must wait although no
/// standby is synchronous (strict mode): it matches no standby, so commits wait.
pub const STRICT_PLACEHOLDER: &str = "__patroni_strict_sync_replica_placeholder__";

/// How `synchronous_standby_names` asks for confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SsnKind {
    /// Empty: nothing waits.
    #[default]
    Off,
    /// `FIRST n (...)`, `n (...)` or a plain list: the first n connected by priority.
    Priority,
    /// `ANY n (...)`.
    Quorum,
}

/// A parsed `synchronous_standby_names`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StandbyNames {
    /// The method.
    pub kind: SsnKind,
    /// A `*` is listed (any standby counts).
    pub has_star: bool,
    /// How many confirmations a commit waits for.
    pub num: u64,
    /// The names listed, lower-cased (PostgreSQL matches `application_name` without case), the
    /// strict placeholder left out.
    pub members: BTreeSet<String>,
}

/// Why a value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unparsable synchronous_standby_names value {value:?}: {why}")]
pub struct UnparsableStandbyNames {
    /// The value.
    pub value: String,
    /// What was wrong.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    First,
    Any,
    Ident(String),
    Quoted(String),
    Star,
    Num(u64),
    Comma,
    Open,
    Close,
}

fn tokens(value: &str) -> Result<Vec<Token>, String> {
    let mut chars = value.char_indices().peekable();
    let mut out = Vec::new();
    while let Some((pos, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let mut word = String::from(c);
            while let Some((_, n)) =
                chars.next_if(|(_, n)| n.is_ascii_alphanumeric() || *n == '_' || *n == '$')
            {
                word.push(n);
            }
            out.push(match word.to_ascii_lowercase().as_str() {
                "first" => Token::First,
                "any" => Token::Any,
                _ => Token::Ident(word),
            });
        } else if c.is_ascii_digit() {
            let mut digits = String::from(c);
            while let Some((_, d)) = chars.next_if(|(_, d)| d.is_ascii_digit()) {
                digits.push(d);
            }
            let n = digits
                .parse()
                .map_err(|_| format!("number {digits} too large at {pos}"))?;
            out.push(Token::Num(n));
        } else if c == '"' {
            let mut name = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted name at {pos}")),
                    Some((_, '"')) => {
                        if chars.next_if(|(_, q)| *q == '"').is_some() {
                            name.push('"');
                        } else {
                            break;
                        }
                    }
                    Some((_, ch)) => name.push(ch),
                }
            }
            if name.is_empty() {
                return Err(format!("empty quoted name at {pos}"));
            }
            out.push(Token::Quoted(name));
        } else {
            out.push(match c {
                '*' => Token::Star,
                ',' => Token::Comma,
                '(' => Token::Open,
                ')' => Token::Close,
                _ => return Err(format!("unexpected character {c:?} at {pos}")),
            });
        }
    }
    Ok(out)
}

impl StandbyNames {
    /// Parses a value as PostgreSQL accepts it (Patroni's `parse_sync_standby_names`).
    pub fn parse(value: &str) -> Result<StandbyNames, UnparsableStandbyNames> {
        let bad = |why: String| UnparsableStandbyNames {
            value: value.to_string(),
            why,
        };
        let toks = tokens(value).map_err(bad)?;
        if toks.is_empty() {
            return Ok(StandbyNames::default());
        }
        let (kind, num, list) = match toks.as_slice() {
            [
                Token::Any,
                Token::Num(n),
                Token::Open,
                rest @ ..,
                Token::Close,
            ] => (SsnKind::Quorum, *n, rest),
            [
                Token::First,
                Token::Num(n),
                Token::Open,
                rest @ ..,
                Token::Close,
            ] => (SsnKind::Priority, *n, rest),
            [Token::Num(n), Token::Open, rest @ .., Token::Close] => (SsnKind::Priority, *n, rest),
            all => (SsnKind::Priority, 1, all),
        };
        let mut out = StandbyNames {
            kind,
            has_star: false,
            num,
            members: BTreeSet::new(),
        };
        // Names at even places, commas between them, nothing after the last name.
        let mut expect_name = true;
        for (i, t) in list.iter().enumerate() {
            if !expect_name {
                if *t != Token::Comma {
                    return Err(bad(format!(
                        "got {t:?} while expecting a comma at token {i}"
                    )));
                }
                expect_name = true;
                continue;
            }
            expect_name = false;
            match t {
                Token::Ident(s) | Token::Quoted(s) => {
                    out.members.insert(s.to_lowercase());
                }
                Token::First => {
                    out.members.insert("first".into());
                }
                Token::Any => {
                    out.members.insert("any".into());
                }
                Token::Star => {
                    out.members.insert("*".into());
                    out.has_star = true;
                }
                other => return Err(bad(format!("unexpected {other:?} at token {i}"))),
            }
        }
        if expect_name && !list.is_empty() {
            return Err(bad("a comma ends the list".into()));
        }
        if out.members.len() == 1 && out.members.contains(STRICT_PLACEHOLDER) {
            out.members.clear();
        }
        Ok(out)
    }
}

/// A standby name as it must be written: quoted unless it is a plain identifier other than
/// `first` and `any` (Patroni's `quote_standby_name`).
pub fn quote_standby_name(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !name.eq_ignore_ascii_case("first")
        && !name.eq_ignore_ascii_case("any");
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The value to give `synchronous_standby_names` (Patroni's `set_synchronous_standby_names`):
/// names sorted; one name alone; several as `n (a,b)` (`ANY n (a,b)` in quorum mode), `n`
/// defaulting to all of them; no names but a wanted `num` of at least 1 (strict mode): the
/// placeholder, which no standby matches. `None`: nothing is synchronous (the parameter is
/// left to the user's setting).
pub fn standby_names_value(
    names: &BTreeSet<String>,
    num: Option<u64>,
    quorum: bool,
) -> Option<String> {
    let strict = names.contains("*") || (names.is_empty() && num.is_some_and(|n| n >= 1));
    let list: Vec<String> = if strict {
        vec![STRICT_PLACEHOLDER.to_string()]
    } else {
        names.iter().map(|n| quote_standby_name(n)).collect()
    };
    let joined = match list.len() {
        0 => return None,
        1 => list[0].clone(),
        _ => list.join(","),
    };
    if quorum || list.len() > 1 {
        let n = num.unwrap_or(list.len() as u64);
        let prefix = if quorum { "ANY " } else { "" };
        Some(format!("{prefix}{n} ({joined})"))
    } else {
        Some(joined)
    }
}

impl fmt::Display for SsnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SsnKind::Off => "off",
            SsnKind::Priority => "priority",
            SsnKind::Quorum => "quorum",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    // Patroni's doctests of parse_sync_standby_names.
    #[test]
    fn parses_what_patroni_parses() {
        assert_eq!(StandbyNames::parse("").unwrap().kind, SsnKind::Off);
        let first = StandbyNames::parse("FiRsT").unwrap();
        assert_eq!(first.kind, SsnKind::Priority);
        assert!(first.members.contains("first"));
        assert_eq!(StandbyNames::parse("\"1\"").unwrap().members, set(&["1"]));
        let ab = StandbyNames::parse(" a , b ").unwrap();
        assert_eq!((ab.members, ab.num), (set(&["a", "b"]), 1));
        let any = StandbyNames::parse("ANY 4(\"a\",*,b)").unwrap();
        assert!(any.has_star);
        assert_eq!((any.kind, any.num), (SsnKind::Quorum, 4));
        let placeholder = StandbyNames::parse(&format!("ANY 1({STRICT_PLACEHOLDER})")).unwrap();
        assert!(placeholder.members.is_empty());
        let two = StandbyNames::parse("2 (node_b,Node_C)").unwrap();
        assert_eq!((two.kind, two.num), (SsnKind::Priority, 2));
        assert_eq!(two.members, set(&["node_b", "node_c"]));
        for bad in [
            "1",
            "a,",
            "ANY 4(\"a\" b,\"c c\")",
            "FIRST 4(\"a\",)",
            "2 (,)",
            "a;b",
        ] {
            assert!(StandbyNames::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn writes_what_patroni_writes() {
        assert_eq!(standby_names_value(&set(&[]), None, false), None);
        assert_eq!(
            standby_names_value(&set(&["node2"]), None, false).as_deref(),
            Some("node2")
        );
        assert_eq!(
            standby_names_value(&set(&["b", "a"]), None, false).as_deref(),
            Some("2 (a,b)")
        );
        assert_eq!(
            standby_names_value(&set(&[]), Some(1), false).as_deref(),
            Some(STRICT_PLACEHOLDER)
        );
        assert_eq!(
            standby_names_value(&set(&["a", "b", "c"]), Some(1), true).as_deref(),
            Some("ANY 1 (a,b,c)")
        );
        assert_eq!(
            standby_names_value(&set(&["node-2", "first"]), None, false).as_deref(),
            Some("2 (\"first\",\"node-2\")")
        );
        // What is written reads back as the same names.
        let v = standby_names_value(&set(&["node-2", "x\"y"]), None, false).unwrap();
        assert_eq!(
            StandbyNames::parse(&v).unwrap().members,
            set(&["node-2", "x\"y"])
        );
    }
}
