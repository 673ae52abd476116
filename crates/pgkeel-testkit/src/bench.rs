//! Helpers shared by the benchmark binaries: which machine ran them, and summary statistics.

/// A file's content, or empty when it cannot be read (`/proc` files on another OS).
pub fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// CPU model, cores, memory and kernel, for the header every benchmark prints.
pub fn machine() -> String {
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease");
    format!("{cpu}, {cores} cores, {mem} RAM, Linux {}", kernel.trim())
}

/// The 1-minute load average, for the header and each round (other work on the machine skews
/// the figures).
pub fn load() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// A binary's exit: success, or the error with its causes on stderr after the program's name.
pub fn exit_code(program: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Min, median, max of a slice; `None` when empty.
pub fn stats(v: &[f64]) -> Option<(f64, f64, f64)> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    };
    Some((s[0], median, s[n - 1]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn stats_give_min_median_max() {
        assert_eq!(super::stats(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(super::stats(&[4.0, 1.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(super::stats(&[]), None);
    }
}
