"""What the user pointed at → the files to read, each with its kind.

Paths may be files, folders (searched recursively, hidden folders such as ``.ipynb_checkpoints``
left out), globs (``logs/**/*.jsonl``) or URLs of an fsspec filesystem (``s3://bucket/team/``,
where s3fs is installed). A file's kind comes from its name and, for JSON lines, its first line:
a spend-log line has an ``event``, a line of a JSONL export has ``window_id`` and ``kind``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable

from ..errors import NbcostError

__all__ = ["Input", "discover", "filesystem", "is_jsonl_export", "is_spend_log", "open_binary",
           "read_bytes"]

LOG, NOTEBOOK = "log", "notebook"
EXPORT_CSV, EXPORT_JSONL, EXPORT_PARQUET = "export-csv", "export-jsonl", "export-parquet"
_BY_SUFFIX = {".ipynb": NOTEBOOK, ".csv": EXPORT_CSV, ".parquet": EXPORT_PARQUET,
              ".pq": EXPORT_PARQUET}
_JSON_LINES = (".jsonl", ".ndjson", ".json")
_IN_FOLDERS = {".jsonl", ".ndjson", ".csv", ".parquet", ".pq", ".ipynb"}
_PEEK_BYTES = 1 << 13  # a log's first line (session_start) is well under 8 KiB


@dataclass(frozen=True, slots=True)
class Input:
    """One file to read: ``url`` is what DuckDB and fsspec open (a local path or a URL)."""

    url: str
    kind: str

    @property
    def remote(self) -> bool:
        return "://" in self.url


def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path inside it; a clear error when the
    package that reads it is missing (``s3://`` needs s3fs)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        protocol = url.split("://", 1)[0]
        package = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
                   "abfs": "adlfs"}.get(protocol, f"the fsspec filesystem for {protocol}://")
        raise NbcostError(f"reading {url} needs {package}: pip install {package} ({exc})") from None


@contextlib.contextmanager
def _reaching(url: str):
    """Around asking an S3-like store about ``url``: missing credentials or an endpoint that
    cannot be reached are one :class:`NbcostError` that says what to do."""
    try:
        yield
    except Exception as exc:
        boto = sys.modules.get("botocore.exceptions")  # loaded by whatever raised it
        if boto is None or not isinstance(exc, boto.BotoCoreError):
            raise
        if isinstance(exc, (boto.NoCredentialsError, boto.PartialCredentialsError,
                            boto.CredentialRetrievalError)):
            raise NbcostError(f"cannot read {url}: no AWS credentials ({exc}); set "
                              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
                              "and try again") from None
        if isinstance(exc, (boto.ConnectionError, boto.HTTPClientError)):
            raise NbcostError(f"cannot read {url}: cannot reach the S3 endpoint ({exc}); check "
                              "the network, and AWS_ENDPOINT_URL if you set it") from None
        raise NbcostError(f"cannot read {url}: {exc}") from None


def read_bytes(url: str, limit: int | None = None) -> bytes:
    """The file's bytes; ``ValueError`` when it holds more than ``limit``."""
    with open_binary(url) as src:
        data = src.read() if limit is None else src.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise ValueError(f"larger than {limit >> 20} MB")
    return data


def open_binary(url: str) -> IO[bytes]:
    """``url`` open for reading bytes (a local path or an fsspec URL)."""
    if not _is_url(url):
        return open(url, "rb")
    fs, path = filesystem(url)
    return fs.open(path, "rb")


def local_problem(path: str) -> str | None:
    """Why a local file cannot be read as input, or None: a FIFO would block the reader for
    ever and /dev/zero never ends, so only regular files are read."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a folder"
                    if stat.S_ISDIR(mode) else "not a file")
            return f"{kind}, not a regular file: skipped"
        with open(path, "rb"):
            return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"


def _peek(url: str) -> bytes:
    if not _is_url(url):
        with open(url, "rb") as src:
            return src.read(_PEEK_BYTES)
    fs, path = filesystem(url)
    with fs.open(path, "rb") as src:
        return src.read(_PEEK_BYTES)


def _json_lines_kind(url: str) -> str:
    """A spend log or a JSONL export, by the first line that parses (a log by default: its
    damaged lines are then counted like any other)."""
    lines = _peek(url).splitlines()
    if len(lines) > 1:
        lines.pop()  # the last may be cut short by the peek
    first = _first_object(lines)
    if first is not None and "event" not in first and "window_id" in first and "kind" in first:
        return EXPORT_JSONL
    return LOG


def _first_object(lines: list[bytes]) -> dict | None:
    """The first of ``lines`` that is a JSON object, or None."""
    for line in lines:
        try:
            first = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(first, dict):
            return first
    return None


def is_jsonl_export(path: str | os.PathLike) -> bool:
    """Whether the local JSON-lines file at ``path`` is an nbcost export (one row per window),
    not a spend log. Only a regular file is opened (a FIFO would block)."""
    try:
        return os.path.isfile(path) and _json_lines_kind(os.fspath(path)) == EXPORT_JSONL
    except OSError:
        return False


def is_spend_log(path: str | os.PathLike) -> bool:
    """Whether the local file at ``path`` is a spend log: its first JSON object has an
    ``event``. A file that cannot be read is not one."""
    try:
        if not os.path.isfile(path):  # (a FIFO would block)
            return False
        lines = _peek(os.fspath(path)).splitlines()
    except OSError:
        return False
    first = _first_object(lines)
    return first is not None and isinstance(first.get("event"), str)


def _kind_by_name(url: str) -> str | None:
    suffix = os.path.splitext(url.rstrip("/"))[1].lower()
    return suffix if suffix in _IN_FOLDERS else None


def _kind(url: str, named: bool) -> str | None:
    suffix = os.path.splitext(url.rstrip("/"))[1].lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if suffix in _JSON_LINES and (named or suffix != ".json"):
        return _json_lines_kind(url)
    return LOG if named else None  # a file named on the command line is read as a log


def _local_files(path: Path) -> Iterable[str]:
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in _IN_FOLDERS:
                yield os.path.join(root, name)


def _remote(url: str) -> list[tuple[str, bool]]:
    fs, path = filesystem(url)
    protocol = url.split("://", 1)[0]
    if glob.has_magic(path):
        found = [(p, False) for p in sorted(fs.glob(path))]
    elif fs.isdir(path):
        found = [(p, False) for p in sorted(fs.find(path))
                 if not any(part.startswith(".") for part in p[len(path):].split("/"))
                 and os.path.splitext(p)[1].lower() in _IN_FOLDERS]
    elif fs.exists(path):
        found = [(path, True)]
    else:
        raise NbcostError(f"nothing at {url}")
    return [(f"{protocol}://{p}", named) for p, named in found]


def discover(paths: Iterable[str | os.PathLike], skipped: Any = None) -> list[Input]:
    """Every file to read under ``paths``, each once, in a stable order. A local file that is
    not a readable regular file (a FIFO, a device, a symlink loop, no permission) is counted
    in ``skipped`` (a :class:`~nbcost.report.checks.Skipped`) and left out."""
    seen: dict[str, Input] = {}
    refused: set[str] = set()
    for given in paths:
        text = os.fspath(given)
        if _is_url(text):
            with _reaching(text):
                candidates = _remote(text)
        else:
            text = text.removeprefix("file://")
            if glob.has_magic(text):
                matches = sorted(glob.glob(text, recursive=True))
                if not matches:
                    raise NbcostError(f"no file matches {text}")
                candidates = []
                for match in matches:
                    candidates += ([(f, False) for f in _local_files(Path(match))]
                                   if os.path.isdir(match) else [(match, False)])
            elif os.path.isdir(text):
                candidates = [(f, False) for f in _local_files(Path(text))]
            elif os.path.exists(text) or os.path.islink(text):
                candidates = [(text, True)]
            else:
                raise NbcostError(f"no spend log at {text}, nor an export or notebook: give files, "
                                  f"folders, globs or s3:// URLs")
        for url, named in candidates:
            if url in seen or url in refused:
                continue
            if not _is_url(url) and (problem := local_problem(url)) is not None:
                refused.add(url)
                if skipped is not None and (named or _kind_by_name(url) is not None):
                    skipped.read("files", 1)
                    skipped.skip("files", url, problem)
                continue
            kind = _kind(url, named)
            if kind is not None:
                seen[url] = Input(url, kind)
    return list(seen.values())
