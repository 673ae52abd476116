//! Patroni's `tests/test_quorum.py`, case by case, with its harness: each expected sequence is
//! also replayed from every interrupted point, and (for growing clusters) every subset of the
//! standbys going away at every step with every confirmed count must resolve without error.

use super::*;

type Expected<'a> = &'a [(TransitionKind, &'a str, u64, &'a str)];
use TransitionKind::{Quorum as Q, Restart as R, Sync as S};

fn set(chars: &str) -> NameSet {
    NameSet::of(chars.chars().map(|c| c.to_string()))
}

#[derive(Clone)]
struct Args {
    leader: String,
    quorum: u64,
    voters: NameSet,
    numsync: u64,
    sync: NameSet,
    numsync_confirmed: u64,
    active: NameSet,
    sync_wanted: u64,
    leader_wanted: String,
}

impl Args {
    fn input(&self) -> QuorumInput {
        QuorumInput {
            leader: self.leader.clone(),
            quorum: self.quorum,
            voters: self.voters.clone(),
            numsync: self.numsync,
            sync: self.sync.clone(),
            numsync_confirmed: self.numsync_confirmed,
            active: self.active.clone(),
            sync_wanted: self.sync_wanted,
            leader_wanted: self.leader_wanted.clone(),
        }
    }

    fn apply(&mut self, kind: TransitionKind, num: u64, names: &NameSet) {
        if kind == S {
            self.numsync = num;
            self.sync = names.clone();
        } else {
            self.quorum = num;
            self.voters = names.clone();
        }
    }
}

fn same(got: &[Transition], expected: Expected<'_>) -> bool {
    got.len() == expected.len()
        && got.iter().zip(expected).all(|(g, e)| {
            g.kind == e.0 && g.leader == e.1 && g.num == e.2 && g.names.same(&set(e.3))
        })
}

fn subsets(of: &NameSet) -> Vec<NameSet> {
    let names = of.names();
    (0u32..(1 << names.len()))
        .map(|mask| {
            NameSet::of(
                names
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, n)| n.clone()),
            )
        })
        .collect()
}

struct Harness {
    nesting: u32,
    failures: Vec<String>,
}

impl Harness {
    fn check(&mut self, mut kwargs: Args, expected: Expected<'_>) {
        let (orig_active, orig_sync) = (kwargs.active.clone(), kwargs.sync.clone());
        self.nesting += 1;
        let state = kwargs.clone();
        let result = match resolve(kwargs.input()) {
            Ok(r) => r.transitions,
            Err(e) => panic!("resolve failed: {e}"),
        };
        assert!(
            same(&result, expected),
            "got {result:?}, expected {expected:?}"
        );
        if let Some(first) = result.first()
            && first.kind != R
            && kwargs.leader == first.leader
        {
            kwargs.apply(first.kind, first.num, &first.names);
            self.check(kwargs.clone(), &expected[1..]);
        }
        self.nesting -= 1;
        if self.nesting > 0 || !orig_sync.is_proper_subset(&orig_active) {
            return;
        }
        let mut end = state.clone();
        for e in expected {
            if e.0 == R || e.1 != state.leader {
                return;
            }
            end.apply(e.0, e.2, &set(e.3));
        }
        let margin =
            end.quorum as i64 + end.numsync as i64 - end.voters.union(&end.sync).len() as i64;
        if margin == 0 {
            return;
        }
        let mut state = kwargs.clone();
        for e in expected {
            state.apply(e.0, e.2, &set(e.3));
            for a in subsets(&orig_sync) {
                state.active = a.clone();
                for c in 0..=a.len() as u64 {
                    state.numsync_confirmed = c;
                    if let Err(err) = resolve(state.input()) {
                        self.failures.push(err.0);
                    }
                    if !state.voters.is_empty() {
                        let mut empty = state.clone();
                        empty.voters = NameSet::default();
                        empty.quorum = 0;
                        if let Err(err) = resolve(empty.input()) {
                            self.failures.push(err.0);
                        }
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check(
    leader: &str,
    quorum: u64,
    voters: &str,
    numsync: u64,
    sync: &str,
    numsync_confirmed: u64,
    active: &str,
    sync_wanted: u64,
    leader_wanted: &str,
    expected: Expected<'_>,
) {
    let mut h = Harness {
        nesting: 0,
        failures: vec![],
    };
    h.check(
        Args {
            leader: leader.into(),
            quorum,
            voters: set(voters),
            numsync,
            sync: set(sync),
            numsync_confirmed,
            active: set(active),
            sync_wanted,
            leader_wanted: leader_wanted.into(),
        },
        expected,
    );
    assert!(h.failures.is_empty(), "failures: {:?}", h.failures);
}

#[test]
fn test_1111() {
    let l = "a";
    check(
        l,
        0,
        "",
        0,
        "",
        0,
        "b",
        2,
        l,
        &[(S, l, 1, "b"), (R, l, 0, "")],
    );
    check(l, 0, "", 1, "b", 1, "b", 2, l, &[(Q, l, 0, "b")]);
    check(
        l,
        0,
        "",
        0,
        "",
        0,
        "bcde",
        2,
        l,
        &[(S, l, 2, "bcde"), (R, l, 0, "")],
    );
    check(l, 0, "", 2, "bcde", 1, "bcde", 2, l, &[(Q, l, 3, "bcde")]);
}

#[test]
fn test_1222() {
    let l = "a";
    check(l, 0, "b", 1, "b", 1, "b", 2, l, &[]);
    check(
        l,
        0,
        "b",
        1,
        "b",
        1,
        "BC",
        1,
        l,
        &[(Q, l, 1, "bC"), (S, l, 1, "bC")],
    );
    check(
        l,
        0,
        "b",
        1,
        "b",
        1,
        "bc",
        2,
        l,
        &[(S, l, 2, "bc"), (Q, l, 1, "bc")],
    );
    check(l, 1, "bc", 2, "bc", 2, "bc", 2, l, &[(Q, l, 0, "bc")]);
    check(
        l,
        0,
        "b",
        1,
        "b",
        1,
        "BCdE",
        2,
        l,
        &[(S, l, 2, "bC"), (Q, l, 3, "bCdE"), (S, l, 2, "bCdE")],
    );
    check(
        l,
        3,
        "bcde",
        2,
        "bcde",
        3,
        "bcde",
        2,
        l,
        &[(Q, l, 2, "bcde")],
    );
    check(
        l,
        0,
        "b",
        1,
        "b",
        0,
        "",
        1,
        l,
        &[(Q, l, 0, ""), (S, l, 0, "")],
    );
    check(
        l,
        0,
        "b",
        1,
        "b",
        0,
        "c",
        1,
        l,
        &[(Q, l, 0, ""), (S, l, 1, "c"), (R, l, 0, "")],
    );
    check(l, 0, "", 1, "c", 1, "c", 1, l, &[(Q, l, 0, "c")]);
}

#[test]
fn test_1233() {
    let l = "a";
    check(l, 0, "b", 2, "bc", 1, "b", 2, l, &[(S, l, 1, "b")]);
    check(l, 0, "b", 2, "bc", 1, "bc", 2, l, &[(Q, l, 1, "bc")]);
    check(
        l,
        0,
        "b",
        2,
        "bc",
        1,
        "bcd",
        2,
        l,
        &[(Q, l, 2, "bcd"), (S, l, 2, "bcd")],
    );
    check(l, 2, "bcd", 2, "bcd", 3, "bcd", 2, l, &[(Q, l, 1, "bcd")]);
    check(
        l,
        0,
        "b",
        2,
        "bc",
        1,
        "bc",
        1,
        l,
        &[(Q, l, 1, "bc"), (S, l, 1, "bc")],
    );
}

#[test]
fn test_2322() {
    let l = "a";
    check(l, 1, "bc", 1, "b", 1, "b", 1, l, &[(Q, l, 0, "b")]);
    check(l, 1, "bc", 1, "b", 1, "bc", 1, l, &[(S, l, 1, "bc")]);
    check(
        l,
        1,
        "bc",
        1,
        "b",
        1,
        "bcd",
        1,
        l,
        &[(S, l, 1, "bc"), (Q, l, 2, "bcd"), (S, l, 1, "bcd")],
    );
    check(l, 1, "bc", 1, "b", 1, "bc", 2, l, &[(S, l, 2, "bc")]);
    check(l, 1, "bc", 2, "bc", 2, "bc", 2, l, &[(Q, l, 0, "bc")]);
}

#[test]
fn test_3535() {
    let l = "a";
    check(
        l,
        2,
        "bcde",
        2,
        "bcde",
        2,
        "bc",
        2,
        l,
        &[(S, l, 2, "bc"), (Q, l, 0, "bc")],
    );
    check(
        l,
        2,
        "bcde",
        2,
        "bcde",
        3,
        "bcd",
        2,
        l,
        &[(S, l, 2, "bcd"), (Q, l, 1, "bcd")],
    );
    check(
        l,
        2,
        "bcde",
        2,
        "bcde",
        2,
        "bc",
        1,
        l,
        &[(S, l, 2, "bc"), (Q, l, 1, "bc"), (S, l, 1, "bc")],
    );
    check(
        l,
        1,
        "bcde",
        3,
        "bcde",
        2,
        "bc",
        1,
        l,
        &[(S, l, 3, "bcd"), (Q, l, 1, "bc"), (S, l, 1, "bc")],
    );
    check(
        l,
        2,
        "bcde",
        2,
        "bcde",
        2,
        "bcde",
        3,
        l,
        &[(S, l, 3, "bcde")],
    );
    check(
        l,
        2,
        "bcde",
        3,
        "bcde",
        3,
        "bcde",
        3,
        l,
        &[(Q, l, 1, "bcde")],
    );
    check(
        l,
        2,
        "bcde",
        2,
        "bcde",
        2,
        "bcdef",
        1,
        l,
        &[(Q, l, 4, "bcdef"), (S, l, 1, "bcdef")],
    );
    check(
        l,
        2,
        "bcde",
        2,
        "bcde",
        2,
        "bcd",
        3,
        l,
        &[(S, l, 3, "bcd"), (Q, l, 1, "bcd")],
    );
}

#[test]
fn test_remove_nosync_node() {
    let l = "a";
    check(
        l,
        0,
        "bc",
        2,
        "bc",
        1,
        "b",
        2,
        l,
        &[(Q, l, 0, "b"), (S, l, 1, "b")],
    );
}

#[test]
fn test_swap_sync_node() {
    let l = "a";
    check(
        l,
        0,
        "bc",
        2,
        "bc",
        1,
        "bd",
        2,
        l,
        &[(Q, l, 0, "b"), (S, l, 2, "bd"), (Q, l, 1, "bd")],
    );
}

#[test]
fn test_promotion() {
    check(
        "a",
        2,
        "bcd",
        0,
        "",
        0,
        "",
        1,
        "c",
        &[(S, "a", 1, "abd"), (Q, "c", 2, "abd")],
    );
    check(
        "c",
        2,
        "abd",
        1,
        "abd",
        0,
        "b",
        1,
        "c",
        &[(S, "c", 1, "b"), (Q, "c", 0, "b")],
    );
    check(
        "c",
        2,
        "abd",
        1,
        "abd",
        0,
        "",
        1,
        "c",
        &[(Q, "c", 0, ""), (S, "c", 0, "")],
    );
}

#[test]
fn test_nonsync_promotion() {
    let l = "d";
    check(
        "a",
        1,
        "bc",
        0,
        "",
        0,
        "",
        1,
        l,
        &[(S, "a", 2, "abc"), (Q, l, 1, "abc")],
    );
    check(
        l,
        1,
        "abc",
        2,
        "abc",
        0,
        "bc",
        1,
        l,
        &[(S, l, 2, "bc"), (Q, l, 1, "bc"), (S, l, 1, "bc")],
    );
    check(
        l,
        1,
        "abc",
        2,
        "abc",
        0,
        "",
        1,
        l,
        &[(Q, l, 0, ""), (S, l, 0, "")],
    );
}

#[test]
fn test_invalid_states() {
    let input = |quorum, voters, numsync, sync, active| QuorumInput {
        leader: "a".into(),
        quorum,
        voters: set(voters),
        numsync,
        sync: set(sync),
        numsync_confirmed: 1,
        active: set(active),
        sync_wanted: 1,
        leader_wanted: "a".into(),
    };
    // The main invariant does not hold: unsafe; the quorum is raised first.
    let r = resolve(input(0, "bc", 1, "bc", "bc")).unwrap();
    assert!(same(&r.transitions, &[(Q, "a", 1, "bc")]));
    assert!(r.warnings[0].starts_with("Quorum and sync not guaranteed to overlap"));
    // The sets do not match: somebody else changed them.
    let r = resolve(input(1, "bc", 2, "bd", "bd")).unwrap();
    assert!(same(
        &r.transitions,
        &[(Q, "a", 1, "bd"), (S, "a", 1, "bd")]
    ));
    assert!(r.warnings[0].starts_with("Mismatched sets"));
}

#[test]
fn test_sync_high_quorum_low_safety_margin_high() {
    let l = "a";
    check(
        l,
        2,
        "bcdef",
        4,
        "bcdef",
        3,
        "bcdef",
        2,
        l,
        &[(Q, l, 3, "bcdef"), (S, l, 2, "bcdef")],
    );
}

#[test]
fn test_quorum_and_sync_update_refuse_impossible_values() {
    let mut r = Resolver {
        leader: "a".into(),
        quorum: 1,
        voters: set("bc"),
        numsync: 1,
        sync: set("bc"),
        numsync_confirmed: 1,
        active: set("bc"),
        sync_wanted: 1,
        leader_wanted: "a".into(),
        out: vec![],
        warnings: vec![],
    };
    assert!(r.quorum_update(-1, set(""), None, true).is_err());
    assert!(r.quorum_update(1, set(""), None, true).is_err());
    assert!(r.sync_update(-1, set("")).is_err());
    assert!(r.sync_update(1, set("")).is_err());
}

#[test]
fn test_remove_nodes_with_decreasing_sync() {
    let l = "a";
    check(
        l,
        1,
        "bcdef",
        4,
        "bcdef",
        2,
        "bcd",
        2,
        l,
        &[(S, l, 4, "bcde"), (Q, l, 1, "bcd"), (S, l, 2, "bcd")],
    );
    check(
        l,
        1,
        "bcdef",
        4,
        "bcde",
        2,
        "bcdg",
        2,
        l,
        &[
            (Q, l, 1, "bcd"),
            (S, l, 3, "bcd"),
            (Q, l, 2, "bcdg"),
            (S, l, 2, "bcdg"),
        ],
    );
    check(
        l,
        1,
        "bcdef",
        4,
        "bcde",
        2,
        "bcdf",
        2,
        l,
        &[(S, l, 4, "bcdf"), (Q, l, 2, "bcdf"), (S, l, 2, "bcdf")],
    );
    check(
        l,
        1,
        "bcdef",
        4,
        "bcde",
        2,
        "bcde",
        2,
        l,
        &[(Q, l, 2, "bcde"), (S, l, 2, "bcde")],
    );
    check(
        l,
        1,
        "bcdef",
        4,
        "bcde",
        2,
        "cd",
        1,
        l,
        &[(Q, l, 1, "cd"), (S, l, 1, "cd")],
    );
}

#[test]
fn test_empty_ssn() {
    check(
        "a",
        1,
        "bc",
        1,
        "",
        0,
        "",
        1,
        "c",
        &[(S, "a", 1, "ab"), (Q, "c", 1, "ab")],
    );
    check(
        "c",
        1,
        "ab",
        1,
        "ab",
        0,
        "b",
        1,
        "c",
        &[(S, "c", 1, "b"), (Q, "c", 0, "b")],
    );
}
