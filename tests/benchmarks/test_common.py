"""The benchmarks' shared reporting: tables, the JSON every benchmark writes, the exit code."""

import json

import pytest

from benchmarks.common import MISSED_TARGET, print_table, report, schema_errors, target


def test_a_table_without_rows_prints_its_headers(capsys):
    print_table(["target", "value"], [], title="none yet")
    assert capsys.readouterr().out.splitlines()[-1].split() == ["target", "value"]


def test_a_report_with_no_targets_writes_its_results(tmp_path):
    path = tmp_path / "out.json"
    assert report("throughput", {"updates_per_s": {"state": 100.0}}, [], path, quick=False) == 0
    payload = json.loads(path.read_text())
    assert payload["results"] == {"updates_per_s": {"state": 100.0}}
    assert payload["targets"] == []
    assert schema_errors(payload) == []


def test_a_missed_target_fails_a_full_run_but_not_a_quick_one(tmp_path, capsys):
    missed = target("p99 ratio", 2.0, 1.5, "<=")
    assert not missed["met"]
    assert report("roundtrip", {}, [missed], tmp_path / "full.json", quick=False) == MISSED_TARGET
    assert "missed: p99 ratio" in capsys.readouterr().out
    assert report("roundtrip", {}, [missed], tmp_path / "quick.json", quick=True) == 0
    assert "1 target(s) missed" in capsys.readouterr().out
    assert json.loads((tmp_path / "quick.json").read_text())["targets"] == [missed]


def test_an_unmeasured_target_is_reported_as_not_met():
    assert target("torchrl ratio", None, 1.0, ">=") == {
        "name": "torchrl ratio", "value": None, "target": 1.0, "op": ">=", "met": False}


def good_payload() -> dict:
    return {"benchmark": "buffer", "machine": {"cores": 2}, "results": {},
            "targets": [target("ratio", 1.2, 1.0, ">=")]}


@pytest.mark.parametrize("spoil, error", [
    (lambda p: p.pop("machine"), "missing key 'machine'"),
    (lambda p: p.update(benchmark=""), "'benchmark' is not a non-empty string"),
    (lambda p: p.update(results=[]), "'results' is not an object"),
    (lambda p: p.update(targets={}), "'targets' is not a list"),
    (lambda p: p["targets"][0].pop("op"), "target 0 does not have exactly the fields"),
    (lambda p: p["targets"][0].update(met="yes"), "target 0 ('ratio'): met is 'yes'"),
    (lambda p: p["targets"][0].update(value="fast"), "target 0 ('ratio'): value is 'fast'"),
    (lambda p: p["targets"][0].update(target=True), "target 0 ('ratio'): target is True"),
    (lambda p: p["targets"][0].update(op="~"), "target 0 ('ratio'): op is '~'"),
])
def test_a_malformed_payload_is_named(spoil, error):
    payload = good_payload()
    assert schema_errors(payload) == []
    spoil(payload)
    errors = schema_errors(payload)
    assert len(errors) == 1 and errors[0].startswith(error), errors
