//! `pgkeelctl query [CLUSTER] [-r ROLE | -m MEMBER] (-c SQL | -f FILE) [-U USER] [--password]
//! [-d DBNAME] [--format FMT] [--delimiter D] [-W | -w SECS]`: runs SQL on a member's
//! PostgreSQL and prints the rows as patronictl 4.1's `query` does.
//!
//! As patronictl (psycopg2 on libpq): the member is the leader by default (else the first one
//! with `--role`, or the named one); the address is the host and port of its `conn_url`; the
//! user, password and database come from `-U`, the `--password` prompt and `-d`, else from
//! libpq's `PGUSER`, `PGPASSWORD` (then the password file, `PGPASSFILE` or `~/.pgpass`) and
//! `PGDATABASE`, else the OS user; `application_name` is `Patroni ctl` unless `PGAPPNAME` is
//! set; connecting gives up after 5 s. For `--role replica|standby|standby-leader|primary` the
//! member's `pg_is_in_recovery()` must agree. The SQL runs in autocommit mode (Patroni's
//! `psycopg.connect` sets it) and only the last statement's rows are printed. A
//! failure is a row `<time> ERROR, SQLSTATE: <code>` (or libpq's message when there is no
//! code) and the command still exits 0; only bad arguments exit 1. Values print as Python's
//! `str()` prints psycopg2's: `True`/`False`, `None` for NULL, floats as Python's `repr`,
//! timestamps as `datetime`; other types in PostgreSQL's text form.
//!
//! The password is never on a command line, in the output or in an error.

use super::super::prompt::read_line_or_abort;
use super::super::{Connect, Context, CtlError, QueryArgs, Role};
use super::members::{all_members, read_group_cluster};
use super::switchover::cluster_name;
use super::timestamp;
use crate::ctl::output::{self, OutputFormat, table};
use pgkeel_ha::cluster::Cluster;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::time::Duration;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

/// libpq's `connect_timeout` as patronictl sets it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `query`.
pub async fn run(
    ctx: &Context,
    args: &QueryArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let sql = match (&args.file, &args.command) {
        (Some(_), Some(_)) => {
            return Err(CtlError::Failed(
                "--file and --command are mutually exclusive options".into(),
            ));
        }
        (Some(path), None) => {
            let bytes = std::fs::read(path)
                .map_err(|e| CtlError::Failed(format!("cannot read {}: {e}", path.display())))?;
            String::from_utf8(bytes)
                .map_err(|_| CtlError::Failed(format!("{} is not valid UTF-8", path.display())))?
        }
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(CtlError::Failed(
                "You need to specify either --command or --file".into(),
            ));
        }
    };
    let password = if args.password {
        Some(prompt_password(input, out)?)
    } else {
        None
    };
    let params = ConnectParams {
        user: args.username.clone().filter(|u| !u.is_empty()),
        password,
        dbname: args.dbname.clone().filter(|d| !d.is_empty()),
    };
    let name = cluster_name(ctx, args.cluster.as_deref())?;
    // patronictl reads the cluster once, then (re)connects for every round.
    let (_, cluster) = read_group_cluster(ctx, &name, args.group, connect).await?;
    let interval = args.watch.interval();
    loop {
        let started = tokio::time::Instant::now();
        let (rows, header) = query_member(&cluster, args, &sql, &params).await?;
        write!(out, "{}", render(header.as_deref(), &rows, args))?;
        out.flush()?;
        match interval {
            Some(i) => tokio::time::sleep_until(started + i).await,
            None => return Ok(()),
        }
    }
}

/// `-U`, `--password` and `-d`, what patronictl passes as `connect_parameters`.
struct ConnectParams {
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
}

/// One value of a result row, as psycopg2 turns it into a Python object.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    /// SQL NULL (`None`).
    Null,
    /// `bool`.
    Bool(bool),
    /// An integer (`int`), in PostgreSQL's text form.
    Int(String),
    /// `float4`/`float8` (a Python `float`).
    Float(f64),
    /// Anything else: text as Python's `str()` of the value prints it.
    Text(String),
}

impl Cell {
    /// The cell from PostgreSQL's text form and, when known, the column's type.
    fn from_text(text: Option<&str>, ty: Option<&Type>) -> Cell {
        let Some(t) = text else {
            return Cell::Null;
        };
        let Some(ty) = ty else {
            return Cell::Text(t.to_string());
        };
        if *ty == Type::BOOL {
            Cell::Bool(t == "t")
        } else if [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(ty) {
            Cell::Int(t.to_string())
        } else if [Type::FLOAT4, Type::FLOAT8].contains(ty) {
            t.parse::<f64>()
                .map(Cell::Float)
                .unwrap_or_else(|_| Cell::Text(t.to_string()))
        } else if *ty == Type::TIMESTAMP {
            Cell::Text(py_datetime(t, false))
        } else if *ty == Type::TIMESTAMPTZ {
            Cell::Text(py_datetime(t, true))
        } else {
            Cell::Text(t.to_string())
        }
    }

    /// Python's `str()` of the value.
    fn py_str(&self) -> String {
        match self {
            Cell::Null => "None".into(),
            Cell::Bool(true) => "True".into(),
            Cell::Bool(false) => "False".into(),
            Cell::Int(s) | Cell::Text(s) => s.clone(),
            Cell::Float(f) => py_float(*f),
        }
    }

    /// The value in JSON or YAML output.
    fn json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Int(s) => serde_json::from_str::<serde_json::Number>(s)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(s.clone())),
            Cell::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(py_float(*f))),
            Cell::Text(s) => Value::String(s.clone()),
        }
    }
}

/// Python's `repr(float)`: the shortest digits that read back, fixed notation for exponents
/// from -4 to 15 (`100000.0`, `0.0001`), else `1e+16`, `1e-05`; `inf`, `-inf`, `nan`.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else if n <= exp + 1 {
            format!("{digits}{}.0", "0".repeat((exp + 1 - n) as usize))
        } else {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

/// Python's `str(datetime)` of a `timestamp[tz]` in PostgreSQL's ISO text form: microseconds
/// six digits when present, the offset `+HH:MM`. Other forms (BC, infinity) stay as they are.
fn py_datetime(t: &str, tz: bool) -> String {
    if t.len() < 19 || !t.as_bytes()[..4].iter().all(u8::is_ascii_digit) || t.ends_with(" BC") {
        return t.to_string();
    }
    let (datetime, offset) = if tz {
        match t[19..].find(['+', '-']) {
            Some(i) => t.split_at(19 + i),
            None => return t.to_string(),
        }
    } else {
        (t, "")
    };
    let datetime = match datetime.split_once('.') {
        Some((s, frac)) => format!("{s}.{frac:0<6}"),
        None => datetime.to_string(),
    };
    let offset = match offset.len() {
        3 => format!("{offset}:00"),
        _ => offset.to_string(),
    };
    format!("{datetime}{offset}")
}

/// patronictl's `query_member`: the rows and column names, or one row `[time, message]` and no
/// names when there is no connection or the SQL fails. Only `--role` with `--member` is an
/// error.
async fn query_member(
    cluster: &Cluster,
    args: &QueryArgs,
    sql: &str,
    params: &ConnectParams,
) -> Result<(Vec<Vec<Cell>>, Option<Vec<String>>), CtlError> {
    // patronictl's `get_any_member`.
    let wanted = match (&args.member, args.role) {
        (Some(_), Some(_)) => {
            return Err(CtlError::Failed(
                "--role and --member are mutually exclusive options".into(),
            ));
        }
        (Some(_), None) => Role::Any,
        (None, role) => role.unwrap_or(Role::Leader),
    };
    let member = all_members(cluster, wanted)
        .into_iter()
        .find(|m| args.member.as_ref().is_none_or(|w| *w == m.name));
    type Answer = Result<(Vec<Vec<Cell>>, Option<Vec<String>>), CtlError>;
    let no_connection = || -> Answer {
        let message = match (&args.member, args.role) {
            (Some(m), _) => format!("No connection to member {m} is available"),
            (None, Some(r)) => format!("No connection to role '{}' is available", r.as_str()),
            (None, None) => "No connection is available".to_string(),
        };
        Ok((
            vec![vec![Cell::Text(timestamp()), Cell::Text(message)]],
            None,
        ))
    };
    let Some(member) = member else {
        return no_connection();
    };
    let error_row = |message: String| -> Answer {
        let message = format!("ERROR, SQLSTATE: {}", message.replace('\n', " "));
        Ok((
            vec![vec![Cell::Text(timestamp()), Cell::Text(message)]],
            None,
        ))
    };
    let Some((host, port)) = member.host_port() else {
        return no_connection();
    };
    let host = host.to_lowercase();
    let (client, connection) = match connect_member(&host, port, params).await {
        Ok(c) => c,
        Err(message) => return error_row(message),
    };
    let result = run_sql(&client, args.role, sql).await;
    drop(client);
    connection.abort();
    match result {
        Ok(Some(rows)) => Ok((rows.1, Some(rows.0))),
        Ok(None) => no_connection(),
        Err(e) => error_row(e),
    }
}

/// Connects as psycopg2 would with the member's `conn_kwargs`; the error is libpq's message.
async fn connect_member(
    host: &str,
    port: u16,
    params: &ConnectParams,
) -> Result<(Client, tokio::task::JoinHandle<()>), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let user = params
        .user
        .clone()
        .or_else(|| env("PGUSER"))
        .or_else(os_user)
        .unwrap_or_else(|| "postgres".to_string());
    let dbname = params
        .dbname
        .clone()
        .or_else(|| env("PGDATABASE"))
        .unwrap_or_else(|| user.clone());
    let password = params
        .password
        .clone()
        .or_else(|| env("PGPASSWORD"))
        .or_else(|| pgpass_password(host, port, &dbname, &user));
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(&user)
        .dbname(&dbname)
        .application_name(env("PGAPPNAME").as_deref().unwrap_or("Patroni ctl"))
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(p) = &password {
        config.password(p);
    }
    let at = format!("connection to server at \"{host}\", port {port} failed: ");
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| format!("{at}timeout expired\n"))?;
    match connected {
        Ok((client, connection)) => {
            let handle = tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok((client, handle))
        }
        Err(e) => Err(format!("{at}{}", libpq_message(&e))),
    }
}

/// libpq's wording of a failed connection (after `connection to server at ... failed: `).
fn libpq_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}:  {}\n", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n".into();
            }
            return format!("{io}\n");
        }
        text = format!("{text}: {s}");
        source = s.source();
    }
    if text.contains("password missing") {
        "fe_sendauth: no password supplied\n".into()
    } else if text.contains("timeout") {
        "timeout expired\n".into()
    } else {
        format!("{text}\n")
    }
}

/// The rows of the SQL's last statement (column names, rows), run the way patronictl's
/// autocommit psycopg2 connection runs it. `None` when the
/// member's `pg_is_in_recovery()` does not fit `role`. The error is the SQLSTATE, else the
/// message.
async fn run_sql(
    client: &Client,
    role: Option<Role>,
    sql: &str,
) -> Result<Option<(Vec<String>, Vec<Vec<Cell>>)>, String> {
    let db_error = |e: tokio_postgres::Error| match e.as_db_error() {
        Some(db) => db.code().code().to_string(),
        None => e.to_string(),
    };
    // The column types, when the SQL is one statement (a prepared statement cannot hold more;
    // then every value is text). Only parsed: a failure here changes nothing.
    let types: Option<Vec<Type>> = client
        .prepare(sql)
        .await
        .ok()
        .map(|s| s.columns().iter().map(|c| c.type_().clone()).collect());
    if matches!(
        role,
        Some(Role::Replica | Role::Standby | Role::StandbyLeader | Role::Primary)
    ) {
        let rows = client
            .simple_query("SELECT pg_catalog.pg_is_in_recovery()")
            .await
            .map_err(db_error)?;
        let in_recovery = rows
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r.get(0) != Some("f")),
                _ => None,
            })
            .unwrap_or(true);
        if in_recovery == (role == Some(Role::Primary)) {
            return Ok(None);
        }
    }
    let messages = client.simple_query(sql).await.map_err(db_error)?;
    // Only the last statement's result, as libpq's PQexec returns it.
    let mut columns: Option<Vec<String>> = None;
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut statements = 0usize;
    let mut completed = true;
    for m in messages {
        if completed {
            columns = None;
            rows.clear();
            completed = false;
        }
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                columns = Some(cols.iter().map(|c| c.name().to_string()).collect());
            }
            SimpleQueryMessage::Row(r) => {
                let types = types.as_ref().filter(|t| t.len() == r.len());
                rows.push(
                    (0..r.len())
                        .map(|i| Cell::from_text(r.get(i), types.and_then(|t| t.get(i))))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(_) => {
                statements += 1;
                completed = true;
            }
            _ => {}
        }
    }
    if statements == 0 {
        return Err("can't execute an empty query".into());
    }
    match columns {
        Some(c) => Ok(Some((c, rows))),
        // psycopg2 iterating a cursor whose last statement returned no rows.
        None => Err("no results to fetch".into()),
    }
}

/// patronictl's `print_output(columns, rows, fmt=..., delimiter=...)` for query results.
fn render(columns: Option<&[String]>, rows: &[Vec<Cell>], args: &QueryArgs) -> String {
    match args.format.as_str() {
        fmt @ ("json" | "yaml" | "yml") => {
            let format = if fmt == "json" {
                OutputFormat::Json
            } else {
                OutputFormat::Yaml
            };
            let values = rows
                .iter()
                .map(|r| r.iter().map(Cell::json).collect())
                .collect();
            output::records(columns.unwrap_or(&[]), values, format, |_| false)
        }
        "tsv" => {
            let mut text = String::new();
            for line in columns.map(<[String]>::to_vec).into_iter().chain(
                rows.iter()
                    .map(|r| r.iter().map(Cell::py_str).collect::<Vec<_>>()),
            ) {
                text.push_str(&line.join(&args.delimiter));
                text.push('\n');
            }
            text
        }
        "pretty" | "topology" => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().map(|c| expand_tabs(&c.py_str())).collect())
                .collect();
            // PrettyTable names the columns `Field 1`, `Field 2`... when it is given none.
            let headers: Vec<String> = match columns {
                Some(c) => c.to_vec(),
                None => (1..=cells.first().map_or(0, Vec::len))
                    .map(|i| format!("Field {i}"))
                    .collect(),
            };
            format!("{}\n", table::render(None, &headers, &[], &cells))
        }
        _ => String::new(),
    }
}

/// Python's `str.expandtabs()` (tab stops every 8 columns, counted from each line's start),
/// which PrettyTable applies to every cell.
fn expand_tabs(s: &str) -> String {
    let mut out = String::new();
    let mut column = 0usize;
    for c in s.chars() {
        match c {
            '\t' => {
                let n = 8 - column % 8;
                out.push_str(&" ".repeat(n));
                column += n;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            c => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

/// click's `prompt('Password', hide_input=True)` (through Python's `getpass`): on the terminal
/// without echo, else (no terminal) from stdin after a warning, both on stderr; an empty
/// answer asks again, end of input is `Aborted!` (after the newline click then prints).
fn prompt_password(
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<String, CtlError> {
    let answer = read_password(input);
    if matches!(answer, Err(CtlError::Aborted)) {
        writeln!(out)?;
    }
    answer
}

/// [`prompt_password`] without the newline at end of input.
fn read_password(input: &mut (dyn BufRead + Send)) -> Result<String, CtlError> {
    loop {
        let answer = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
        {
            Ok(tty) => read_hidden(tty)?,
            Err(_) => {
                eprint!("Warning: Password input may be echoed.\nPassword: ");
                read_line_or_abort(input)?
            }
        };
        if !answer.is_empty() {
            return Ok(answer);
        }
    }
}

/// Reads one line from the terminal with echo off (restored afterwards).
fn read_hidden(tty: std::fs::File) -> Result<String, CtlError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let mut writer = &tty;
    write!(writer, "Password: ")?;
    writer.flush()?;
    let saved = tcgetattr(&tty).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).map_err(std::io::Error::from)?;
    let mut reader = std::io::BufReader::new(&tty);
    let answer = read_line_or_abort(&mut reader);
    let restored = tcsetattr(&tty, SetArg::TCSAFLUSH, &saved).map_err(std::io::Error::from);
    writeln!(writer)?;
    let answer = answer?;
    restored?;
    Ok(answer)
}

/// The name of the effective OS user, libpq's default user name.
fn os_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// libpq's password file lookup: `PGPASSFILE`, else `~/.pgpass`; lines
/// `host:port:database:user:password` (`*` matches anything, `\` escapes), the first match
/// wins; a file that group or others can read is ignored, as libpq ignores it.
fn pgpass_password(host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = match std::env::var_os("PGPASSFILE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
    };
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| pgpass_match(line, [host, &port, dbname, user]))
}

/// The password of one `.pgpass` line when its four fields match `wanted`.
fn pgpass_match(line: &str, wanted: [&str; 4]) -> Option<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    if fields.len() < 4 {
        return None;
    }
    fields
        .iter()
        .zip(wanted)
        .all(|(f, w)| f == "*" || f == w)
        .then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        for (f, s) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.5, "1.5"),
            (100000.0, "100000.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.25e-5, "1.25e-05"),
            (0.0001, "0.0001"),
            (0.1, "0.1"),
            (-123.456, "-123.456"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(py_float(f), s, "{f}");
        }
    }

    #[test]
    fn timestamps_print_as_python_datetime() {
        assert_eq!(
            py_datetime("2024-01-02 03:04:05.12+00", true),
            "2024-01-02 03:04:05.120000+00:00"
        );
        assert_eq!(
            py_datetime("2024-01-02 03:04:05+05:30", true),
            "2024-01-02 03:04:05+05:30"
        );
        assert_eq!(
            py_datetime("2024-01-02 03:04:05.5", false),
            "2024-01-02 03:04:05.500000"
        );
        assert_eq!(py_datetime("infinity", true), "infinity");
    }

    #[test]
    fn cells_print_as_python_str() {
        assert_eq!(Cell::from_text(None, Some(&Type::TEXT)).py_str(), "None");
        assert_eq!(
            Cell::from_text(Some("t"), Some(&Type::BOOL)).py_str(),
            "True"
        );
        assert_eq!(Cell::from_text(Some("t"), Some(&Type::TEXT)).py_str(), "t");
        assert_eq!(
            Cell::from_text(Some("1e+20"), Some(&Type::FLOAT8)).py_str(),
            "1e+20"
        );
        assert_eq!(
            Cell::from_text(Some("2.50"), Some(&Type::NUMERIC)).py_str(),
            "2.50"
        );
    }

    #[test]
    fn tabs_expand_as_python_expandtabs() {
        assert_eq!(expand_tabs("ab\tc\n\tx"), "ab      c\n        x");
        assert_eq!(expand_tabs("12345678\t"), "12345678        ");
    }

    #[test]
    fn pgpass_lines_match_like_libpq() {
        let wanted = ["127.0.0.1", "5432", "postgres", "postgres"];
        assert_eq!(
            pgpass_match("127.0.0.1:5432:*:postgres:se\\:cret", wanted),
            Some("se:cret".into())
        );
        assert_eq!(pgpass_match("*:*:*:*:a:b", wanted), Some("a:b".into()));
        assert_eq!(pgpass_match("*:5433:*:*:x", wanted), None);
        assert_eq!(pgpass_match("broken", wanted), None);
    }
}
