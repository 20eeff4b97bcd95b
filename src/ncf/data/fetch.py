"""Download, verify and extract MovieLens releases into a local cache, safely.

Layout under the cache (`$NCF_HOME`, default: the platform's user cache dir + `/ncf`):

    movielens/<name>/                 extracted files + `.ncf-complete` (JSON: source, checksum)
    movielens/.downloads/<name>/      the zip while it downloads (pooch: temp name, renamed when whole)
    movielens/.locks/<name>.lock      one process at a time per release
    mirror/<wheel>                    the ml-100k mirror wheel (kept, so a re-extract needs no network)

A folder without its completion marker is never used; it is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ncf._io import atomic_dir
from ncf.data.movielens import (MIRROR_MEMBERS, MIRROR_PACKAGE, MIRROR_SHA256, MIRROR_WHEEL, Release,
                                get_release)
from ncf.errors import DataError, DownloadError

MARKER = ".ncf-complete"
GROUPLENS_TIMEOUT = float(os.environ.get("NCF_GROUPLENS_TIMEOUT", "10"))


def ncf_home() -> Path:
    """The cache root: $NCF_HOME, else the platform's user cache directory + /ncf."""
    env = os.environ.get("NCF_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("ncf", appauthor=False))


def dataset_dir(name: str) -> Path:
    """Where release `name` is (or will be) extracted."""
    return ncf_home() / "movielens" / get_release(name).name


def is_fetched(name: str) -> bool:
    """True when the release is fully extracted in the cache."""
    return (dataset_dir(name) / MARKER).is_file()


def fetch_info(name: str) -> dict | None:
    """The completion record of a fetched release (source, checksum, files), or None."""
    marker = dataset_dir(name) / MARKER
    if not marker.is_file():
        return None
    with contextlib.suppress(ValueError, OSError):
        return json.loads(marker.read_text(encoding="utf-8"))
    return None


def fetch(name: str, *, force: bool = False, progress: bool = True, source: str = "auto",
          log=None) -> Path:
    """Make release `name` available in the cache and return its folder (a no-op when already there).

    source: "auto" (GroupLens, then for ml-100k the package-index mirror), "grouplens" or "mirror".
    `log(str)` receives one-line status messages (default: stderr).
    """
    release = get_release(name)
    say = log or (lambda msg: print(msg, file=sys.stderr))
    target = dataset_dir(release.name)
    if not force and (target / MARKER).is_file():
        return target
    from filelock import FileLock, Timeout

    lock_path = ncf_home() / "movielens" / ".locks" / f"{release.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock_path), timeout=float(os.environ.get("NCF_LOCK_TIMEOUT", "900"))):
            if not force and (target / MARKER).is_file():  # another process finished it meanwhile
                return target
            return _fetch_locked(release, target, progress, source, say)
    except Timeout:
        raise DownloadError(f"another process has held the lock {lock_path} for too long",
                            "wait for it to finish, or remove the lock file if no ncf process is running") from None


def _fetch_locked(release: Release, target: Path, progress: bool, source: str, say) -> Path:
    if source not in ("auto", "grouplens", "mirror"):
        raise DownloadError(f"unknown source '{source}'", "use auto, grouplens or mirror")
    has_mirror = release.name == "ml-100k"
    if source == "mirror" and not has_mirror:
        raise DownloadError(f"{release.name} has no mirror", "use --source grouplens")
    errors: list[str] = []
    if source in ("auto", "grouplens"):
        try:
            zip_path = download_grouplens(release, progress=progress, say=say)
        except DownloadError as exc:
            if source == "grouplens" or not has_mirror or _is_checksum_error(exc):
                raise
            errors.append(exc.one_line())
            reason = exc.message.split(": ", 1)[-1]
            say(f"GroupLens unreachable ({reason}); using the ml-100k mirror ({MIRROR_PACKAGE} wheel)")
        else:
            extract_release(zip_path, target, release, {"source": "grouplens", "url": release.url(),
                                                        "md5": _digest(zip_path, "md5")})
            with contextlib.suppress(OSError):
                zip_path.unlink()
            say(f"{release.name}: downloaded from GroupLens, verified, extracted to {target}")
            return target
    wheel = mirror_wheel(progress=progress, say=say)
    extract_mirror(wheel, target)
    say(f"{release.name}: taken from the mirror ({MIRROR_PACKAGE} wheel, sha256 verified), extracted to {target}")
    return target


def _is_checksum_error(exc: DownloadError) -> bool:
    return "checksum" in exc.message


# ----------------------------------------------------------------------------------------------- GroupLens
def published_md5(release: Release, timeout: float = GROUPLENS_TIMEOUT) -> str:
    """The md5 GroupLens publishes beside the zip (`<url>.md5`, "MD5 (x.zip) = hex" or "hex  x.zip")."""
    import requests

    url = release.md5_url()
    try:
        resp = requests.get(url, timeout=timeout)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise DownloadError(f"could not read the checksum {url}: {_net_reason(exc)}",
                            f"check the network, or download {release.zip_name} yourself and pass its path") from None
    found = re.search(r"\b([0-9a-fA-F]{32})\b", resp.text)
    if not found:
        raise DownloadError(f"{url} holds no md5", "download the zip yourself and pass its path")
    return found.group(1).lower()


def download_grouplens(release: Release, progress: bool = True, say=print) -> Path:
    """Download the release zip (progress bar), verify its md5 and return its path.

    A bad checksum removes the file and raises; an interrupted download leaves only a temp file, which the
    next call removes before starting again.
    """
    import pooch
    import requests

    md5 = release.md5 or published_md5(release)
    url = release.url()
    folder = ncf_home() / "movielens" / ".downloads" / release.name
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():  # leftovers of an interrupted download (we hold the lock)
        if stale.name != release.zip_name:
            _remove(stale)
    dest = folder / release.zip_name
    if dest.exists() and _digest(dest, "md5") != md5:
        _remove(dest)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=(GROUPLENS_TIMEOUT, 120))
    pooch.get_logger().setLevel("WARNING")  # we say what we download ourselves
    say(f"downloading {url}")
    try:
        path = pooch.retrieve(url, known_hash=f"md5:{md5}", fname=release.zip_name, path=folder,
                              downloader=downloader)
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise
        for stale in folder.iterdir():
            _remove(stale)
        raise DownloadError(f"checksum mismatch for {url}: expected md5 {md5}; the bad file was removed",
                            "the download was damaged or the server sent another file; run the command again") from None
    except (requests.RequestException, OSError) as exc:
        for stale in folder.iterdir():
            _remove(stale)
        raise DownloadError(f"could not download {url}: {_net_reason(exc)}",
                            f"check the network, or download {release.zip_name} yourself and pass its path "
                            f"(e.g. ncf data info ./{release.zip_name})") from None
    return Path(path)


def _net_reason(exc: BaseException) -> str:
    """A short network failure reason (requests' own messages run over several lines of pool details)."""
    import requests
    from urllib.parse import urlparse

    host = urlparse(getattr(getattr(exc, "request", None), "url", "") or "").hostname or "the server"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.Timeout):
        return f"no answer from {host} in time (ConnectionTimeout)"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect to {host} (ConnectionError)"
    return _short(exc)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (type(exc).__name__ + (": " + text if text else ""))[:160]


def _digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks by hashlib."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def extract_release(zip_path: Path, target: Path, release: Release | None, record: dict) -> Path:
    """Extract a release zip into `target` atomically (top folder stripped), then write the marker."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad} is damaged")
            with atomic_dir(target, overwrite=True) as tmp:
                for m in members:
                    rel = _strip_top(m.filename)
                    if rel is None:
                        continue
                    out = tmp / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                if release is not None and not (tmp / release.ratings_file).is_file():
                    raise DataError(f"{zip_path} holds no {release.ratings_file}",
                                    f"is this really {release.name}.zip?")
                record = dict(record, files=sorted(p.name for p in tmp.iterdir()), time=int(time.time()))
                (tmp / MARKER).write_text(json.dumps(record, indent=1), encoding="utf-8")
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise DataError(f"{zip_path} is not a valid zip ({_short(exc)})",
                        "download it again; the file is damaged or incomplete") from None
    return target


def _strip_top(name: str) -> str | None:
    """Member path without the release's top folder; None for unsafe or hidden entries."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or parts[0].startswith("__MACOSX"):
        return None
    if len(parts) > 1:
        parts = parts[1:]
    return "/".join(parts)


# ----------------------------------------------------------------------------------------------- mirror
def mirror_wheel(progress: bool = True, say=print) -> Path:
    """The ml-100k mirror wheel, from the cache or downloaded with pip (not installed), sha256-verified."""
    folder = ncf_home() / "mirror"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / MIRROR_WHEEL
    if wheel.is_file():
        if _digest(wheel, "sha256") == MIRROR_SHA256:
            return wheel
        _remove(wheel)
    local = os.environ.get("NCF_MIRROR_WHEEL")  # a copy of the wheel on disk (offline machines)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=folder) as tmp:
        if local:
            got = Path(local).expanduser()
            if not got.is_file():
                raise DownloadError(f"NCF_MIRROR_WHEEL={local} does not exist", "point it at the recbole wheel")
        else:
            say(f"downloading the ml-100k mirror ({MIRROR_PACKAGE} wheel, ~2 MB) with pip")
            cmd = [sys.executable, "-m", "pip", "download", MIRROR_PACKAGE, "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-d", tmp]
            if not progress:
                cmd.append("-q")
            try:
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      timeout=float(os.environ.get("NCF_PIP_TIMEOUT", "300")))
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise DownloadError(f"pip download of the mirror failed: {_short(exc)}",
                                    "check the network, or download ml-100k.zip yourself and pass its path") from None
            if proc.returncode != 0:
                last = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1:] or ["(no output)"]
                raise DownloadError(f"pip download of the mirror failed: {last[0][:200]}",
                                    "check the network, or download ml-100k.zip yourself and pass its path")
            got = Path(tmp) / MIRROR_WHEEL
            if not got.is_file():
                raise DownloadError("pip did not produce the mirror wheel", "run the command again")
        digest = _digest(got, "sha256")
        if digest != MIRROR_SHA256:
            if not local:
                _remove(got)
            raise DownloadError(f"checksum mismatch for the mirror wheel: sha256 {digest[:16]}..., expected "
                                f"{MIRROR_SHA256[:16]}...; the bad file was removed", "run the command again")
        part = folder / f".{MIRROR_WHEEL}.{os.getpid()}.part"
        shutil.copyfile(got, part)
        os.replace(part, wheel)
    return wheel


def extract_mirror(wheel: Path, target: Path) -> Path:
    """Copy the ml-100k members of the mirror wheel into `target` atomically, with the marker."""
    try:
        with zipfile.ZipFile(wheel) as zf, atomic_dir(target, overwrite=True) as tmp:
            for short, member in MIRROR_MEMBERS.items():
                (tmp / short).write_bytes(zf.read(member))
            record = {"source": "mirror", "package": MIRROR_PACKAGE, "sha256": MIRROR_SHA256,
                      "files": sorted(MIRROR_MEMBERS), "time": int(time.time())}
            (tmp / MARKER).write_text(json.dumps(record, indent=1), encoding="utf-8")
    except (zipfile.BadZipFile, KeyError, EOFError) as exc:
        _remove(wheel)
        raise DownloadError(f"the mirror wheel is damaged ({_short(exc)}); it was removed",
                            "run the command again") from None
    return target
