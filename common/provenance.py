"""Where a result came from: the code's git commit (with a dirty flag)."""
from __future__ import annotations

import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def git_commit(repo_dir: str | Path | None = None) -> str | None:
    """The git commit of the code, with a ``-dirty`` suffix for uncommitted changes to tracked files.

    Parameters
    ----------
    repo_dir : str or Path, optional
        Any folder inside the repository; defaults to the one holding this package.

    Returns
    -------
    str or None
        ``"<sha>"`` or ``"<sha>-dirty"``; None outside a git checkout or without git.
    """
    cwd = Path(repo_dir) if repo_dir else _REPO
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")
