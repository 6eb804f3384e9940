"""`robot-rl buffer info|export|import` on real buffers: LeRobot v3 round trip, a real ROS 2 bag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from buffer import ReplayBuffer
from robot_rl.cli import main
from robot_rl.core import ArraySpec, DictSpec, Episode, Source, Transition

SPEC = DictSpec({"state": ArraySpec((3,), "float32"), "cam": ArraySpec((32, 32, 3), "uint8")})
ACTION = ArraySpec((2,), "float32")


def frame(e: int, s: int) -> dict[str, np.ndarray]:
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, : 4 + 2 * s] = (60 + 40 * e) % 256  # a bar growing with the step
    return {"state": np.array([e, s, 0.5], np.float32), "cam": img}


def make_buffer(path: Path) -> None:
    with ReplayBuffer(path, SPEC, ACTION, fsync=False) as buf:
        for e in range(3):
            ts = [Transition(frame(e, s), np.array([e, s], np.float32), float(s == 5),
                             frame(e, s + 1), s == 5, False, intervened=s == 2,
                             source=Source.POLICY, policy_version=e, robot_id="arm",
                             episode_id=e, wall_time=100.0 * e + s)
                  for s in range(6)]
            buf.add_episode(Episode(e, "arm", "reach", ts, success=e != 1))


def test_buffer_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_buffer(tmp_path / "b")
    assert main(["buffer", "info", str(tmp_path / "b"), "--json", "--verify"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 3 and info["steps"] == 18 and info["success_rate"] == 2 / 3
    assert info["intervention_rate"] == pytest.approx(1 / 6)
    assert info["policy_versions"] == {"min": 0, "max": 2, "distinct": 3}
    assert info["disk_bytes"] > 0 and info["problems"] == []
    assert main(["buffer", "info", str(tmp_path / "nope")]) == 2


def test_lerobot_export_and_import_round_trip(tmp_path: Path) -> None:
    make_buffer(tmp_path / "b")
    out = tmp_path / "lr"
    assert main(["buffer", "export", str(tmp_path / "b"), "--format", "lerobot",
                 "--out", str(out)]) == 0
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 18
    assert info["features"]["observation.images.cam"]["dtype"] == "video"
    assert (out / "videos/observation.images.cam/chunk-000/file-000.mp4").stat().st_size > 0
    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    assert data["episode_index"] == [0] * 6 + [1] * 6 + [2] * 6
    assert np.allclose(data["action"][7], [1, 1])
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["dataset_from_index"] for e in episodes] == [0, 6, 12]

    assert main(["buffer", "import", str(out), "--out", str(tmp_path / "demo")]) == 0
    with ReplayBuffer.open_prior(tmp_path / "demo") as demo:
        assert len(demo) == 18 and demo.num_episodes == 3
        table = demo.episode_table()
        assert list(table["success"]) == [True, False, True]
        rows = demo.storage.read_rows(np.arange(18))
        assert np.array_equal(rows["obs/state"][:, :2], [[e, s] for e in range(3)
                                                          for s in range(6)])
        original = np.stack([frame(e, s)["cam"] for e in range(3) for s in range(6)])
        assert np.abs(rows["obs/cam"].astype(int) - original).mean() < 4  # lossy H.264
        assert (demo.index.col("source") == Source.DEMO).all()
        assert demo.index.col("intervened").sum() == 3


def test_rosbag_export_is_a_readable_bag(tmp_path: Path) -> None:
    rosbag2 = pytest.importorskip("rosbags.rosbag2")
    from rosbags.typesys import Stores, get_typestore

    make_buffer(tmp_path / "b")
    bag = tmp_path / "bag"
    assert main(["buffer", "export", str(tmp_path / "b"), "--format", "rosbag",
                 "--out", str(bag)]) == 0
    store = get_typestore(Stores.ROS2_HUMBLE)
    with rosbag2.Reader(bag) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert set(topics) == {"/arm/observation/cam", "/arm/observation/state", "/arm/action",
                               "/arm/reward", "/arm/intervened", "/arm/episode_end"}
        assert reader.message_count == 3 * (6 * 5 + 1)
        images = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in
                  reader.messages(connections=[topics["/arm/observation/cam"]])]
        assert np.array_equal(images[7].data.reshape(32, 32, 3), frame(1, 1)["cam"])
        ends = [json.loads(store.deserialize_cdr(raw, c.msgtype).data) for c, _, raw in
                reader.messages(connections=[topics["/arm/episode_end"]])]
        assert [e["success"] for e in ends] == [True, False, True]


def test_replay_renders_recorded_camera_with_overlay_and_plots(tmp_path: Path) -> None:
    from robot_rl.config import compose_session
    from robot_rl.runtime.run_dir import RunDir

    run = RunDir(tmp_path / "run")
    run.save_config(compose_session([]))
    make_buffer(run.buffer)
    out = tmp_path / "ep.gif"
    assert main(["replay", str(run.root), "--episode", "1", "--camera", "cam", "--size", "96",
                 "--out", str(out)]) == 0
    frames = np.stack(imageio_frames(out))
    assert frames.shape[:3] == (6, 96, 96)
    assert (frames[2, -10:, :, 0] > 150).mean() > 0.5  # red intervention band on step 2
    assert (frames[3, -10:, :, 0] > 150).mean() < 0.5
    assert (tmp_path / "ep-progress.png").stat().st_size > 1000
    assert main(["replay", str(run.root), "--episode", "7"]) == 2


@pytest.mark.parametrize(("args", "expected"), [
    (["--out", "{tmp}/nodir/x.mp4"], "the folder {tmp}/nodir does not exist"),
    (["--out", "{tmp}/x.txt"], "the video must end in .mp4 or .gif"),
    (["--camera", "top"], "--camera top: not recorded in this run (recorded: cam)"),
])
def test_replay_refuses_what_it_cannot_do_in_one_line_before_rendering(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        expected: str) -> None:
    from robot_rl.config import compose_session
    from robot_rl.runtime.run_dir import RunDir

    run = RunDir(tmp_path / "run")
    run.save_config(compose_session([]))
    make_buffer(run.buffer)
    assert main(["replay", str(run.root), *[a.format(tmp=tmp_path) for a in args]]) == 2
    err = capsys.readouterr().err
    assert expected.format(tmp=tmp_path) in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("**/*.mp4")) and not list(tmp_path.glob("**/*.png"))


def imageio_frames(path: Path) -> list[np.ndarray]:
    import imageio.v2 as imageio

    return [np.asarray(f)[..., :3] for f in imageio.mimread(path)]


def test_import_refuses_what_is_not_a_v3_dataset(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x/meta").mkdir(parents=True)
    assert main(["buffer", "import", str(tmp_path / "x"), "--out", str(tmp_path / "b")]) == 2
    assert "not a LeRobotDataset" in capsys.readouterr().err
    (tmp_path / "x/meta/info.json").write_text(json.dumps({"codebase_version": "v2.1"}))
    assert main(["buffer", "import", str(tmp_path / "x"), "--out", str(tmp_path / "b")]) == 2
    assert "only v3.0 is read" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


PROPRIO = DictSpec({"ee_pos": ArraySpec((3,), "float32"), "gripper": ArraySpec((1,), "float32"),
                    "cam": ArraySpec((16, 16, 3), "uint8")})


def test_lerobot_export_carries_a_named_observation_state_and_import_takes_both(
        tmp_path: Path) -> None:
    def obs(s: int) -> dict[str, np.ndarray]:
        return {"ee_pos": np.array([s, 2 * s, 3 * s], np.float32),
                "gripper": np.array([s / 10], np.float32), "cam": np.zeros((16, 16, 3), np.uint8)}

    with ReplayBuffer(tmp_path / "b", PROPRIO, ACTION, fsync=False) as buf:
        buf.add_episode(Episode(0, "arm", "reach", [
            Transition(obs(s), np.zeros(2, np.float32), 0.0, obs(s + 1), s == 3, False,
                       robot_id="arm") for s in range(4)], success=True))
    out = tmp_path / "lr"
    assert main(["buffer", "export", str(tmp_path / "b"), "--format", "lerobot",
                 "--out", str(out)]) == 0
    info = json.loads((out / "meta/info.json").read_text())
    state = info["features"]["observation.state"]
    assert state["names"] == ["ee_pos.0", "ee_pos.1", "ee_pos.2", "gripper"]
    assert state["shape"] == [4] and state["dtype"] == "float32"
    assert info["features"]["observation.ee_pos"]["names"] == ["ee_pos.0", "ee_pos.1", "ee_pos.2"]
    assert info["features"]["action"]["names"] == ["action.0", "action.1"]
    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    assert np.allclose(data["observation.state"][2], [2, 4, 6, 0.2])

    # our own export: the split keys come back exactly
    assert main(["buffer", "import", str(out), "--out", str(tmp_path / "ours")]) == 0
    with ReplayBuffer.open_prior(tmp_path / "ours") as back:
        assert set(back.storage.obs_spec) == {"ee_pos", "gripper", "cam"}
        assert np.allclose(back.storage.read_rows(np.arange(4))["obs/ee_pos"][3], [3, 6, 9])

    # a dataset as LeRobot writes it: observation.state alone becomes the key `state`
    for key in ("observation.ee_pos", "observation.gripper"):
        del info["features"][key]
    del info["robot_rl"]
    (out / "meta/info.json").write_text(json.dumps(info))
    table = pq.read_table(out / "data/chunk-000/file-000.parquet")
    pq.write_table(table.drop(["observation.ee_pos", "observation.gripper"]),
                   out / "data/chunk-000/file-000.parquet")
    assert main(["buffer", "import", str(out), "--out", str(tmp_path / "theirs")]) == 0
    with ReplayBuffer.open_prior(tmp_path / "theirs") as back:
        assert set(back.storage.obs_spec) == {"state", "cam"}
        assert np.allclose(back.storage.read_rows(np.arange(4))["obs/state"][1], [1, 2, 3, 0.1])
