//! D18: exported draws, replacements included, re-run by PyPI consistent-sampler 1.0.10 itself.
//! The Python side (`reference/rerun_exports.py`) recomputes the order and every full ticket from
//! the exported record and frozen list, and checks that every assignment row (the primaries,
//! backups, promoted backups and top-ups) names the expert the package ranks at its position.
//!
//! The interpreter is `$SUPERVISION_PYTHON`, else `python3`; without the package the test fails
//! and says how to install it (`.ci/run` does: `pip install consistent-sampler==1.0.10`).

use std::process::Command;

use supervision_proto::{
    common::{HalfDay, RelationType},
    dispatch::{
        Decline, DeclineReason, ExportDrawRequest, Recuse, RespondToAssignmentRequest,
        respond_to_assignment_request::Answer,
    },
};
use testkit::{Backend, on_both_backends};

use crate::{
    draws::{create_task, execute, prepare, user, witness},
    responses::{drawn, expert, roster},
};

on_both_backends!(the_pypi_package_reproduces_exported_draws_with_their_replacements);

fn answer(request_id: &str, assignment_id: &str, answer: Answer) -> RespondToAssignmentRequest {
    RespondToAssignmentRequest {
        request_id: request_id.into(),
        assignment_id: assignment_id.into(),
        answer: Some(answer),
        on_behalf: None,
    }
}

async fn the_pypi_package_reproduces_exported_draws_with_their_replacements(backend: Backend) {
    let d = drawn(backend).await;
    // Two vacancies on the first draw: a decline and a recusal, each promoting a backup and
    // topping the backups up from the continued walk.
    let (p0, p1) = (&d.primaries[0], &d.primaries[1]);
    let declined = Answer::Decline(Decline { reason: DeclineReason::WorkConflict as i32, detail: "出差".into() });
    expert(&d.dispatch, &p0.expert_id).respond_to_assignment(answer("dec-0", &p0.id, declined)).await.unwrap();
    let recused = Answer::Recuse(Recuse { relation: RelationType::CurrentEmployment as i32, detail: "兼职".into() });
    expert(&d.dispatch, &p1.expert_id).respond_to_assignment(answer("rec-1", &p1.id, recused)).await.unwrap();
    // A second draw, with the witness's dice digits in the seed.
    let mut operator = user(&d.dispatch, "operator-a");
    let mut colleague = user(&d.dispatch, "operator-b");
    let school = d_school(&d).await;
    let second_task = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    let prepared = prepare(&mut operator, "prep-2", &second_task).await;
    witness(&mut colleague, "wit-2", &prepared.id, "31415926535897932384").await;
    execute(&mut operator, "exec-2", &prepared.id).await;

    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut replaced = 0;
    for (task_id, draw_id) in [(d.task_id.clone(), d.draw_id.clone()), (second_task, prepared.id.clone())] {
        let export = operator.export_draw(ExportDrawRequest { draw_id: draw_id.clone() }).await.unwrap().into_inner();
        let record = dir.path().join(format!("{draw_id}.json"));
        let list = dir.path().join(format!("{draw_id}.txt"));
        std::fs::write(&record, export.record.unwrap().content).unwrap();
        std::fs::write(&list, export.candidate_list.unwrap().content).unwrap();
        let rows = roster(&d.dispatch, &task_id).await;
        replaced += rows.iter().filter(|a| !a.replaces_assignment_id.is_empty()).count();
        let assignments: Vec<serde_json::Value> = rows
            .iter()
            .filter(|a| a.draw_id == draw_id)
            .map(|a| serde_json::json!({ "expert_id": a.expert_id, "position": a.position }))
            .collect();
        assert!(!assignments.is_empty());
        cases.push(serde_json::json!({ "record": record, "frozen_list": list, "assignments": assignments }));
    }
    assert_eq!(replaced, 2, "the first draw's two vacancies were filled by promotions");
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, serde_json::to_vec(&cases).unwrap()).unwrap();

    let python = std::env::var("SUPERVISION_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/dispatch/reference/rerun_exports.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(&cases_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set SUPERVISION_PYTHON to an interpreter): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the PyPI package did not reproduce the exported draws (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["package"], "1.0.10");
    let draws = summary["draws"].as_array().unwrap();
    assert_eq!(draws.len(), 2);
    assert!(draws.iter().all(|d| d["problems"].as_array().unwrap().is_empty()), "{stdout}");
    assert_eq!(draws[0]["assignments"], 6, "two primaries, two promoted backups and two top-ups: {stdout}");
    eprintln!("{stdout}");
}

/// The school the drawn task is for (the registry's only institution).
async fn d_school(d: &crate::responses::Drawn) -> String {
    let mut operator = user(&d.dispatch, "operator-a");
    let task = operator
        .get_task(supervision_proto::dispatch::GetTaskRequest { id: d.task_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    task.institution_id
}
