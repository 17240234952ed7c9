#!/usr/bin/env python3
"""Re-runs exported draws with PyPI consistent-sampler 1.0.10 itself (D18) and compares.

Usage: rerun_exports.py CASES.json, where CASES.json is a list of
  {"record": path, "frozen_list": path, "assignments": [{"expert_id", "position"}...]}
written by tests/e2e/dispatch/exports.rs from ExportDraw and ListAssignments.

For each draw: the frozen list's SHA-256 and the seed commitment are checked with hashlib; the
order and every full first-generation ticket are recomputed by the package and compared with the
record; every assignment row (primaries, backups, promotions and top-ups after replacements)
must name the expert the package puts at its position. Prints a JSON summary; exits 1 on any
difference, 2 when the package cannot be imported.
"""

import hashlib
import json
import sys

try:
    import consistent_sampler
    from importlib.metadata import version
except ImportError as err:  # the test must fail, clearly, not skip
    print(f"PyPI consistent-sampler is not importable by {sys.executable}: {err}. "
          "Install it: python3 -m pip install --user consistent-sampler==1.0.10 (.ci/run does).",
          file=sys.stderr)
    sys.exit(2)

EXPECTED_VERSION = "1.0.10"


def rerun(case):
    record = json.load(open(case["record"], encoding="utf-8"))
    blob = open(case["frozen_list"], "rb").read()
    problems = []
    if hashlib.sha256(blob).hexdigest() != record["frozen_list_sha256"]:
        problems.append("frozen list SHA-256 differs")
    if hashlib.sha256(bytes.fromhex(record["server_seed_hex"])).hexdigest() != record["seed_commitment"]:
        problems.append("the seed does not open the commitment")
    dice = record.get("dice_digits") or ""
    seed = record["server_seed_hex"] + (":" + dice if dice else "")
    ids = blob.decode("utf-8").split("\n")[:-1]
    if len(ids) != record["candidate_count"]:
        problems.append(f"{len(ids)} ids in the list, record says {record['candidate_count']}")
    sampled = list(consistent_sampler.sampler(ids, seed=seed, with_replacement=False))
    order = [expert_id for _, expert_id, _ in sampled]
    tickets = [consistent_sampler.first_fraction(expert_id, seed) for expert_id in order]
    recorded = record["order"]
    if order != [r["expert_id"] for r in recorded]:
        problems.append("the order differs")
    for i, (ticket, r) in enumerate(zip(tickets, recorded)):
        if r.get("ticket") != ticket:
            problems.append(f"ticket at position {i + 1} differs: package {ticket}, record {r.get('ticket')}")
    for a in case["assignments"]:
        position = a["position"]
        if not 1 <= position <= len(order) or order[position - 1] != a["expert_id"]:
            problems.append(f"assignment of {a['expert_id']} at position {position} is not the package's")
    return {"draw": case["record"], "candidates": len(ids), "order": len(order),
            "assignments": len(case["assignments"]), "problems": problems}


def main():
    installed = version("consistent-sampler")
    if installed != EXPECTED_VERSION:
        print(f"consistent-sampler {installed} is installed; the reference is {EXPECTED_VERSION}", file=sys.stderr)
        sys.exit(2)
    cases = json.load(open(sys.argv[1], encoding="utf-8"))
    results = [rerun(c) for c in cases]
    print(json.dumps({"package": installed, "draws": results}, indent=1))
    sys.exit(1 if any(r["problems"] for r in results) else 0)


if __name__ == "__main__":
    main()
