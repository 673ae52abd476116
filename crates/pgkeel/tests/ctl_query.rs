//! `pgkeelctl query` against Patroni's own `patronictl` 4.1 on the same keys: argument errors,
//! which member is chosen (and the rows printed when none fits), a member whose PostgreSQL does
//! not answer (libpq's message in the error row) in every output format, and the password
//! prompt. Queries against a real PostgreSQL are compared in e2e_ctl_members.rs.
// Reference: patroni/ctl.py `query`, `query_member`, `get_cursor`, `print_output`.

mod ctl_compat;

use ctl_compat::{Fixture, Outcome, batman};
use std::path::Path;

/// Hides `timestamp(0)` values (`2024-01-02 03:04:05`, no fraction), which the two runs may
/// print a second apart.
fn hide_seconds(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let shape = "9999-99-99 99:99:99";
    let fits = |i: usize| {
        i + shape.len() <= chars.len()
            && shape.chars().zip(&chars[i..]).all(|(p, c)| {
                if p == '9' {
                    c.is_ascii_digit()
                } else {
                    p == *c
                }
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if fits(i) {
            out.push_str("<TIME>");
            i += shape.len();
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Runs both tools and asserts they agree (stdout with the time hidden, the error line, the
/// exit code); returns patronictl's outcome, its time hidden.
fn compare(f: &Fixture, keys: &[(String, String)], args: &[&str], input: &str) -> Outcome {
    let run = |bin: &Path| {
        let mut o = f.run(bin, keys, (200, ""), args, input);
        o.stdout = hide_seconds(&o.stdout);
        o
    };
    let patroni = run(&pgkeel_testkit::patroni::patronictl_bin());
    let ours = run(Path::new(env!("CARGO_BIN_EXE_pgkeelctl")));
    assert_eq!(
        (&ours.stdout, &ours.error, ours.code),
        (&patroni.stdout, &patroni.error, patroni.code),
        "pgkeelctl {args:?} (left) differs from patronictl (right); stderr:\n{}\n---\n{}",
        ours.stderr.0,
        patroni.stderr.0
    );
    patroni
}

/// The cluster of [`batman`] with every member's PostgreSQL at `pg_port`.
fn batman_at(f: &Fixture, pg_port: u16) -> Vec<(String, String)> {
    batman(f.stub.port, "{}")
        .into_iter()
        .map(|(k, v)| {
            let v = ["5432", "5433", "5434"].iter().fold(v, |v, p| {
                v.replace(&format!("127.0.0.1:{p}/"), &format!("127.0.0.1:{pg_port}/"))
            });
            (k, v)
        })
        .collect()
}

#[test]
fn query_refuses_bad_arguments_like_patronictl() {
    let f = Fixture::start();
    let keys = batman_at(&f, f.dead_port);
    let sql_file = f.dir().join("q.sql");
    std::fs::write(&sql_file, "SELECT 1").unwrap();
    let sql_file = sql_file.to_str().unwrap();
    for (args, error) in [
        (
            &["query"][..],
            "Error: You need to specify either --command or --file",
        ),
        (
            &["query", "batman", "--file", sql_file, "-c", "SELECT 1"],
            "Error: --file and --command are mutually exclusive options",
        ),
        (
            &["query", "-c", "SELECT 1", "-r", "replica", "-m", "node1"],
            "Error: --role and --member are mutually exclusive options",
        ),
    ] {
        let o = compare(&f, &keys, args, "");
        assert_eq!(
            (o.code, o.error.as_deref()),
            (Some(1), Some(error)),
            "{args:?}"
        );
        assert_eq!(o.stdout, "", "{args:?}");
    }
    // click's File type refuses a missing file while parsing: a usage error (exit 2) whose
    // wording is click's, not compared.
    for bin in [
        pgkeel_testkit::patroni::patronictl_bin(),
        env!("CARGO_BIN_EXE_pgkeelctl").into(),
    ] {
        let o = f.run(
            &bin,
            &keys,
            (200, ""),
            &["query", "-f", "/nonexistent.sql"],
            "",
        );
        assert_eq!(o.code, Some(2), "{}: {o:?}", bin.display());
    }
}

#[test]
fn query_prints_a_row_when_no_member_fits() {
    let f = Fixture::start();
    let keys = batman_at(&f, f.dead_port);
    for (args, line) in [
        (
            &["query", "batman", "-c", "SELECT 1", "-m", "nobody"][..],
            "<TIME>\tNo connection to member nobody is available\n",
        ),
        (
            &["query", "-c", "SELECT 1", "--role", "standby-leader"],
            "<TIME>\tNo connection to role 'standby-leader' is available\n",
        ),
        (
            &["query", "-c", "SELECT 1", "--delimiter", ";", "-m", "x"],
            "<TIME>;No connection to member x is available\n",
        ),
    ] {
        let o = compare(&f, &keys, args, "");
        assert_eq!((o.code, o.stdout.as_str()), (Some(0), line), "{args:?}");
    }
    let leaderless: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "leader")
        .cloned()
        .collect();
    let o = compare(&f, &leaderless, &["query", "-c", "SELECT 1"], "");
    assert_eq!(o.stdout, "<TIME>\tNo connection is available\n");
}

#[test]
fn query_prints_libpq_message_when_postgres_does_not_answer() {
    let f = Fixture::start();
    let keys = batman_at(&f, f.dead_port);
    let refused = format!(
        "ERROR, SQLSTATE: connection to server at \"127.0.0.1\", port {} failed: Connection refused \tIs the server running on that host and accepting TCP/IP connections? ",
        f.dead_port
    );
    for (args, expected) in [
        (
            &["query", "-c", "SELECT 1"][..],
            format!("<TIME>\t{refused}\n"),
        ),
        (
            &[
                "query", "-c", "SELECT 1", "-r", "replica", "-U", "u", "-d", "db",
            ],
            format!("<TIME>\t{refused}\n"),
        ),
        (
            &["query", "-c", "SELECT 1", "--delimiter", "|"],
            format!("<TIME>|{refused}\n"),
        ),
        (
            &["query", "-c", "SELECT 1", "--format", "json"],
            "[{}]\n".to_string(),
        ),
        (
            &["query", "-c", "SELECT 1", "--format", "yaml"],
            "- {}\n\n".to_string(),
        ),
        (
            &["query", "-c", "SELECT 1", "--format", "nonsense"],
            String::new(),
        ),
    ] {
        let o = compare(&f, &keys, args, "");
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (Some(0), expected.as_str()),
            "{args:?}"
        );
    }
    // pretty: PrettyTable names the columns itself.
    let o = compare(
        &f,
        &keys,
        &["query", "-c", "SELECT 1", "--format", "pretty"],
        "",
    );
    assert!(o.stdout.contains("| Field 1 "), "{}", o.stdout);
}

#[test]
fn query_password_prompt_reads_stdin_and_never_prints_the_password() {
    let f = Fixture::start();
    let keys = batman_at(&f, f.dead_port);
    let secret = "s3cret-query-pw";
    let o = compare(
        &f,
        &keys,
        &["query", "-c", "SELECT 1", "-U", "u", "--password"],
        &format!("\n{secret}\n"),
    );
    assert_eq!(o.code, Some(0));
    assert!(o.stdout.contains("Connection refused"), "{}", o.stdout);
    let ours = f.run(
        Path::new(env!("CARGO_BIN_EXE_pgkeelctl")),
        &keys,
        (200, ""),
        &["query", "-c", "SELECT 1", "--password"],
        &format!("{secret}\n"),
    );
    assert!(
        !ours.stdout.contains(secret) && !ours.stderr.0.contains(secret),
        "{ours:?}"
    );
    // End of input at the prompt is click's Abort (on stderr after the prompt `Password: `).
    let o = compare(&f, &keys, &["query", "-c", "SELECT 1", "--password"], "");
    assert_eq!((o.code, o.stdout.as_str()), (Some(1), "\n"));
    assert!(o.stderr.0.contains("Password: Aborted!"), "{o:?}");
}
