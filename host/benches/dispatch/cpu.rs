//! CPU time (user + system) of processes, read from `/proc/<pid>/stat`.

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

/// The numeric fields of `/proc/<pid>/stat` after the command name (which
/// is in parentheses and may hold spaces), the line's 3rd field (the state,
/// a letter, read as 0) first.
fn stat(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

fn ticks(fields: &[u64], a: usize, b: usize) -> Option<Duration> {
    let t = fields.get(a)? + fields.get(b)?;
    Some(Duration::from_millis(t * 1000 / USER_HZ))
}

/// CPU time of process `pid` (a number or `self`) so far (utime + stime).
pub fn of(pid: &str) -> Option<Duration> {
    ticks(&stat(pid)?, 11, 12)
}

/// CPU time of process `root` and of all its children so far: its own, its
/// live children's, and that of the children it has reaped (its cutime +
/// cstime); a PostgreSQL cluster is its postmaster and the postmaster's children.
pub fn of_family(root: u32) -> Option<Duration> {
    let fields = stat(&root.to_string())?;
    let own = ticks(&fields, 11, 12)? + ticks(&fields, 13, 14)?;
    let children: Duration = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| stat(&pid))
        .filter(|f| f.get(1) == Some(&u64::from(root)))
        .filter_map(|f| ticks(&f, 11, 12))
        .sum();
    Some(own + children)
}
