"""List the registered methods: ``python -m methods [--markdown]``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from methods.core.registry import list_methods

TESTS = Path(__file__).resolve().parents[1] / "tests"


def tests_naming(name: str) -> list[str]:
    """The test files that name the method (besides the registry-parametrized ones)."""
    pattern = re.compile(rf"[\"']{re.escape(name)}[\"']")
    generic = {"test_registry.py", "test_sharing.py", "test_api.py", "test_conditions.py"}
    return sorted(p.name for p in TESTS.glob("test_*.py") if p.name not in generic and pattern.search(p.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table with the tests naming each method")
    args = parser.parse_args()
    if args.markdown:
        print("| tab | method | paper | year | strategy | tests |")
        print("|---|---|---|---|---|---|")
    for m in list_methods():
        if args.markdown:
            tests = ", ".join(f"`tests/{t}`" for t in tests_naming(m.name)) or "—"
            print(
                f"| {m.condition.value} | {m.label} (`{m.name}`) | [{m.paper.title}]({m.paper.url}) | "
                f"{m.paper.year} | {m.strategy.value} | {tests} |"
            )
        else:
            print(f"{m.condition.value:<13} {m.name:<24} {m.paper.year}  {m.strategy.value:<22} {m.label}")


if __name__ == "__main__":
    main()
