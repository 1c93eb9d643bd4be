import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_checker():
    spec = importlib.util.spec_from_file_location(
        "check_core_imports", ROOT / "tests/check_core_imports.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_app_imports_no_qt_and_llama_only_in_worker():
    assert _load_checker().violations(ROOT) == []


def test_checker_catches_a_qt_import(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "bad.py").write_text("from PySide6 import QtCore\nimport llama_cpp\n")
    found = _load_checker().violations(tmp_path)
    assert any("PySide6" in line for line in found)
    assert any("llama_cpp outside the worker" in line for line in found)


def test_importing_the_core_loads_no_qt():
    # A fresh interpreter: importing every core module must not pull in Qt or llama_cpp.
    code = (
        "import sys, app.session, app.cli.common, app.engine.local, app.storage.store, app.metrics\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'ui', 'llama_cpp')]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
