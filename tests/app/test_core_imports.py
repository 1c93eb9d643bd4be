"""The layer rules: import-linter's contracts (pyproject.toml) hold, and they bite.

`make test` runs `lint-imports` on the tree; here the same contracts are run
against a small tree that breaks each of them, so a contract that stopped
matching anything would fail this test rather than pass silently.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))


def _contracts_config(tmp_path: Path) -> Path:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = [
        "[tool.importlinter]",
        'root_packages = ["app", "ui"]',
        "include_external_packages = true",
    ]
    for contract in config["contracts"]:
        lines.append("[[tool.importlinter.contracts]]")
        for key, value in contract.items():
            lines.append(f"{key} = {value!r}".replace("'", '"'))
        if "ignore_imports" in contract:
            # The small trees here lack most modules the real exceptions name.
            lines.append('unmatched_ignore_imports_alerting = "none"')
    path = tmp_path / "contracts.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def _lint(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tree = _tree(tmp_path / "src", {"app/__init__.py": "", "ui/__init__.py": "", **files})
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", str(_contracts_config(tmp_path))],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )


def test_the_tree_keeps_every_contract():
    result = subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


def test_a_tree_that_follows_the_rules_passes(tmp_path):
    result = _lint(
        tmp_path,
        {
            "app/engine/__init__.py": "",
            "app/engine/worker.py": "import llama_cpp\n",
            "ui/window.py": "import PySide6\nimport app.engine\n",
        },
    )
    assert result.returncode == 0, result.stdout


def test_each_contract_catches_its_violation(tmp_path):
    result = _lint(
        tmp_path,
        {
            "app/engine/__init__.py": "",
            "app/engine/worker.py": "import llama_cpp\n",
            "app/qt_in_core.py": "import PySide6\n",
            "app/up_a_layer.py": "import ui\n",
            "app/engine/local.py": "import llama_cpp\n",
        },
    )
    assert result.returncode != 0
    out = result.stdout
    assert "app.qt_in_core -> PySide6" in out
    assert "app.up_a_layer -> ui" in out
    assert "app.engine.local -> llama_cpp" in out
    assert "3 broken" in out


def test_importing_the_core_loads_no_qt():
    # A fresh interpreter: importing every core module must not pull in Qt or llama_cpp.
    code = (
        "import sys, app.session, app.cli.common, app.engine.local, app.storage.store, app.metrics\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'ui', 'llama_cpp')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_cycles():
    """No module of app/ or ui/ imports, however indirectly, a module that imports it."""
    import grimp  # comes with import-linter

    graph = grimp.build_graph("app", "ui")
    cycles = sorted(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    )
    assert cycles == []
