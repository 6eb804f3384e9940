"""The edge spool: durable numbering, acks, torn-frame recovery, compaction, rebase."""

from __future__ import annotations

from pathlib import Path

import pytest

from comms.spool import Spool, SpoolFullError


def items(n: int, tag: str = "t") -> list[tuple[bytes, bool | None]]:
    return [(f"{tag}{i}".encode() * 10, None) for i in range(n)]


def test_numbers_survive_reopen_and_acks_clear_the_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool")
    assert spool.append("a", items(3)) == 0
    assert spool.append("a", [(b"x", True)]) == 3
    assert spool.append("b", items(2)) == 0
    spool.close()
    spool = Spool(tmp_path / "s.spool")
    entries = spool.pending("a", -1, 100, 1 << 20)
    assert [e.seq for e in entries] == [0, 1, 2, 3] and entries[3].episode_end is True
    assert entries[0].data == b"t0" * 10
    spool.ack("a", 3)
    spool.ack("b", 1)
    assert spool.pending_count() == 0
    assert (tmp_path / "s.spool").stat().st_size < 200  # rewritten to a head record only
    spool.close()
    spool = Spool(tmp_path / "s.spool")
    assert spool.next_seq("a") == 4 and spool.acked("a") == 3 and spool.append("b", items(1)) == 2


def test_pending_respects_item_and_byte_limits(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool")
    spool.append("a", items(10))
    assert [e.seq for e in spool.pending("a", 2, 3, 1 << 20)] == [3, 4, 5]
    assert len(spool.pending("a", -1, 100, 25)) == 1  # always at least one
    spool.ack("a", 4)
    assert spool.pending("a", -1, 100, 1 << 20)[0].seq == 5


def test_unacked_bytes_count_what_is_in_flight_up_to_a_seq(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool")
    spool.append("a", items(10))
    per_entry = spool.unacked_bytes("a", 0)
    assert per_entry > len(b"t0" * 10)  # the record, framing included
    assert spool.unacked_bytes("a", 3) == 4 * per_entry
    spool.ack("a", 1)
    assert spool.unacked_bytes("a", 3) == 2 * per_entry and spool.unacked_bytes("a", 1) == 0
    assert spool.unacked_bytes("other", 5) == 0


def test_a_torn_last_frame_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "s.spool"
    spool = Spool(path)
    spool.append("a", items(3))
    spool.close()
    with open(path, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x00\x00\x00\x00partial")
    spool = Spool(path)
    assert spool.next_seq("a") == 3
    assert spool.append("a", items(1)) == 3
    spool.close()
    assert [e.seq for e in Spool(path).pending("a", -1, 100, 1 << 20)] == [0, 1, 2, 3]


def test_partial_acks_compact_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "s.spool"
    spool = Spool(path)
    big = [(b"x" * 100_000, None)] * 1000
    spool.append("a", big)
    spool.ack("a", 990)
    assert path.stat().st_size < 2_000_000
    assert [e.seq for e in spool.pending("a", -1, 100, 1 << 30)] == list(range(991, 1000))


def test_rebase_renumbers_pending_after_the_gateways_mark(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool")
    spool.append("a", items(3))
    spool.rebase("a", 41)
    assert [e.seq for e in spool.pending("a", -1, 100, 1 << 20)] == [42, 43, 44]
    assert spool.append("a", items(1)) == 45


def test_rebase_follows_a_gateway_that_lost_acked_seqs(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool")
    spool.append("a", items(10))
    spool.ack("a", 6)
    spool.rebase("a", 3)  # the gateway's buffer fell back to an older commit record
    assert [e.seq for e in spool.pending("a", -1, 100, 1 << 20)] == [4, 5, 6]
    assert spool.acked("a") == 3 and spool.append("a", items(1)) == 7
    spool.rebase("a", 5)  # an ordinary mark: nothing to renumber
    assert spool.next_seq("a") == 8 and spool.acked("a") == 3
    reopened = Spool(tmp_path / "s.spool")
    assert [e.seq for e in reopened.pending("a", -1, 100, 1 << 20)] == [4, 5, 6, 7]


def test_full_spool_refuses_with_a_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.spool", max_pending_bytes=1000)
    spool.append("a", [(b"x" * 500, None)])
    with pytest.raises(SpoolFullError, match="unreachable too long"):
        spool.append("a", [(b"x" * 600, None)])


def test_an_episode_left_open_is_remembered_and_closed_by_the_next_entry(tmp_path: Path) -> None:
    path = tmp_path / "s.spool"
    spool = Spool(path)
    spool.append("a", [(b"x", None), (b"y", True)])
    assert not spool.episode_open("a")
    spool.append("a", [(b"z", None)])
    spool.ack("a", 2)  # rewritten to a head record: the open episode must survive that
    spool.close()
    spool = Spool(path)
    assert spool.episode_open("a")
    spool.append("a", [(b"w", None)], previous_end=False)
    spool.ack("a", 2)
    entry = spool.pending("a", -1, 10, 1 << 20)[0]
    assert (entry.seq, entry.previous_end, entry.episode_end) == (3, False, None)
