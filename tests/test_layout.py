"""The house rule: which folder may import which (docs/architecture.md states it for people).

Layers, lowest first; a module imports from its own layer or lower ones only, and `engine` imports
no optuna at all, so the engine trains from configs and callbacks without knowing a study exists.
`reports` reads what studies stored and renders it: it imports only `store` and the shared leaves.
`bench` is imported by the command line alone, so benchmarks stay out of the product's import graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = {"study", "study.errors", "study.config", "study.paired"}  # leaves every layer may use
LAYERS = ["engine", "samplers", "store", "spaces", "search", "workflows", "bench", "cli"]
OWN_LIMITS = {"engine": ("optuna", "optuna_dashboard")}
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 300



def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "reports":
        return "reports"
    if parts[0] != "study" or module in SHARED:
        return None
    if len(parts) == 2 and parts[1] in ("cli", "__main__"):
        return "cli"
    return parts[1] if parts[1] in LAYERS else None


def _imports(path: Path) -> set[str]:
    """Every module `path` imports; `from study.engine import data` names study.engine.data."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            package = node.module == "study" or (node.module.count(".") == 1 and _layer(node.module) is not None
                                                  and node.module.split(".")[0] == "study")
            names |= {f"{node.module}.{a.name}" for a in node.names} if package else {node.module}
    return names


def _modules(root: Path = ROOT) -> list[Path]:
    return sorted(p for folder in ("study", "reports") for p in (root / folder).rglob("*.py"))


def _violations(root: Path = ROOT) -> set[tuple[str, str]]:
    found = set()
    for path in _modules(root):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        own = _layer(module)
        if own is None:
            continue
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in OWN_LIMITS.get(own, ())):
                found.add((module, name))
            other = _layer(name)
            if other is None or other == own:
                continue
            if own == "reports":
                if other != "store":
                    found.add((module, name))
            elif other == "reports" and own not in ("bench", "cli"):
                found.add((module, name))
            elif other != "reports" and LAYERS.index(other) > LAYERS.index(own):
                found.add((module, name))
    return found


def test_each_folder_imports_only_the_folders_below_it():
    found = _violations()
    new = sorted(found)
    assert not new, "imports against the rule in docs/architecture.md:\n" + "\n".join(f"{m} imports {n}" for m, n in new)


def test_the_rule_catches_an_engine_that_imports_optuna_or_a_report_that_imports_the_search(tmp_path):
    bad = {"study/engine/loop.py": "import optuna\nfrom study.config import Config\n",
           "study/store/record.py": "from study.search import runner\n",
           "reports/tables.py": "from study.search.progress import fmt\nfrom study.store import record\n",
           "study/search/runner.py": "from study.engine import train\nfrom study.store import record\n"}
    for name, text in bad.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _violations(tmp_path) == {("study.engine.loop", "optuna"), ("study.store.record", "study.search.runner"),
                                     ("reports.tables", "study.search.progress")}


def _too_long() -> set[str]:
    found = set()
    for path in _modules():
        name, source = str(path.relative_to(ROOT)), path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            found.add(name)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= MAX_FUNCTION_LINES:
                found.add(f"{name}:{node.name}")
    return found


def test_no_module_or_function_is_longer_than_the_house_limits():
    found = _too_long()
    limits = f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function"
    assert not found, f"{limits}: {sorted(found)}"


# The one module that may touch Optuna's private API, and what touching it looks like.
OPTUNA_INTERNALS = "study/store/optuna_internals.py"
PRIVATE_ATTRIBUTES = {"_storage", "_trial_id", "_heartbeat"}


def _private_optuna_uses(path: Path) -> list[str]:
    """Where `path` imports a private Optuna module or name, or reads a private Optuna attribute."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [f"{node.module or ''}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute):
            dotted, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                dotted.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name):
                dotted.append(inner.id)
            names = [".".join(reversed(dotted))]
            if node.attr in PRIVATE_ATTRIBUTES:
                found.append(f"line {node.lineno}: .{node.attr}")
                continue
        else:
            continue
        found += [f"line {node.lineno}: {n}" for n in names
                  if n.startswith("optuna.") and any(p.startswith("_") for p in n.split(".")[1:])]
    return found


def test_only_one_module_touches_optunas_private_api():
    found = {str(p.relative_to(ROOT)): uses for p in _modules()
             if str(p.relative_to(ROOT)) != OPTUNA_INTERNALS and (uses := _private_optuna_uses(p))}
    assert not found, f"Optuna's private API outside {OPTUNA_INTERNALS}: {found}"
    assert _private_optuna_uses(ROOT / OPTUNA_INTERNALS), "the check no longer sees the uses it is for"
