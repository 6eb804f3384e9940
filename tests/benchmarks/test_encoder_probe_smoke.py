"""`benchmarks.encoder_probe --quick`: both encoders and the state-only baseline are probed in
both scenes, with errors and ratios for every label, and the JSON has its shape."""


def test_quick_encoder_probe_scores_every_encoder_in_both_scenes(run_quick) -> None:
    payload, stdout = run_quick("encoder_probe")
    results = payload["results"]
    assert set(results["scenes"]) == {"randomized", "fixed"}
    for scene in results["scenes"].values():
        assert scene["fit_frames"] > 0 and scene["test_frames"] > 0
        for key in ("mean_answer_cm", "state_only_cm"):
            assert len(scene[key]) == len(results["labels"])
        assert len(scene["encoders"]) == 2
        for found in scene["encoders"].values():
            for key in ("error_cm", "error_over_state_only"):
                assert len(found[key]) == len(results["labels"])
    assert payload["targets"] == [] and "frozen maps probed" in stdout
