"""The benchmarks' shared reporting: tables and the JSON every benchmark writes."""

import json

from benchmarks.common import print_table, report, target


def test_a_table_without_rows_prints_its_headers(capsys):
    print_table(["target", "value"], [], title="none yet")
    assert capsys.readouterr().out.splitlines()[-1].split() == ["target", "value"]


def test_a_report_with_no_targets_writes_its_results(tmp_path):
    path = tmp_path / "out.json"
    assert report("throughput", {"updates_per_s": {"state": 100.0}}, [], path) == 0
    payload = json.loads(path.read_text())
    assert payload["results"] == {"updates_per_s": {"state": 100.0}}
    assert payload["targets"] == []


def test_a_missed_target_fails_the_report(tmp_path):
    missed = target("p99 ratio", 2.0, 1.5, "<=")
    assert not missed["met"]
    assert report("roundtrip", {}, [missed], tmp_path / "out.json") == 1
