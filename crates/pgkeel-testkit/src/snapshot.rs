//! Normalises `pgkeelctl list` (patronictl 4.1 pretty table) output for snapshot comparison.
//!
//! Column widths, the system identifier, LSNs and ports change from run to run; the structure (title,
//! header, one row per member with its role, state, timeline and lags) must not. [`normalize_list`]
//! keeps exactly that structure, one string per line, so a test can compare it line by line with
//! [`expected_list`].

/// True if `tok` looks like a textual LSN (`0/40004E8`).
fn is_lsn(tok: &str) -> bool {
    match tok.split_once('/') {
        Some((hi, lo)) => {
            !hi.is_empty()
                && !lo.is_empty()
                && hi.chars().all(|c| c.is_ascii_hexdigit())
                && lo.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// Replaces volatile parts of one cell: `127.0.0.1:<port>` -> `127.0.0.1:PORT`, LSNs -> `LSN`.
fn normalize_cell(cell: &str) -> String {
    let cell = cell.trim();
    if is_lsn(cell) {
        return "LSN".to_owned();
    }
    if let Some((host, port)) = cell.rsplit_once(':')
        && !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
    {
        return format!("{host}:PORT");
    }
    cell.to_owned()
}

/// Replaces the digits in `Cluster: <scope> (<sysid>)` with `SYSID`.
fn normalize_title(title: &str) -> String {
    match (title.find('('), title.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            let inner = &title[open + 1..close];
            if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit()) {
                format!("{}(SYSID){}", &title[..open], &title[close + 1..])
            } else {
                title.to_owned()
            }
        }
        _ => title.to_owned(),
    }
}

/// Turns a pretty `list` table into structure lines:
/// * a border becomes `+`, or `+ <title> +` with the system identifier replaced by `SYSID`;
/// * a row `| a | b |` becomes `a|b` with trimmed, normalised cells.
///
/// Other lines (footers) are kept trimmed. Empty lines are dropped.
pub fn normalize_list(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let line = line.trim_end();
            if line.starts_with('+') {
                let title = line.trim_matches(['+', '-']).trim();
                let title = title.trim_end_matches(['+', '-']).trim();
                if title.is_empty() || title.chars().all(|c| c == '+' || c == '-') {
                    "+".to_owned()
                } else {
                    format!("+ {} +", normalize_title(title))
                }
            } else if line.starts_with('|') {
                let inner = line.trim_start_matches('|').trim_end_matches('|');
                inner
                    .split('|')
                    .map(normalize_cell)
                    .collect::<Vec<_>>()
                    .join("|")
            } else {
                line.trim().to_owned()
            }
        })
        .collect()
}

/// Checks the table is rectangular: every border and row has the same width, as prettytable prints.
pub fn check_table_shape(text: &str) -> Result<(), String> {
    let widths: Vec<(usize, &str)> = text
        .lines()
        .filter(|l| l.starts_with('+') || l.starts_with('|'))
        .map(|l| (l.trim_end().chars().count(), l))
        .collect();
    let Some(&(first, _)) = widths.first() else {
        return Err(format!("no table in output:\n{text}"));
    };
    match widths.iter().find(|(w, _)| *w != first) {
        Some((w, l)) => Err(format!(
            "ragged table: line of width {w} != {first}: {l:?}\n{text}"
        )),
        None => Ok(()),
    }
}

/// One expected member row of `pgkeelctl list`.
#[derive(Debug, Clone)]
pub struct ExpectedRow {
    /// Member name.
    pub name: String,
    /// True for the leader (role `Leader`, state `running`, empty LSN/lag cells).
    pub leader: bool,
    /// Timeline shown in the `TL` column.
    pub timeline: u32,
}

/// The structure lines [`normalize_list`] must produce for a healthy cluster: leader `running`, every
/// replica `streaming` with lag 0. Rows are sorted by name as patronictl sorts them.
pub fn expected_list(scope: &str, rows: &[ExpectedRow]) -> Vec<String> {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = vec![
        format!("+ Cluster: {scope} (SYSID) +"),
        "Member|Host|Role|State|TL|Receive LSN|Lag|Replay LSN|Lag".to_owned(),
        "+".to_owned(),
    ];
    for r in rows {
        if r.leader {
            out.push(format!(
                "{}|127.0.0.1:PORT|Leader|running|{}||||",
                r.name, r.timeline
            ));
        } else {
            out.push(format!(
                "{}|127.0.0.1:PORT|Replica|streaming|{}|LSN|0|LSN|0",
                r.name, r.timeline
            ));
        }
    }
    out.push("+".to_owned());
    out
}

/// Compares two line lists and describes the first difference (with both full texts).
pub fn diff_lines(expected: &[String], actual: &[String]) -> Result<(), String> {
    for i in 0..expected.len().max(actual.len()) {
        let e = expected.get(i).map(String::as_str);
        let a = actual.get(i).map(String::as_str);
        if e != a {
            return Err(format!(
                "line {i}: expected {e:?}, got {a:?}\n--- expected\n{}\n--- actual\n{}",
                expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
+ Cluster: batman (7277694203142172922) -+-----------+----+-------------+-----+------------+-----+
| Member      | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+
| postgresql0 | 127.0.0.1:5432 | Leader  | running   |  5 |             |     |            |     |
| postgresql1 | 127.0.0.1:5433 | Replica | streaming |  5 |   0/40004E8 |   0 |  0/40004E8 |   0 |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+
";

    #[test]
    fn patroni_sample_normalises_to_expected() {
        check_table_shape(SAMPLE).unwrap();
        let got = normalize_list(SAMPLE);
        let want = expected_list(
            "batman",
            &[
                ExpectedRow {
                    name: "postgresql1".into(),
                    leader: false,
                    timeline: 5,
                },
                ExpectedRow {
                    name: "postgresql0".into(),
                    leader: true,
                    timeline: 5,
                },
            ],
        );
        diff_lines(&want, &got).unwrap();
    }

    #[test]
    fn uninitialized_title_is_kept() {
        let got = normalize_list("+ Cluster: x (uninitialized) +\n");
        assert_eq!(got, vec!["+ Cluster: x (uninitialized) +".to_owned()]);
    }

    #[test]
    fn ragged_table_is_reported() {
        assert!(check_table_shape("+--+\n| a |\n").is_err());
    }
}
