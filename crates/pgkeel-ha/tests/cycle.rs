//! The cycle driver (`pgkeel_ha::ha::Cycle`): the agent contract the agent and the simulator
//! both run (issue 7 point 5), checked on its own with hand-made decisions.
mod support;

use pgkeel_ha::Decision;
use pgkeel_ha::ha::{
    Action, Cycle, MemberUpdate, Next, NodeState, Outcome, PgState, Ran, Role, StatusLevel,
    StopMode,
};
use pgkeel_ha::keys::codec::MemberData;
use pgkeel_ha::time::MonoTime;

fn decision(actions: Vec<Action>, restep: bool) -> Decision {
    Decision {
        actions,
        status: "s".into(),
        restep,
        node: NodeState {
            state: PgState::Running,
            role: Role::Replica,
        },
        answers: vec![],
        member: None,
        level: StatusLevel::Info,
        wake_at: None,
        notes: vec![],
    }
}

fn run(c: &mut Cycle) -> Action {
    match c.next_move() {
        Next::Run(a) => a,
        other => panic!("expected an action, got {other:?}"),
    }
}

fn member_update() -> Box<MemberUpdate> {
    Box::new(MemberUpdate {
        member: MemberData {
            conn_url: "postgres://10.0.0.1:5432/postgres".into(),
            api_url: "http://10.0.0.1:8008/patroni".into(),
            state: "running".into(),
            role: "replica".into(),
            version: "4.1.4".into(),
            tags: Default::default(),
            pending_restart: None,
            pending_restart_reason: Default::default(),
            xlog_location: Some(100),
            replay_lsn: None,
            receive_lsn: None,
            replication_state: None,
            timeline: Some(1),
            scheduled_restart: None,
            pause: None,
        },
        lease: 101,
        decided_at: MonoTime(5),
    })
}

#[test]
fn actions_run_in_order_and_a_decision_without_restep_ends_the_cycle() {
    let mut c = Cycle::new(vec![]);
    assert_eq!(c.next_move(), Next::Step);
    assert_eq!(c.take_inputs(), (vec![], None));
    c.decided(decision(
        vec![Action::WriteStatus, Action::UpdateHistory],
        false,
    ));
    assert_eq!(run(&mut c), Action::WriteStatus);
    c.report(Ran::Done);
    assert_eq!(run(&mut c), Action::UpdateHistory);
    c.report(Ran::Done);
    assert_eq!(c.next_move(), Next::Finished);
    assert!(c.carry().is_empty());
}

#[test]
fn the_first_failure_skips_the_rest_and_the_next_step_hears_of_it() {
    let mut c = Cycle::new(vec![]);
    c.next_move();
    c.decided(decision(
        vec![Action::WriteStatus, Action::UpdateHistory],
        false,
    ));
    assert_eq!(run(&mut c), Action::WriteStatus);
    c.report(Ran::Failed("etcd: connection refused".into()));
    // A failure is an outcome: the core steps again although it did not ask to.
    assert_eq!(c.next_move(), Next::Step);
    let (outcomes, peers) = c.take_inputs();
    assert_eq!(
        outcomes,
        [Outcome::ActionFailed {
            action: Box::new(Action::WriteStatus),
            error: "etcd: connection refused".into(),
        }]
    );
    assert_eq!(peers, None);
}

#[test]
fn a_lost_race_ends_the_decision_and_its_outcome_goes_to_the_next_step() {
    let mut c = Cycle::new(vec![]);
    c.next_move();
    c.decided(decision(vec![Action::AcquireLeader, Action::Promote], true));
    assert_eq!(run(&mut c), Action::AcquireLeader);
    c.report(Ran::Outcome(Outcome::LeaderAcquired { won: false }));
    assert_eq!(
        c.next_move(),
        Next::Step,
        "Promote never runs after a lost race"
    );
    assert_eq!(c.take_inputs().0, [Outcome::LeaderAcquired { won: false }]);
}

#[test]
fn peer_answers_go_to_the_next_step_once() {
    let mut c = Cycle::new(vec![]);
    c.next_move();
    c.decided(decision(vec![Action::ProbePeers], false));
    run(&mut c);
    let peers = vec![support::peer("n2", 100)];
    c.report(Ran::Peers(peers.clone()));
    assert_eq!(c.next_move(), Next::Step);
    assert_eq!(c.take_inputs(), (vec![], Some(peers)));
    c.decided(decision(vec![], false));
    assert_eq!(c.next_move(), Next::Finished);
}

#[test]
fn a_cycle_steps_at_most_max_steps_times() {
    let mut c = Cycle::new(vec![]);
    let mut steps = 0;
    loop {
        match c.next_move() {
            Next::Step => {
                steps += 1;
                c.take_inputs();
                c.decided(decision(vec![Action::Stop(StopMode::Fast)], true));
            }
            Next::Run(_) => c.report(Ran::Done),
            Next::Finished => break,
            Next::Exit => panic!("no exit here"),
        }
        assert!(steps <= Cycle::MAX_STEPS, "stepped {steps} times");
    }
    assert_eq!(steps, Cycle::MAX_STEPS);
}

#[test]
fn exit_ends_the_cycle_without_the_member_write() {
    let mut c = Cycle::new(vec![]);
    c.next_move();
    let mut d = decision(vec![Action::RevokeLease, Action::Exit], true);
    d.member = Some(member_update());
    c.decided(d);
    run(&mut c);
    c.report(Ran::Done);
    assert_eq!(run(&mut c), Action::Exit);
    c.report(Ran::Done);
    assert_eq!(c.next_move(), Next::Exit);
}

#[test]
fn the_last_decisions_member_write_runs_last_and_is_carried_to_the_next_cycle() {
    let mut c = Cycle::new(vec![]);
    c.next_move();
    let mut d = decision(vec![Action::WriteStatus], false);
    d.member = Some(member_update());
    c.decided(d);
    assert_eq!(run(&mut c), Action::WriteStatus);
    c.report(Ran::Done);
    assert_eq!(run(&mut c), Action::WriteMember(member_update()));
    c.report(Ran::Done);
    assert_eq!(c.next_move(), Next::Finished);
    assert_eq!(c.carry(), [Outcome::MemberWritten(member_update())]);
}

#[test]
fn an_intermediate_decisions_member_write_is_not_run_and_a_failed_write_is_not_carried() {
    let mut c = Cycle::new(vec![Outcome::LeaderRefreshed { ok: true }]);
    c.next_move();
    assert_eq!(c.take_inputs().0, [Outcome::LeaderRefreshed { ok: true }]);
    let mut d = decision(vec![Action::Stop(StopMode::Immediate)], true);
    d.member = Some(member_update());
    c.decided(d);
    run(&mut c);
    c.report(Ran::Done);
    // Restep: the intermediate decision's member value is never written.
    assert_eq!(c.next_move(), Next::Step);
    let mut d = decision(vec![], false);
    d.member = Some(member_update());
    c.decided(d);
    assert_eq!(run(&mut c), Action::WriteMember(member_update()));
    c.report(Ran::Failed("etcd: connection refused".into()));
    assert_eq!(c.next_move(), Next::Finished);
    assert!(
        c.carry().is_empty(),
        "the core keeps what it knew was written"
    );
}
