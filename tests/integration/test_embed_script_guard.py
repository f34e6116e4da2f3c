"""`embed_text_file` called from a user's script: its worker processes import the script
again, so a call outside `if __name__ == "__main__":` is refused in one line, not run again in
every worker; under the guard it works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
from ssvae.adapters.text.embed_file import embed_text_file
from ssvae.domain.errors import SsvaeError

def run():
    try:
        summary = embed_text_file(
            Path(sys.argv[1]), Path(sys.argv[2]), embedder_dim=8, chunk_rows=64, workers=2
        )
    except SsvaeError as error:
        print("refused:", error)
    else:
        print("wrote", summary.rows)
"""


def run_script(tmp_path: Path, name: str, body: str) -> subprocess.CompletedProcess[str]:
    lines = [f"{i},event {i % 7} on host {i % 13} took {i % 97} ms" for i in range(300)]
    source = tmp_path / "m.csv"
    source.write_text("id,text\n" + "\n".join(lines) + "\n", encoding="utf-8")
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(SCRIPT) + body)
    out = tmp_path / f"{name}.parquet"
    return subprocess.run(
        [sys.executable, str(script), str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_script_without_the_main_guard_is_told_how_to_fix_it_in_one_line(
    tmp_path: Path,
) -> None:
    result = run_script(tmp_path, "unguarded", "run()\n")
    assert result.stdout.startswith("refused: a script that calls embed_text_file must call it ")
    assert result.stdout.count("\n") == 1 and 'if __name__ == "__main__":' in result.stdout
    assert "Traceback" not in result.stderr, result.stderr  # the workers end quietly
    assert not (tmp_path / "unguarded.parquet").exists()


def test_a_script_with_the_main_guard_embeds_with_its_workers(tmp_path: Path) -> None:
    result = run_script(tmp_path, "guarded", 'if __name__ == "__main__":\n    run()\n')
    assert result.stdout == "wrote 300\n", result.stdout + result.stderr
    assert (tmp_path / "guarded.parquet").is_file()
