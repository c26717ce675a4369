import textwrap

import pytest

from study.config import Config, parse_overrides
from study.errors import UserError
from study.spaces import space as spaces


def test_overrides_are_literals_type_checked_and_known():
    assert parse_overrides(["lr=0.05", "se=none", "depth=3", "width=2", "data_dir=None"]) == {
        "lr": 0.05, "se": "none", "depth": 3, "width": 2.0, "data_dir": None
    }
    with pytest.raises(UserError, match="unknown setting 'learning_rate'.*lr"):
        parse_overrides(["learning_rate=0.1"])
    with pytest.raises(UserError, match="depth"):
        parse_overrides(["depth=deep"])
    with pytest.raises(UserError, match="malformed"):
        parse_overrides(["lr"])


@pytest.mark.parametrize("bad,match", [
    ({"lr": 0.0}, "lr"), ({"resolution": 48}, "multiple of 32"), ({"se": "middle"}, "none, frontend"),
    ({"dataset": "mnist"}, "cifar10, cifar100"), ({"data_fraction": 0.0}, "data_fraction"),
])
def test_invalid_values_say_what_is_allowed(bad, match):
    with pytest.raises(UserError, match=match):
        Config(**bad)


def test_shipped_spaces_load():
    for path in ("spaces/naivenet128.py", "spaces/naivenet32_cifar10.py"):
        s = spaces.load(path)
        assert s.summary and s.kind.suggest is not None
        assert set(s.bind().reference_params()) >= {"lr", "weight_decay", "width", "depth", "se", "aug_strength"}
    assert spaces.load("spaces/naivenet128.py").defaults == Config(epochs=20, resolution=128, dataset="cifar100")


HEAD = "model = 'naivenet'\ndataset = 'cifar10'\n"


def write(tmp_path, text):
    path = tmp_path / "s.py"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text,match", [
    ("model = 'naivenet'\nlearning_rate = 0.1\n", "unknown setting 'learning_rate'"),
    ("model = 'naivenet'\ndef suggest(t:\n", "syntax error"),
    ("model = 'naivenet'\ndataset = 'cifar10'\nresolution = 100\n", "multiple of 32"),
    ("dataset = 'cifar10'\n", "missing required setting 'model'"),
    ("model = 'vgg'\ndataset = 'cifar10'\n", "unknown model 'vgg'; choose one of: .*naivenet"),
    (HEAD + "def suggest(t):\n    return {'lr': t.suggest_float('lr', 0.1, 0.01)}\n", "low <= high"),
    (HEAD + "def suggest(t):\n    return {'lr': t.suggest_float('lr', 0.05, 0.1)}\n", "include the setting's default"),
    (HEAD + "def suggest(t):\n    return {'speed': t.suggest_float('speed', 0.05, 0.1)}\n", "suggest"),
    (HEAD + "sampler = 'bayes'\n", "tpe, gp, random, grid"),
])
def test_bad_space_files_fail_on_load_with_one_line(tmp_path, text, match):
    with pytest.raises(UserError, match=match) as info:
        spaces.load(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_space_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        spaces.load(tmp_path / "nope.py")


def test_fixed_settings_are_not_sampled():
    import optuna

    s = spaces.load("spaces/naivenet32_cifar10.py")
    trial = optuna.create_study().ask()
    config = s.bind({"lr": 0.07, "epochs": 1}).config(trial)
    assert config.lr == 0.07 and config.epochs == 1
    assert "lr" not in trial.params and "weight_decay" in trial.params
