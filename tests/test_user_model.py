"""The user's own model and images (issue 23): a model in the space file or from an import path, the
space's own settings, image folders and .npz files, fusion of user models, and every bad input as
one line with exit 2 and the stored study untouched.

Runs go through `study.cli.main` in-process (the command's code path, without a Python start each).
"""

from __future__ import annotations

import json
import runpy
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState
from PIL import Image
from processes import in_process as main
from torch import nn

from study import cli
from study.config import Config
from study.engine import data, datasets, models
from study.engine.models.fused import fuse, member_state
from study.errors import UserError
from study.search import arrays
from study.spaces import space as spaces
from study.store import record

ROOT = Path(__file__).resolve().parents[1]

HEAD = '''
"""own: a space with its own model and two declared settings."""
from torch import nn

dataset = "DATASET"
resolution = 32
epochs = 1
batch_size = 32
data_fraction = FRACTION
val_fraction = 0.25
precision = "fp32"
settings = {"kernel_size": 3, "blocks": 1}


def model(config, num_classes):
    k, c = config.kernel_size, 8
    layers = [nn.Conv2d(3, c, k, padding=k // 2, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
    for _ in range(config.blocks):
        layers += [nn.Conv2d(c, 2 * c, k, stride=2, padding=k // 2, bias=False), nn.BatchNorm2d(2 * c), nn.ReLU()]
        c *= 2
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
'''
SEARCH = '''
def suggest(trial):
    return {"kernel_size": trial.suggest_categorical("kernel_size", [3, 5]), "blocks": trial.suggest_int("blocks", 1, 2),
            "lr": trial.suggest_float("lr", 0.005, 0.05, log=True)}
'''
ABLATION = '''
seeds = 2
components = {"large kernel": {"kernel_size": (5, 3)}, "second block": {"blocks": (2, 1)}}
'''




def write_space(folder: Path, name: str, dataset: str, body: str = "", fraction: float = 1.0, head: str = HEAD) -> Path:
    path = folder / f"{name}.py"
    path.write_text(head.replace("DATASET", dataset).replace("FRACTION", str(fraction)) + textwrap.dedent(body))
    return path


def image_folder(root: Path, per_class: int = 40, size: int = 24, test: int = 0, mode: str = "RGB") -> Path:
    """3 classes of PNGs: a class-coloured square at a random place on noise, seeded."""
    rng = np.random.default_rng(0)
    colours = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 60, 230)}
    for split, count in (("train", per_class), ("test", test)):
        for name, colour in colours.items() if count else ():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                x = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
                r, c = rng.integers(0, size // 2, 2)
                x[r:r + size // 2, c:c + size // 2] = colour
                img = Image.fromarray(x)
                (img if mode == "RGB" else img.convert(mode)).save(root / split / name / f"{i}.png")
    return root


def npz_file(path: Path, train: int = 90, test: int = 30, size: int = 20, **overrides) -> Path:
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", train), ("test", test)):
        y = np.arange(n) % 3
        x = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
        x[np.arange(n), :, :, y] += 150  # the class is the bright channel
        arrays |= {f"x_{split}": x, f"y_{split}": y}
    arrays["classes"] = np.array(["r", "g", "b"])
    arrays |= overrides
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def load(db: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def _search_ablation_report(folder: Path, dataset: str, fraction: float, extra: list[str], capsys) -> dict:
    search = write_space(folder, "own", dataset, SEARCH, fraction)
    ablation = write_space(folder, "own_ablation", dataset, ABLATION, fraction)
    db = folder / "own.db"
    assert main(["run", search, "--trials", "3", "--storage", f"sqlite:///{db}", "--plain", *extra], capsys)[0] == 0
    assert main(["run", ablation, "--storage", f"sqlite:///{db}", "--plain", *extra], capsys)[0] == 0
    found = load(db, "own")
    trials = found.get_trials()
    assert len(trials) == 3 and trials[0].state == TrialState.COMPLETE
    for t in trials:
        config = record.config(t)  # the declared settings come back as they were trained
        assert t.user_attrs["config"]["declared"] == ["blocks", "kernel_size"]
        assert (config.kernel_size, config.blocks) == (t.params["kernel_size"], t.params["blocks"])
        assert config.model == f"{search}:model"
        torch.manual_seed(0)
        built = models.build(config, len(found.user_attrs["dataset"]["classes"]))
        assert t.user_attrs["params"] == sum(p.numel() for p in built.parameters())
        assert t.user_attrs["flops_per_image"] > 0
    cells = load(db, "own_ablation").get_trials()
    assert [t.state for t in cells] == [TrialState.COMPLETE] * 6
    by_variant = {}
    for t in cells:
        by_variant.setdefault(t.user_attrs["variant"], set()).add(
            (t.user_attrs["seed"], t.user_attrs["config"]["kernel_size"], t.user_attrs["config"]["blocks"]))
    assert by_variant == {"full": {(0, 5, 2), (1, 5, 2)}, "no large kernel": {(0, 3, 2), (1, 3, 2)},
                          "no second block": {(0, 5, 1), (1, 5, 1)}}
    out = folder / "report.html"
    assert main(["report", db, "-o", out, "--tables-only", "--no-dashboard"], capsys)[0] == 0
    tables = {p.name: p.read_text() for p in (folder / "report_tables").glob("*.md")}
    assert "kernel_size" in tables["own-top_trials.md"] and "blocks" in tables["own-top_trials.md"]
    assert all(v in tables["own_ablation-ablation.md"] for v in ("no large kernel", "no second block"))
    return {"search": found, "cells": cells, "tables": tables}


def test_own_model_and_settings_search_ablate_and_report_on_cifar(data_dir, tmp_path, capsys):
    got = _search_ablation_report(tmp_path, "cifar10", 0.05, ["--data-dir", data_dir], capsys)
    assert got["search"].user_attrs["dataset"]["name"] == "cifar10"
    assert all(0 < t.user_attrs["train_images"] < 0.1 * 5438 for t in got["cells"])  # data_fraction 0.05


def test_own_model_on_a_generated_image_folder(tmp_path, capsys):
    folder = image_folder(tmp_path / "images")
    images = datasets.load(Config(dataset=str(folder)))
    assert images.train_images.shape == (120, 3, 24, 24) and images.train_images.dtype == torch.uint8
    assert images.classes == ("blue", "green", "red") and images.num_classes == 3 and len(images.test_labels) == 0
    x = images.train_images.double() / 255  # its own statistics
    torch.testing.assert_close(torch.tensor(images.mean, dtype=torch.float64), x.mean((0, 2, 3)))
    torch.testing.assert_close(torch.tensor(images.std, dtype=torch.float64), x.std((0, 2, 3), correction=0))
    parts = data.split(images.train_labels, 0.25, 1.0, 0)  # the same stratified split as CIFAR's
    assert torch.bincount(images.train_labels[parts.val]).tolist() == [10, 10, 10]
    assert datasets.load(Config(dataset=str(folder), image_size=16)).train_images.shape == (120, 3, 16, 16)

    got = _search_ablation_report(tmp_path, str(folder), 1.0, [], capsys)
    assert all(t.user_attrs["train_images"] == 90 and t.user_attrs["val_images"] == 30 for t in got["cells"])
    assert got["search"].user_attrs["dataset"]["classes"] == ["blue", "green", "red"]
    assert str(folder) in got["tables"]["overview.md"]


def test_own_model_on_an_npz(tmp_path, capsys):
    path = npz_file(tmp_path / "own.npz")
    images = datasets.load(Config(dataset=str(path)))
    assert images.train_images.shape == (90, 3, 20, 20) and images.test_images.shape == (30, 3, 20, 20)
    assert images.classes == ("r", "g", "b")
    got = _search_ablation_report(tmp_path, str(path), 1.0, [], capsys)
    assert {t.user_attrs["val_images"] for t in got["cells"]} == {24}  # 8 of each class's 30
    capsys.readouterr()
    assert cli.main(["train", str(tmp_path / "own.py"), "--test", "--json", "--epochs", "3", "--set", "lr=0.05"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["train_images"] == 66 and 0 <= metrics["test_accuracy"] <= 1  # 30 x_test images scored
    assert metrics["config"]["image_size"] == 0 and metrics["config"]["declared"] == ["blocks", "kernel_size"]


def test_a_model_from_an_import_path_gets_its_keyword_arguments(tmp_path, monkeypatch, capsys):
    package = tmp_path / "tinypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent('''
        from torch import nn

        class TinyNet(nn.Module):
            def __init__(self, num_classes, width=1.0, kernel_size=3):
                super().__init__()
                c = round(8 * width)
                self.conv = nn.Conv2d(3, c, kernel_size, padding=kernel_size // 2)
                self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

            def forward(self, x):
                return self.head(self.conv(x))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    space = tmp_path / "imported.py"
    space.write_text(f'model = "tinypkg.nets:TinyNet"\ndataset = "{npz_file(tmp_path / "d.npz")}"\nresolution = 32\n'
                     'epochs = 1\nwidth = 2.0\nsettings = {"kernel_size": 5}\n')
    config = spaces.load(space).defaults
    net = models.build(config, 3)
    assert net.conv.kernel_size == (5, 5) and net.conv.out_channels == 16
    assert main(["train", space, "--set", "kernel_size=1", "--json"], capsys)[0] == 0


def test_a_fusible_user_model_fuses_and_matches_its_members(tmp_path):
    config = spaces.load(write_space(tmp_path, "own", "cifar10", SEARCH)).defaults.replace(blocks=2)
    members = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        members.append(models.build(config, 10))
    fused = fuse(members)
    x = torch.randn(3, 8, 3, 32, 32)
    out = fused(x)  # training mode: batch statistics, running statistics updated
    for k, member in enumerate(members):
        torch.testing.assert_close(out[k], member(x[k]), rtol=1e-4, atol=1e-5)
        state = member_state(fused, k)
        for name, tensor in member.state_dict().items():
            torch.testing.assert_close(state[name], tensor, rtol=1e-4, atol=1e-5, msg=f"member {k}: {name}")


def test_a_user_ablation_trains_fused_as_it_trains_alone(data_dir, tmp_path):
    from study.search import runner

    body = 'seeds = 3\nepochs = 2\ncomponents = {"large kernel": {"kernel_size": (5, 3)}}\n'
    space = spaces.load(write_space(tmp_path, "own", "cifar10", body, 0.05))
    fused = runner.run(space, {"data_dir": data_dir}, runner.Options(storage=f"sqlite:///{tmp_path}/fused.db", fuse=3))
    alone = runner.run(space, {"data_dir": data_dir}, runner.Options(storage=f"sqlite:///{tmp_path}/alone.db", fuse=1))
    assert fused.user_attrs["array_size"] == 3
    arrays = {t.user_attrs["array"] for t in fused.get_trials()}
    assert len(arrays) == 2 and all(t.user_attrs["array_size"] == 3 for t in fused.get_trials())

    def curves(study):
        return {(t.user_attrs["variant"], t.user_attrs["seed"]): t.user_attrs["val_loss_curve"] for t in study.get_trials()}

    got, want = curves(fused), curves(alone)
    assert got.keys() == want.keys() and len(got) == 6
    for cell in got:
        torch.testing.assert_close(torch.tensor(got[cell]), torch.tensor(want[cell]), rtol=2e-3, atol=2e-3, msg=str(cell))


UNFUSIBLE = '''
"""A model with GroupNorm, whose weights fusion does not split."""
from torch import nn

dataset = "DATASET"
resolution = 32
epochs = 1
data_fraction = FRACTION


def model(config, num_classes):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, num_classes))


def suggest(trial):
    return {"lr": trial.suggest_float("lr", 0.005, 0.05, log=True)}
'''

SHUFFLE = '''
"""A model whose forward shuffles channels: no layer says so, but fused it would mix the members."""
from torch import nn

dataset = "cifar10"
resolution = 32


class model(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))

    def forward(self, x):
        y = self.conv(x)
        b, c, h, w = y.shape
        return self.head(y.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w))
'''


def test_an_unfusible_user_model_trains_alone_and_the_study_says_why(data_dir, tmp_path, capsys):
    space = write_space(tmp_path, "groupnorm", "cifar10", fraction=0.05, head=UNFUSIBLE)
    db = tmp_path / "g.db"
    assert main(["run", space, "--data-dir", data_dir, "--trials", "2", "--fuse", "3", "--storage", f"sqlite:///{db}"],
                capsys)[0] == 0
    study = load(db, "groupnorm")
    assert study.user_attrs["array_size"] == 1
    assert "1 (GroupNorm) has state that fusion does not know how to split" in study.user_attrs["array_size_reason"]
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    assert not any("array" in t.user_attrs for t in study.get_trials())

    shuffle = spaces.load(write_space(tmp_path, "shuffle", "cifar10", head=SHUFFLE)).defaults
    k, why = arrays.array_size(shuffle, 3)
    assert k == 1 and "mixes the members' channels" in why


# --- bad input: one line, exit 2, the stored study untouched ------------------------------------

GOOD = '''
"""good"""
from torch import nn

dataset = "cifar10"
resolution = 32
epochs = 1
data_fraction = 0.05
settings = {"kernel_size": 3}


def model(config, num_classes):
    return nn.Sequential(nn.Conv2d(3, 4, config.kernel_size, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


def suggest(trial):
    return {"kernel_size": trial.suggest_categorical("kernel_size", [3, 5])}
'''


def bad_space(tmp: Path, name: str, text: str) -> Path:
    path = tmp / f"{name}.py"
    path.write_text('"""bad"""\nfrom torch import nn\nresolution = 32\nepochs = 1\n' + textwrap.dedent(text))
    return path


MODEL_ONLY = ("def model(config, num_classes):\n"
              "    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, num_classes))\n")
MODEL = MODEL_ONLY + "def suggest(t):\n    return {'lr': t.suggest_float('lr', 0.001, 0.1, log=True)}\n"
CASES = [
    ("model-raises", "dataset = 'cifar10'\ndef model(config, num_classes):\n    raise ValueError('no such layer')\n",
     "raised ValueError: no such layer"),
    ("model-returns-no-module", "dataset = 'cifar10'\ndef model(config, num_classes):\n    return [1, 2]\n",
     "returned a list, not a torch.nn.Module"),
    ("wrong-output-shape", "dataset = 'cifar10'\ndef model(config, num_classes):\n    return nn.Flatten()\n",
     "returned (2, 3072) for a batch of 2; it must return (2, 10) logits"),
    ("import-fails", "dataset = 'cifar10'\nmodel = 'no_such_pkg.nets:TinyNet'\n", "module 'no_such_pkg.nets' does not import"),
    ("import-no-attr", "dataset = 'cifar10'\nmodel = 'torch.nn:NoSuchNet'\n", "has no function or class 'NoSuchNet'"),
    ("one-class", "dataset = '{tmp}/one'\n" + MODEL, "holds 1 class folder(s) (red); a classifier needs at least two"),
    ("no-images", "dataset = '{tmp}/empty'\n" + MODEL, "holds no images"),
    ("mixed-modes", "dataset = '{tmp}/mixed'\n" + MODEL, "mixes image modes"),
    ("mode-16-bit", "dataset = '{tmp}/deep'\n" + MODEL, "the images are in mode I;16; convert them to 8-bit RGB"),
    ("labels-outside", "dataset = '{tmp}/outside.npz'\n" + MODEL, "holds label 3, outside the 3 classes"),
    ("npz-dtype", "dataset = '{tmp}/float.npz'\n" + MODEL, "x_train is float32 of shape (90, 20, 20, 3); it must be uint8"),
    ("npz-shape", "dataset = '{tmp}/gray.npz'\n" + MODEL, "x_train is uint8 of shape (90, 20, 20); it must be uint8"),
    ("npz-label-count", "dataset = '{tmp}/count.npz'\n" + MODEL, "y_train is int64 of shape (89,)"),
    ("dataset-missing", "dataset = '{tmp}/nowhere'\n" + MODEL, "not found"),
    ("too-large", "dataset = '{tmp}/big'\n" + MODEL, "need 0.00 GiB as uint8, more than 50% of the 0.00 GiB"),
    ("declared-not-scalar", "dataset = 'cifar10'\nsettings = {'blocks': [1, 2]}\n" + MODEL,
     "settings['blocks'] = [1, 2]: a space's own setting is a bool, int, float or str"),
    ("declared-builtin", "dataset = 'cifar10'\nsettings = {'lr': 0.1}\n" + MODEL, "settings['lr']: a space's own setting needs"),
    ("declared-mistyped-component", "dataset = 'cifar10'\nsettings = {'blocks': 2}\n" + MODEL_ONLY +
     "components = {'deep': {'blocks': (2, 'one')}}\n",
     "component 'deep': setting blocks='one' has the wrong type: expected int"),
    ("declared-unknown-in-suggest", "dataset = 'cifar10'\nsettings = {'blocks': 2}\n" + MODEL_ONLY +
     "def suggest(t):\n    return {'blokcs': t.suggest_int('blokcs', 1, 3)}\n", "parameter 'blokcs' is not found"),
    ("helper-function", "dataset = 'cifar10'\n" + MODEL + "def helper():\n    pass\n", "unknown setting 'helper'"),
]


@pytest.fixture(scope="module")
def stored(data_dir, tmp_path_factory):
    """A database holding one small study of a good user space: the witness that nothing stored changes."""
    folder = tmp_path_factory.mktemp("stored")
    space = folder / "good.py"
    space.write_text(GOOD)
    assert main(["run", space, "--data-dir", data_dir, "--trials", "1", "--storage", f"sqlite:///{folder}/s.db"])[0] == 0
    return folder / "s.db"


def snapshot(db: Path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}", skip_compatibility_check=True)
    studies = optuna.get_all_study_summaries(storage)
    out = [(s.study_name, [(t.number, t.state, t.params, t.value, t.user_attrs) for t in
                           optuna.load_study(study_name=s.study_name, storage=storage).get_trials()]) for s in studies]
    storage.engine.dispose()
    return out


@pytest.fixture
def bad_inputs(tmp_path):
    image_folder(tmp_path / "one", per_class=3)
    for extra in ("blue", "green"):
        for file in (tmp_path / "one" / "train" / extra).iterdir():
            file.unlink()
        (tmp_path / "one" / "train" / extra).rmdir()
    for name in ("a", "b"):
        (tmp_path / "empty" / "train" / name).mkdir(parents=True)
    image_folder(tmp_path / "mixed", per_class=3)
    Image.new("L", (24, 24)).save(tmp_path / "mixed" / "train" / "red" / "gray.png")
    image_folder(tmp_path / "big", per_class=3)
    for name in ("a", "b"):
        (tmp_path / "deep" / "train" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("I;16", (24, 24)).save(tmp_path / "deep" / "train" / name / f"{i}.png")
    npz_file(tmp_path / "outside.npz", y_test=np.array([0, 1, 3] * 10))
    npz_file(tmp_path / "float.npz", x_train=np.zeros((90, 20, 20, 3), np.float32))
    npz_file(tmp_path / "gray.npz", x_train=np.zeros((90, 20, 20), np.uint8))
    npz_file(tmp_path / "count.npz", y_train=np.arange(89) % 3)
    return tmp_path


@pytest.mark.parametrize("name,text,match", CASES, ids=[c[0] for c in CASES])
def test_bad_user_input_is_one_line_exit_2_and_stores_nothing(name, text, match, stored, data_dir, bad_inputs,
                                                               monkeypatch, capsys):
    if name == "too-large":
        monkeypatch.setattr(datasets, "available_bytes", lambda: 1000)
    space = bad_space(bad_inputs, name.replace("-", "_"), text.replace("{tmp}", str(bad_inputs)))
    before = snapshot(stored)
    code, err = main(["run", space, "--data-dir", data_dir, "--storage", f"sqlite:///{stored}"], capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert match in err, err
    assert snapshot(stored) == before


def test_set_checks_a_declared_setting_like_a_built_in_one(stored, data_dir, tmp_path, capsys):
    space = tmp_path / "good.py"
    space.write_text(GOOD)
    before = snapshot(stored)
    for value, match in (("kernel_size=big", "setting kernel_size='big' has the wrong type: expected int"),
                         ("kernal_size=3", "unknown setting 'kernal_size'; known settings: model, ")):
        code, err = main(["run", space, "--data-dir", data_dir, "--storage", f"sqlite:///{stored}", "--set", value], capsys)
        assert code == 2 and err.count("\n") == 1 and match in err, err
    assert snapshot(stored) == before
    with pytest.raises(UserError, match="kernel_size"):
        spaces.load(space).defaults.replace(kernel_size=2.5)


def test_the_example_generator_and_space_load(tmp_path):
    make = runpy.run_path(str(ROOT / "spaces" / "examples" / "make_shapes.py"))
    folder = make["write"](tmp_path / "shapes", 4, 2, 32)
    images = datasets.load(Config(dataset=str(folder)))
    assert images.train_images.shape == (12, 3, 32, 32) and images.test_images.shape == (6, 3, 32, 32)
    assert images.classes == ("circle", "square", "triangle")
    for name in ("shapes", "shapes_ablation"):
        space = spaces.load(ROOT / "spaces" / "examples" / f"{name}.py")
        assert space.defaults.declared_dict().keys() == {"kernel_size", "blocks"}
        assert isinstance(models.build(space.defaults, 3), nn.Module)
