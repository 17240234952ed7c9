//! No full ID number, mobile number or bank account in any log line or exported span, over a
//! whole scenario (experts appointed with all three, drawn, reporting, paid).
//!
//! Log lines go to the process's standard output, as in a cluster, so the check runs the
//! scenario in a child process (this test binary again, running only the ignored test
//! [`child_runs_the_scenario`] with JSON logs) and reads everything it wrote: its log lines,
//! and the spans its fake collector received, which it prints as JSON lines at the end.

use std::process::Command;

use testkit::{Backend, on_both_backends};

use crate::{harness, scenario};

/// Set for the child process, with the backend to run on.
const CHILD: &str = "SUPERVISION_OBSERVABILITY_CHILD";
/// The key of the JSON lines that carry the spans the child's collector received.
const SPAN_KEY: &str = "exported_span";

/// Whether this process is the child that runs the scenario.
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

on_both_backends!(no_log_line_or_span_carries_a_full_personal_number);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by no_log_line_or_span_carries_a_full_personal_number"]
async fn child_runs_the_scenario() {
    let backend = match std::env::var(CHILD).as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") => Backend::Sqlite,
        // Run directly (`--run-ignored all`): check as the parent does.
        Err(std::env::VarError::NotPresent) => {
            return no_log_line_or_span_carries_a_full_personal_number(Backend::Sqlite).await;
        }
        other => panic!("{CHILD} must be sqlite or postgres, not {other:?}"),
    };
    let harness = harness();
    // A planted line and span event quoting an ID number: the parent finds them masked, which
    // shows the capture holds what the services log and trace, after the masking.
    tracing::info_span!("planted").in_scope(|| {
        tracing::warn!(note = %format!("planted {}", scenario::person(1).id_number), "planted personal number");
    });
    let (deployment, outcome) = scenario::deployed(backend).await;
    let (draw, report) = (outcome.draw_trace.clone(), outcome.report_trace.clone());
    let spans = harness
        .spans_until(|spans| {
            let traced = |trace: &str, name: &str| spans.iter().any(|s| s.trace_id == trace && s.name.ends_with(name));
            traced(&draw, "/ExecuteDraw") && traced(&report, "FinanceService/RecordSessions")
        })
        .await;
    deployment.stop().await;
    // The spans ended by the shutdown too.
    let spans = harness.spans_until(|now| now.len() >= spans.len()).await;
    for span in &spans {
        println!("{}", serde_json::json!({ SPAN_KEY: span.to_json() }));
    }
}

/// Every full personal number of the scenario's experts found in `text`.
fn leaks(text: &str) -> Vec<String> {
    (1..=scenario::EXPERTS)
        .map(scenario::person)
        .flat_map(|p| [p.id_number, p.mobile, p.account])
        .filter(|number| text.contains(number.as_str()))
        .collect()
}

async fn no_log_line_or_span_carries_a_full_personal_number(backend: Backend) {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["personal_data::child_runs_the_scenario", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env("RUST_LOG", "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info")
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child failed:\n{stdout}\n{stderr}");

    let (mut logs, mut spans, mut json_lines) = (0, 0, 0);
    for line in stdout.lines().chain(stderr.lines()) {
        let leaked = leaks(line);
        assert!(leaked.is_empty(), "full personal numbers {leaked:?} in the child's output:\n{line}");
        let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        json_lines += 1;
        if let Some(span) = json.get(SPAN_KEY) {
            spans += 1;
            assert!(span["trace_id"].as_str().is_some_and(|t| t.len() == 32), "{span}");
        } else if json.get("level").is_some() && json.get("message").is_some() {
            logs += 1;
        }
    }
    // The capture is real: JSON log lines from the services (some in a request's trace) and the
    // spans of every step, with the traced operations among them.
    assert!(logs >= 20, "only {logs} JSON log lines in:\n{stdout}");
    assert!(spans >= 50, "only {spans} spans in:\n{stdout}");
    assert!(json_lines >= logs + spans);
    assert!(stdout.contains("\"trace_id\""), "log lines carry trace ids");
    for step in ["StreamDrawPool", "ExecuteDraw", "AppointExpert", "outbox.deliver", "RecordSessions", "lock.acquire"] {
        assert!(stdout.contains(step), "no {step} span or line in the capture");
    }
    // The planted number went through the guards: masked in its log line and its span event.
    let first = scenario::person(1);
    let masked = format!("planted {}***********{}", &first.id_number[..3], &first.id_number[14..]);
    let planted: Vec<&str> = stdout.lines().filter(|l| l.contains(&masked)).collect();
    assert!(planted.iter().any(|l| l.contains("\"level\":\"WARN\"")), "no masked log line in {planted:#?}");
    assert!(planted.iter().any(|l| l.contains(SPAN_KEY)), "no masked span event in {planted:#?}");
}
