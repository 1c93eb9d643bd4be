"""Fails when anything in app/ imports Qt, pyqtgraph or ui, or imports llama_cpp outside
the worker. Run by `make test` and by tests/app/test_core_imports.py."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "ui")
LLAMA_ALLOWED = {Path("app/engine/worker.py")}


def violations(root: Path) -> list[str]:
    found = []
    for path in sorted((root / "app").rglob("*.py")):
        rel = path.relative_to(root)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN:
                    found.append(f"{rel}:{node.lineno}: imports {name}")
                if top == "llama_cpp" and rel not in LLAMA_ALLOWED:
                    found.append(f"{rel}:{node.lineno}: imports llama_cpp outside the worker")
    return found


def main() -> int:
    problems = violations(Path(__file__).resolve().parent.parent)
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print("app/ imports no Qt, pyqtgraph or ui; llama_cpp only in the worker")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
