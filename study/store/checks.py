"""Whether a stored study is one of ours, and which of its stored attributes are malformed."""

from __future__ import annotations

import optuna

from study.errors import UserError
from study.store.record import Dataset, StudyInfo, TrialInfo
from study.store.typed import fits, square, typed


def malformed(study: optuna.Study) -> list[str]:
    """Every stored attribute of the study and its trials that is not of its field's type, as
    "trial 3: seconds is str "12.5", not float": readers leave each out, and reports say so."""
    bad = [f"study: {b}" for b in typed(StudyInfo, study.user_attrs)[1]]
    bad += [f"study: dataset: {b}" for b in typed(Dataset, study.user_attrs.get("dataset"))[1]]
    for t in study.get_trials(deepcopy=False):
        bad += [f"trial {t.number}: {b}" for b in typed(TrialInfo, t.user_attrs)[1]]
        matrix = t.user_attrs.get("confusion_matrix")
        if fits(matrix, list[list[int]]) and not square(matrix):
            bad.append(f"trial {t.number}: confusion_matrix is not square ({len(matrix)} rows of "
                       f"{sorted({len(r) for r in matrix})} entries)")
    return bad


def foreign(study: optuna.Study) -> str | None:
    """What kind of study `study` is where it is not one `python -m study run` (or `final`,
    `ablation-path`) writes, and so cannot be reported or retrained from; None where it is one."""
    directions = study.directions
    if len(directions) > 1:
        return f"a multi-objective Optuna study ({len(directions)} objectives)"
    if directions[0] != optuna.study.StudyDirection.MAXIMIZE:
        return "an Optuna study that minimizes its objective"
    return None  # a plain Optuna study that maximizes is read as far as it goes; `config` refuses to retrain it


def check_ours(study: optuna.Study, where: str, pick: str) -> None:
    """A one-line UserError where `study` is `foreign`: what it is and why it cannot be used."""
    what = foreign(study)
    if what is not None:
        raise UserError(f"study {study.study_name!r} in {where} is {what}: study reads only single-objective studies "
                        f"that maximize validation accuracy, as `python -m study run` writes them; {pick}")
