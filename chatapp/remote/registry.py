"""Remote models: names for models on OpenAI-compatible servers, kept in
``<data dir>/remotes.json``. The API key itself is never written: only the name of the
environment variable that holds it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.paths import data_dir

FILE = "remotes.json"


class RemoteError(Exception):
    """A remote that cannot be added, found or reached; the message is one line."""


@dataclass(frozen=True)
class Remote:
    name: str  # what the user types: --model NAME, /model NAME
    url: str  # the API base, e.g. http://127.0.0.1:8080/v1
    model: str = ""  # the server's model id ("" lets the server choose)
    api_key_env: str = ""  # the variable holding the bearer key ("" sends none)

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise RemoteError(
                f"{self.name} needs an API key in ${self.api_key_env}, which is empty or unset"
            )
        return key


def normalise_url(url: str) -> str:
    """``http(s)://host[:port][/path]`` with ``/v1`` at the end (what every server here
    serves under), no trailing slash."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise RemoteError(f"{url!r} is not an http(s) URL (e.g. http://127.0.0.1:8080/v1)")
    return url if url.endswith("/v1") else url + "/v1"


def _path() -> Path:
    return data_dir() / FILE


def list_remotes() -> list[Remote]:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise RemoteError(f"{_path()} cannot be read ({e}); fix or delete it") from None
    if not isinstance(data, dict):
        raise RemoteError(f"{_path()} is not a JSON object; fix or delete it")
    out = []
    for name, entry in sorted(data.items()):
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            out.append(
                Remote(
                    name,
                    entry["url"],
                    str(entry.get("model") or ""),
                    str(entry.get("api_key_env") or ""),
                )
            )
    return out


def find_remote(name: str) -> Remote | None:
    """The remote called ``name``, or None (also when the file is unreadable: a local
    name must still work)."""
    try:
        return next((r for r in list_remotes() if r.name == name), None)
    except RemoteError:
        return None


def _write(remotes: list[Remote]) -> None:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {r.name: {k: v for k, v in asdict(r).items() if k != "name"} for r in remotes}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def add_remote(remote: Remote, *, force: bool = False) -> None:
    remotes = [r for r in list_remotes() if r.name != remote.name]
    if not force and find_remote(remote.name) is not None:
        raise RemoteError(f"a remote called {remote.name!r} exists; pass --force to replace it")
    _write([*remotes, remote])


def remove_remote(name: str) -> None:
    remotes = list_remotes()
    if not any(r.name == name for r in remotes):
        known = ", ".join(r.name for r in remotes) or "none"
        raise RemoteError(f"no remote called {name!r} (remotes: {known})")
    _write([r for r in remotes if r.name != name])
