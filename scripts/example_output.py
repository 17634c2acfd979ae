"""Rebuild docs/example/ from a finished default run: the verdict table, summary.csv, two
figures and a screenshot of the report, so that a reader sees the output without running it.

    .venv/bin/snakemake --cores 2 && .venv/bin/python scripts/example_output.py

The screenshot needs a headless Chromium (Debian: ``apt-get install chromium-headless-shell``;
any of the names in BROWSERS on the PATH); ``--no-screenshot`` keeps the one already there.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = ["ap_by_variant.png", "pr_curves.png"]
BROWSERS = ["chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"]


class TableAfterHeading(HTMLParser):
    """The cells of the first ``<table>`` after an ``<h2>`` whose text is ``heading``."""

    def __init__(self, heading: str) -> None:
        super().__init__()
        self.heading, self.text, self.rows = heading, "", []
        self.state = "seek"  # seek -> heading -> table -> done
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "h2" and self.state == "seek":
            self.text = ""
        elif tag == "table" and self.state == "heading":
            self.state = "table"
        elif tag == "tr" and self.state == "table":
            self.rows.append([])
        elif tag in ("td", "th") and self.state == "table":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self.state == "seek" and self.text.strip() == self.heading:
            self.state = "heading"
        elif tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table" and self.state == "table":
            self.state = "done"

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        elif self.state == "seek":
            self.text += data


def markdown_table(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as a Markdown table, ``|`` escaped."""
    cells = [[c.replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells[1:]]) + "\n"


def screenshot(report: Path, out: Path) -> None:
    """A 1280-pixel-wide PNG of the report's first screens, by a headless Chromium."""
    browser = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if browser is None:
        raise SystemExit(f"no headless Chromium on the PATH (tried {', '.join(BROWSERS)}); "
                         "install one (Debian: apt-get install chromium-headless-shell) or "
                         "pass --no-screenshot")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={out}", "--window-size=1280,1800",
                    report.resolve().as_uri()], check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO / "results",
                        help="the finished run's results folder")
    parser.add_argument("--out", type=Path, default=REPO / "docs/example")
    parser.add_argument("--no-screenshot", action="store_true")
    args = parser.parse_args()
    report = args.results / "report/index.html"
    if not report.is_file():
        raise SystemExit(f"{report}: no report; run the workflow first (snakemake --cores 2)")
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.results / "summary/summary.csv", args.out / "summary.csv")
    for name in FIGURES:
        shutil.copyfile(args.results / "figures" / name, args.out / name)
    table = TableAfterHeading("Verdict")
    table.feed(report.read_text(encoding="utf-8"))
    verdict = (markdown_table(table.rows) if table.rows else
               "No verdict table in this report (the configuration names no matched arm).\n")
    if not args.no_screenshot:
        screenshot(report, args.out / "report.png")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                            capture_output=True).stdout.strip() or "unknown"
    intro = textwrap.fill(
        "For readers who want to see what the workflow produces before running it. Made from "
        f"the default configuration's run (embedded data only) at commit `{commit}` on "
        f"{datetime.date.today().isoformat()}; rebuilt by `python scripts/example_output.py` "
        "after `snakemake --cores 2`. The embedded data are tiny (50 LFW faces of 25x25 "
        "pixels, networks trained for minutes on a CPU): these numbers show the pipeline "
        "working; they are not evidence about the claim.", 96)
    (args.out / "README.md").write_text(
        f"# Example output of the default run\n\n{intro}\n\n"
        "- [summary.csv](summary.csv): every detector x test set x variant, AP and speed\n"
        + "".join(f"- [{name}]({name})\n" for name in FIGURES)
        + "- [report.png](report.png): the first screens of `results/report/index.html`\n\n"
        "## Verdict table\n\n" + verdict, encoding="utf-8")
    print(f"wrote {args.out}: {', '.join(sorted(p.name for p in args.out.iterdir()))}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
