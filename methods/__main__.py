"""The methods' command line.

python -m methods [--markdown]          list the registered methods (a Markdown table with their tests)
python -m methods prefetch [--tabs ...]  download the real weights the tabs use (see methods.core.prefetch)
python -m methods build-full [...]       write the full-size random-weight profile (see methods.core.fullsize)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from methods.core.registry import list_methods

TESTS = Path(__file__).resolve().parents[1] / "tests"


def tests_naming(name: str) -> list[str]:
    """The test files that name the method (besides the registry-parametrized ones)."""
    pattern = re.compile(rf"[\"']{re.escape(name)}[\"']")
    generic = {"test_registry.py", "test_sharing.py", "test_api.py", "test_conditions.py"}
    return sorted(p.name for p in TESTS.glob("test_*.py") if p.name not in generic and pattern.search(p.read_text()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "prefetch":
        from methods.core import prefetch

        return prefetch.main(argv[1:])
    if argv and argv[0] == "build-full":
        from methods.core import fullsize

        return fullsize.main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table with the tests naming each method")
    args = parser.parse_args(argv)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
