//! A PrettyTable-compatible ASCII table, as patronictl prints it (`PatronictlPrettyTable`):
//! one space of padding, `+---+` frame rules, a rule under the header, rules between rows only
//! when a cell spans several lines, and an optional title written over the start of the top
//! border (`+ Cluster: batman (7277694203142172922) -+----`).

/// Horizontal alignment of a column (headers follow their column, like PrettyTable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Left-aligned (the default).
    Left,
    /// Right-aligned (numbers, LSNs).
    Right,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize, align: Align) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    match align {
        Align::Left => format!("{s}{fill}"),
        Align::Right => format!("{fill}{s}"),
    }
}

/// Renders the table (without a trailing newline).
pub fn render(
    title: Option<&str>,
    headers: &[String],
    aligns: &[Align],
    rows: &[Vec<String>],
) -> String {
    let cols = headers.len();
    let align = |i: usize| aligns.get(i).copied().unwrap_or(Align::Left);
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            for line in cell.split('\n') {
                widths[i] = widths[i].max(width(line));
            }
        }
    }
    let rule: String = {
        let mut r = String::from("+");
        for w in &widths {
            r.push_str(&"-".repeat(w + 2));
            r.push('+');
        }
        r
    };
    let line = |cells: &[&str]| -> String {
        let mut l = String::from("|");
        for (i, w) in widths.iter().enumerate() {
            l.push(' ');
            l.push_str(&pad(cells.get(i).copied().unwrap_or(""), *w, align(i)));
            l.push_str(" |");
        }
        l
    };
    let mut out = Vec::new();
    out.push(match title {
        Some(t) => {
            // PatronictlPrettyTable: the title replaces the rule's characters after the corner.
            let rest: String = rule.chars().skip(1 + width(t)).collect();
            format!("+{t}{rest}")
        }
        None => rule.clone(),
    });
    let header_cells: Vec<&str> = headers.iter().map(String::as_str).collect();
    out.push(line(&header_cells));
    out.push(rule.clone());
    let all_rules = rows.iter().any(|r| r.iter().any(|c| c.contains('\n')));
    for row in rows {
        let split: Vec<Vec<&str>> = row.iter().map(|c| c.split('\n').collect()).collect();
        let height = split.iter().map(Vec::len).max().unwrap_or(1).max(1);
        for k in 0..height {
            let cells: Vec<&str> = split
                .iter()
                .map(|c| c.get(k).copied().unwrap_or(""))
                .collect();
            out.push(line(&cells));
        }
        if all_rules {
            out.push(rule.clone());
        }
    }
    if !all_rules || rows.is_empty() {
        out.push(rule);
    }
    out.join("\n")
}
