"""Smoke test of `bench --quick --json`: every figure is reported and well formed; speed is never asserted."""

from __future__ import annotations

import argparse
import json
import math

from study import bench, models


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_bench_json_has_every_figure(data_dir, capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    bench.main(parser.parse_args(["--quick", "--json", "--data-dir", data_dir, "--device", "cpu"]))
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    for model, resolution in bench.ROWS:
        row = result[f"{model}_{resolution}"]
        if model not in models.names():
            assert "not registered" in row["skipped"]
            continue
        assert all(_positive(row[k]) for k in ("seed_way_images_per_second", "ours_images_per_second", "ratio"))
        assert math.isclose(row["ratio"], row["ours_images_per_second"] / row["seed_way_images_per_second"])
    fused = result["fused"]  # member-images/s of seeds fused into one model, beside the single trial
    assert sorted(row["members"] for row in fused.values()) == sorted(bench.FUSE_KS["cpu"])
    for row in fused.values():
        assert _positive(row["member_images_per_second"])
        assert math.isclose(row["vs_one_trial"],
                            row["member_images_per_second"] / result["naivenet_32"]["ours_images_per_second"])
    for resolution in (32, 128):
        aug = result["augmentation"][f"augment_{resolution}"]
        assert _positive(aug["images_per_second"]) and 0 < aug["share_of_step"] < 1

    overhead = result["overhead"]
    assert overhead["trials"] == bench.QUICK.overhead_trials
    assert 0 < overhead["share"] < overhead["share_with_setup"] < 1
    assert 0 < overhead["seconds_per_trial"] < overhead["mean_trial_seconds"]
    assert overhead["study_setup_seconds"] > 0

    assert "search" not in result  # `--only search` runs the search bench alone (tests/test_search_budget.py)
