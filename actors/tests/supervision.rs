//! A failure inside one call never touches another call or the process:
//! a CallActor that panics ends its own call as `failed` (persisted, BYE to
//! the SRC) while a concurrent call carries on and completes normally.

mod common;
use common::*;

#[test]
fn a_panicking_call_fails_alone() {
    let engine = Engine::start_with(EngineOpts {
        extra_args: vec!["--fault-injection".into()],
        ..Default::default()
    });
    let good = Sipp::start(&engine, "basic_call.xml", Transport::Udp);
    engine.wait_active(&good.call_id, "good call live", |_| true);
    let bad = Sipp::start(&engine, "fault_call.xml", Transport::Udp);
    let bad_id = bad.call_id.clone();
    // The faulty call ends as failed with the panic message, and the SRC
    // gets our BYE (the scenario waits for it).
    let rec = engine.wait_call(&bad_id, "faulty call failed", |c| c["status"] == "failed");
    let reason = rec["end_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("internal error") && reason.contains("injected fault"),
        "{reason}"
    );
    bad.expect_success(&engine);
    // The other call is untouched: still live, then completes normally.
    let live = engine
        .active_call(&good.call_id)
        .expect("good call still live");
    assert_eq!(live["status"], "active");
    let good_id = good.call_id.clone();
    good.expect_success(&engine);
    let done = engine.wait_call(&good_id, "good call completed", |c| {
        c["status"] == "completed"
    });
    assert_eq!(done["end_reason"], "bye");
    // And the process is healthy.
    assert_eq!(engine.get("/health/ready").status, 200);
}
