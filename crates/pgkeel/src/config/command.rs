//! Command strings from the configuration (`bootstrap.post_bootstrap`, `postgresql.callbacks.*`),
//! split into program and arguments once, at load time, the way Patroni splits them.
//!
//! Patroni runs every configured command as `shlex.split(cmd) + [extra args]` (Python's `shlex`
//! in POSIX mode, no comments). [`split`] is a faithful port of that, so
//! `psql -w -c "SELECT 1"` runs psql with the three arguments `-w`, `-c`, `SELECT 1`, and an
//! unbalanced quote is a configuration error naming the key instead of a surprise at bootstrap.
//! Nothing here runs a shell: `$VAR`, `|`, `;` and globs stay literal, as in Patroni.

use std::fmt;

/// A configured command, already split into its program and arguments.
#[derive(Clone, PartialEq, Eq)]
pub struct ShellCommand {
    /// The text as configured (shown in logs and error messages).
    raw: String,
    /// The words [`split`] produced; never empty.
    argv: Vec<String>,
}

impl ShellCommand {
    /// Splits `raw` like Patroni's `shlex.split`; an error when the quotes do not balance, a
    /// trailing backslash escapes nothing, or there is no word at all.
    pub fn parse(raw: &str) -> Result<ShellCommand, SplitError> {
        let argv = split(raw)?;
        if argv.is_empty() {
            return Err(SplitError::Empty);
        }
        Ok(ShellCommand {
            raw: raw.to_string(),
            argv,
        })
    }

    /// The command as written in the configuration.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The program to execute (the first word).
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or_default()
    }

    /// The words after the program.
    pub fn args(&self) -> &[String] {
        self.argv.get(1..).unwrap_or_default()
    }

    /// Every word, program first.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }
}

impl fmt::Debug for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ShellCommand").field(&self.argv).finish()
    }
}

impl fmt::Display for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Why a command string cannot be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A `'` or `"` is never closed (Python: `No closing quotation`).
    #[error("no closing quotation: a ' or \" is never closed")]
    NoClosingQuotation,
    /// The text ends with a backslash (Python: `No escaped character`).
    #[error("no escaped character: the command ends with a backslash")]
    NoEscapedCharacter,
    /// Only whitespace (or nothing).
    #[error("the command is empty")]
    Empty,
}

/// Python's `shlex.split(s)` (POSIX mode, `comments=False`):
/// * words are separated by space, tab, CR or LF;
/// * `'...'` keeps everything literally;
/// * `"..."` keeps everything literally except `\"` and `\\`, which lose their backslash
///   (any other backslash inside double quotes stays);
/// * outside quotes a backslash makes the next character literal;
/// * quotes join with adjacent text (`a"b c"d` is one word `ab cd`), and `''` is an empty word.
pub fn split(s: &str) -> Result<Vec<String>, SplitError> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        /// Between words.
        Space,
        /// Inside a word, outside quotes.
        Word,
        /// Inside `'...'`.
        Single,
        /// Inside `"..."`.
        Double,
        /// After a backslash; the state to return to.
        Escape(Escaped),
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Escaped {
        Word,
        Double,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut state = State::Space;
    for c in s.chars() {
        state = match state {
            State::Space | State::Word => match c {
                ' ' | '\t' | '\r' | '\n' => {
                    // A word is pushed even when empty: only quotes (`''`) make one.
                    if state == State::Word {
                        words.push(std::mem::take(&mut word));
                    }
                    State::Space
                }
                '\'' => State::Single,
                '"' => State::Double,
                '\\' => State::Escape(Escaped::Word),
                c => {
                    word.push(c);
                    State::Word
                }
            },
            State::Single => match c {
                '\'' => State::Word,
                c => {
                    word.push(c);
                    State::Single
                }
            },
            State::Double => match c {
                '"' => State::Word,
                '\\' => State::Escape(Escaped::Double),
                c => {
                    word.push(c);
                    State::Double
                }
            },
            State::Escape(back) => {
                if back == Escaped::Double && c != '"' && c != '\\' {
                    word.push('\\');
                }
                word.push(c);
                match back {
                    Escaped::Word => State::Word,
                    Escaped::Double => State::Double,
                }
            }
        };
    }
    match state {
        State::Single | State::Double => Err(SplitError::NoClosingQuotation),
        State::Escape(_) => Err(SplitError::NoEscapedCharacter),
        State::Word => {
            words.push(word);
            Ok(words)
        }
        State::Space => Ok(words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> Vec<String> {
        split(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    // Expected values are what CPython 3.11's `shlex.split` returns for the same input.
    #[test]
    fn splits_like_python_shlex() {
        assert_eq!(
            sp(r#"psql -w -c "SELECT 1""#),
            ["psql", "-w", "-c", "SELECT 1"]
        );
        assert_eq!(sp("  a\tb\n c  "), ["a", "b", "c"]);
        assert_eq!(sp(r"'it''s' x"), ["its", "x"]);
        assert_eq!(sp(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(sp(r#"'' "" x"#), ["", "", "x"]);
        assert_eq!(sp(r"a\ b \'q\' \\"), ["a b", "'q'", "\\"]);
        assert_eq!(sp(r#""a \" \\ \$ \n""#), [r#"a " \ \$ \n"#]);
        assert_eq!(sp(r#"'a \" b'"#), [r#"a \" b"#]);
        assert_eq!(sp("x#y # z"), ["x#y", "#", "z"]);
        assert_eq!(sp("$HOME|wc;ls *"), ["$HOME|wc;ls", "*"]);
        assert_eq!(sp(""), Vec::<String>::new());
        assert_eq!(sp("   "), Vec::<String>::new());
    }

    #[test]
    fn unbalanced_input_is_an_error() {
        assert_eq!(
            split(r#"psql -c "SELECT 1"#),
            Err(SplitError::NoClosingQuotation)
        );
        assert_eq!(split("echo 'x"), Err(SplitError::NoClosingQuotation));
        assert_eq!(split(r#"echo "x\"#), Err(SplitError::NoEscapedCharacter));
        assert_eq!(split(r"echo x\"), Err(SplitError::NoEscapedCharacter));
        assert_eq!(ShellCommand::parse("  ").err(), Some(SplitError::Empty));
    }

    #[test]
    fn command_parts() {
        let c = ShellCommand::parse(r#"/bin/cb --tag "a b""#).unwrap();
        assert_eq!(c.program(), "/bin/cb");
        assert_eq!(c.args(), ["--tag", "a b"]);
        assert_eq!(c.raw(), r#"/bin/cb --tag "a b""#);
        assert_eq!(c.to_string(), c.raw());
    }
}
