"""Smoke test of `bench --quick --json`: every figure is reported and well formed; speed is never asserted."""

from __future__ import annotations

import argparse
import json
import math

import torch

from study.bench import speed as bench
from study.engine import models


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
    # the figures name the machine they were measured on
    machine = result["machine"]
    assert machine["threads"] == torch.get_num_threads() and machine["torch"] == torch.__version__
    assert machine["device"] and machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    fused = result["fused"]  # member-images/s of seeds fused into one model, beside the single trial
    assert sorted(row["members"] for row in fused.values()) == sorted(bench.FUSE_KS["cpu"])
    assert all(_positive(row["member_images_per_second"]) and _positive(row["vs_one_trial"]) for row in fused.values())
    for resolution in (32, 128):
        aug = result["augmentation"][f"augment_{resolution}"]
        assert _positive(aug["images_per_second"]) and 0 < aug["share_of_step"] < 1

    overhead = result["overhead"]
    assert overhead["trials"] == bench.QUICK.overhead_trials
    assert 0 < overhead["share"] < overhead["share_with_setup"] < 1
    assert 0 < overhead["seconds_per_trial"] < overhead["mean_trial_seconds"]
    assert overhead["study_setup_seconds"] > 0

    assert "search" not in result  # `--only search` runs the search bench alone (tests/test_search_budget.py)
