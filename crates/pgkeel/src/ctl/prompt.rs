//! Interactive prompts as click prints and reads them, so scripts that pipe answers into
//! patronictl work unchanged with pgkeelctl.
//!
//! click writes the prompt text (no newline) to stdout and reads one line from stdin; the answer
//! is not echoed. End of input is click's `Abort` (`Aborted!`, exit 1).

use super::CtlError;
use std::io::{BufRead, Write};

/// Reads one line without its line ending; `None` at end of input.
fn read_line(input: &mut (dyn BufRead + Send)) -> Result<Option<String>, CtlError> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(Some(line))
}

/// One line without its line ending; end of input is click's `Abort`.
pub fn read_line_or_abort(input: &mut (dyn BufRead + Send)) -> Result<String, CtlError> {
    read_line(input)?.ok_or(CtlError::Aborted)
}

/// `click.prompt(text, type=str, default=default)`: `text [default]: `; an empty answer is the
/// default; without a default an empty answer asks again.
pub fn prompt(
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
    text: &str,
    default: Option<&str>,
) -> Result<String, CtlError> {
    let shown = match default {
        Some(d) => format!("{text} [{d}]: "),
        None => format!("{text}: "),
    };
    loop {
        write!(out, "{shown}")?;
        out.flush()?;
        let answer = read_line(input)?.ok_or(CtlError::Aborted)?;
        if !answer.is_empty() {
            return Ok(answer);
        }
        if let Some(d) = default {
            return Ok(d.to_string());
        }
    }
}

/// `click.confirm(text, default=False)`: `text [y/N]: `; `y`/`yes` and `n`/`no` in any case,
/// empty is no, anything else prints `Error: invalid input` and asks again.
pub fn confirm(
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
    text: &str,
) -> Result<bool, CtlError> {
    loop {
        write!(out, "{text} [y/N]: ")?;
        out.flush()?;
        let answer = read_line(input)?.ok_or(CtlError::Aborted)?;
        match answer.trim().to_lowercase().as_str() {
            "y" | "yes" => return Ok(true),
            "n" | "no" | "" => return Ok(false),
            _ => writeln!(out, "Error: invalid input")?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_read_like_click() {
        let mut out = Vec::new();
        let mut input: &[u8] = b"\n\nnode1\r\nmaybe\nYes\n";
        let v = prompt(&mut input, &mut out, "Primary", Some("node0")).unwrap();
        assert_eq!(v, "node0");
        let v = prompt(&mut input, &mut out, "Candidate", None).unwrap();
        assert_eq!(v, "node1");
        assert!(confirm(&mut input, &mut out, "Sure?").unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Primary [node0]: Candidate: Candidate: Sure? [y/N]: Error: invalid input\nSure? [y/N]: "
        );
        let mut empty: &[u8] = b"";
        let e = confirm(&mut empty, &mut Vec::new(), "Sure?").unwrap_err();
        assert!(matches!(e, CtlError::Aborted));
    }
}
