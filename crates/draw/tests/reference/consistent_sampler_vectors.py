#!/usr/bin/env python3
"""Test vectors for crates/draw from the reference implementation, PyPI consistent-sampler 1.0.10.

The Rust crate `supervision-draw` must reproduce, exactly, the order and the full first-generation
tickets that Rivest's own package computes; this script asks the package and prints what it says
as JSON. The Rust integration test `tests/draw/vectors.rs` reads the committed output,
`crates/draw/tests/vectors.json`, and compares every field.

Only the parts of the protocol that are ours and not the package's are computed here with hashlib:
the frozen-list blob and its SHA-256, the commitment (SHA-256 of the 32 raw server-seed bytes) and
the seed string. The order and the tickets come from the package alone.

Regenerate (from the workspace root, /work/main):

    python3 -m venv /tmp/cs-venv
    /tmp/cs-venv/bin/pip install consistent-sampler==1.0.10
    /tmp/cs-venv/bin/python crates/draw/tests/reference/consistent_sampler_vectors.py \
        > crates/draw/tests/vectors.json

The output is deterministic: the server seeds below are fixed (derived from the case names), never
random, so regenerating must produce a byte-identical file. If it does not, the package changed.
"""

import hashlib
import json
import sys

import consistent_sampler

EXPECTED_VERSION = "1.0.10"


def package_version():
    from importlib.metadata import version

    return version("consistent-sampler")


def fixed_server_seed(case_name):
    """32 fixed bytes for a case: SHA-256 of its name. Test data only; real seeds come from the OS."""
    return hashlib.sha256(("supervision-draw test vector " + case_name).encode("utf-8")).digest()


def frozen_list(ids):
    """The frozen candidate list: sorted bytewise, one id per line, '\\n' after each, UTF-8."""
    ordered = sorted(ids, key=lambda i: i.encode("utf-8"))
    assert len(ordered) == len(set(ordered)), "duplicate ids in a test case"
    blob = "".join(i + "\n" for i in ordered).encode("utf-8")
    return ordered, blob


def case(name, ids, dice_digits=None):
    seed_bytes = fixed_server_seed(name)
    seed_hex = seed_bytes.hex()
    seed_string = seed_hex if dice_digits is None else seed_hex + ":" + dice_digits
    ordered, blob = frozen_list(ids)

    # The reference: exactly the call docs/draw-algorithm.md tells an auditor to make.
    sampled = list(consistent_sampler.sampler(ordered, seed=seed_string, with_replacement=False))
    # The sampler prints tickets trimmed to 9 significant digits; the full ticket of each id is
    # the package's own first_fraction, the value the sampler's heap compares.
    order = []
    for trimmed, expert_id, generation in sampled:
        assert generation == 1
        full = consistent_sampler.first_fraction(expert_id, seed_string)
        assert full.startswith(trimmed)
        order.append({"id": expert_id, "ticket": full, "ticket_trimmed": trimmed})
    assert sorted(t["id"] for t in order) == sorted(ordered)
    # The sampler's heap order is the order of (full ticket string, id): check it here too.
    assert [t["id"] for t in order] == [
        i for _, i in sorted((consistent_sampler.first_fraction(i, seed_string), i) for i in ordered)
    ]

    return {
        "name": name,
        "ids": ordered,
        "frozen_list_sha256": hashlib.sha256(blob).hexdigest(),
        "count": len(ordered),
        "server_seed_hex": seed_hex,
        "commitment": hashlib.sha256(seed_bytes).hexdigest(),
        "dice_digits": dice_digits,
        "seed_string": seed_string,
        "seed_string_sha256": hashlib.sha256(seed_string.encode("utf-8")).hexdigest(),
        "order": order,
    }


def uuid_like(n):
    h = hashlib.sha256(("expert " + str(n)).encode("utf-8")).hexdigest()
    return "-".join([h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]])


def main():
    version = package_version()
    if version != EXPECTED_VERSION:
        sys.exit("consistent-sampler %s installed, %s expected" % (version, EXPECTED_VERSION))

    cases = [
        case("one id", ["EXP-0001"]),
        case("two ids with dice", ["EXP-0001", "EXP-0002"], "31415926535897932384"),
        case(
            "ids of different lengths",
            ["a", "ab", "abc", "E1", "E10", "E100", "E2", "Z", uuid_like(1), "x" * 64],
        ),
        case(
            "ids of different lengths with dice",
            ["a", "ab", "abc", "E1", "E10", "E100", "E2", "Z", uuid_like(1), "x" * 64],
            "62643383279502884197169399375105820974944592307816406286",
        ),
        case(
            "printable ascii edges",
            ["!", "~", "a:b", "0", "9", "A", "z", "!~", "#1", "{id}", "\"quoted\"", "back\\slash"],
            "00000000000000000000",
        ),
        case("100 uuid-like ids with dice", [uuid_like(n) for n in range(100)], "27182818284590452353"),
        case("100 short ids", ["E" + str(n) for n in range(1, 101)]),
        case("1000 ids", ["E" + str(n) for n in range(1, 1001)]),
        case("1000 ids with dice", [uuid_like(n) for n in range(1000)], "16180339887498948482045868343656"),
    ]
    json.dump(
        {
            "about": "Generated by crates/draw/tests/reference/consistent_sampler_vectors.py; do not edit by hand.",
            "package": "consistent-sampler " + version,
            "call": "consistent_sampler.sampler(ids, seed=seed_string, with_replacement=False)",
            "cases": cases,
        },
        sys.stdout,
        indent=1,
        ensure_ascii=True,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
