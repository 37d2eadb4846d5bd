"""Weights by URL or Hugging Face Hub reference, downloaded once into a local cache.

``pretrained=`` (and ``model.pretrained`` in a config, ``offnet weights check``) accepts, besides a local
file:

* ``https://…`` / ``http://…`` / ``file://…`` URLs, fetched with ``urllib`` into
  ``CACHE/weights/<16 hex digits of the URL's sha256>/<file name>``;
* ``hf-hub:owner/repo[@revision][/path/in/repo]`` (default file ``pytorch_model.bin``), fetched with
  ``huggingface_hub`` (an optional extra: ``pip install 'offnet[hub]'``) into ``CACHE/hf``.

``CACHE`` is ``$OFFNET_CACHE``, else ``~/.cache/offnet``. A reference may end in ``#sha256=<64 hex digits>``:
the file must have that SHA-256, checked after download and on every later use. Without it, the SHA-256 of
the first download is recorded beside the file (``<file>.sha256``) and a cached file that no longer
matches it (damaged, half-overwritten) is downloaded again; files from ``download.pytorch.org`` carry the
first digits of their SHA-256 in their name (``resnet50-0676ba61.pth``) and are checked against them, as
``torch.hub`` does. Downloads are written atomically: an interrupted or refused download leaves nothing
in the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._optional import require
from .fileio import atomic_write_text, atomic_writer

__all__ = ["CACHE_ENV", "HF_DEFAULT_FILE", "DownloadError", "HubRef", "cache_dir", "is_remote", "parse_hf_ref",
           "resolve_weights", "sha256_file"]

log = logging.getLogger(__name__)

CACHE_ENV = "OFFNET_CACHE"
HF_PREFIX = "hf-hub:"
HF_DEFAULT_FILE = "pytorch_model.bin"
_URL_SCHEMES = ("https", "http", "file")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")  # torch.hub convention: name-<sha256 prefix>.pth
_NAME_HASH_HOSTS = ("download.pytorch.org",)
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A weights file cannot be fetched or fails its checksum; the message names the reference."""


@dataclass(frozen=True)
class HubRef:
    """A parsed ``hf-hub:owner/repo[@revision][/file]`` reference."""

    repo_id: str
    filename: str
    revision: str | None = None


def cache_dir() -> Path:
    """``$OFFNET_CACHE`` if set, else ``~/.cache/offnet``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "offnet"


def is_remote(ref: str | Path) -> bool:
    """True for a URL or ``hf-hub:`` reference, False for a local path."""
    if isinstance(ref, Path):
        return False
    return ref.startswith(HF_PREFIX) or urllib.parse.urlsplit(ref).scheme in _URL_SCHEMES


def _split_sha(ref: str) -> tuple[str, str | None]:
    """``(reference, expected sha256 or None)`` from ``REF#sha256=HEX``."""
    base, sep, fragment = ref.partition("#")
    if not sep:
        return ref, None
    key, _, value = fragment.partition("=")
    value = value.strip().lower()
    if key != "sha256" or not _SHA256.match(value):
        raise ValueError(f"{ref!r}: the part after '#' must be sha256=<64 hex digits> (the file's SHA-256), got "
                         f"{fragment!r}")
    return base, value


def parse_hf_ref(ref: str) -> HubRef:
    """``hf-hub:owner/repo[@revision][/path/in/repo]`` → :class:`HubRef` (``ValueError`` naming the form)."""
    if not ref.startswith(HF_PREFIX):
        raise ValueError(f"{ref!r} is not a Hugging Face Hub reference (hf-hub:owner/repo[/file])")
    body = ref[len(HF_PREFIX):].strip("/")
    parts = body.split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ValueError(f"{ref!r}: expected hf-hub:owner/repo[@revision][/path/in/repo], e.g. "
                         f"hf-hub:timm/resnet50.a1_in1k/{HF_DEFAULT_FILE}")
    owner, repo = parts[0], parts[1]
    revision = None
    if "@" in repo:
        repo, _, revision = repo.partition("@")
        if not repo or not revision:
            raise ValueError(f"{ref!r}: a revision is written owner/repo@revision")
    filename = "/".join(parts[2:]) or HF_DEFAULT_FILE
    if any(p in ("", ".", "..") for p in filename.split("/")):
        raise ValueError(f"{ref!r}: the file path inside the repository must not contain empty, '.' or '..' parts")
    return HubRef(repo_id=f"{owner}/{repo}", filename=filename, revision=revision)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _name_hash(url: str) -> str | None:
    """The SHA-256 prefix a download.pytorch.org file carries in its name (``resnet50-0676ba61.pth``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in _NAME_HASH_HOSTS:
        return None
    match = _NAME_HASH.search(parts.path.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def _check(digest: str, *, expected: str | None, prefix: str | None) -> str | None:
    """Why ``digest`` is wrong, or None."""
    if expected is not None and digest != expected:
        return f"its SHA-256 is {digest}, not the expected {expected}"
    if prefix is not None and not digest.startswith(prefix):
        return f"its SHA-256 {digest} does not start with {prefix}, the digits in its file name"
    return None


def _url_target(url: str, root: Path) -> Path:
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]) or "weights.pth"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "weights.pth"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return root / "weights" / key / name


def _blocks(response, url: str, timeout: float):
    """The response body in blocks; read failures become :class:`DownloadError` (not an ``OSError``, so that
    the atomic writer does not report them as a failure to write), and so does a body shorter than its
    announced ``Content-Length``."""
    announced = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    received = 0
    while True:
        try:
            block = response.read(_CHUNK)
        except TimeoutError:
            raise DownloadError(f"cannot download {url}: no data within {timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:  # reset connection, …
            raise DownloadError(f"cannot download {url}: the transfer broke off ({type(exc).__name__}: {exc})"
                                ) from None
        if not block:
            break
        received += len(block)
        yield block
    if announced is not None and announced.isdigit() and received < int(announced):
        raise DownloadError(f"cannot download {url}: the transfer broke off after {received} of {announced} bytes")


def _download(url: str, target: Path, *, expected: str | None, prefix: str | None, timeout: float) -> str:
    """Fetch ``url`` into ``target`` atomically; return its SHA-256 (``DownloadError`` if it fails its check)."""
    log.info("downloading %s to %s", url, target)
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot download {url}: {exc.reason}; check the address and the network") from None
    except TimeoutError:
        raise DownloadError(f"cannot download {url}: no answer within {timeout:g} s") from None
    digest = hashlib.sha256()
    with response, atomic_writer(target, "wb") as out:
        for block in _blocks(response, url, timeout):
            digest.update(block)
            out.write(block)
        why = _check(digest.hexdigest(), expected=expected, prefix=prefix)
        if why:
            raise DownloadError(f"downloaded {url}, but {why}; the file was not kept (check the URL and the "
                                "#sha256= value)")
    return digest.hexdigest()


def _fetch_url(url: str, expected: str | None, root: Path, timeout: float) -> Path:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in _URL_SCHEMES:
        raise ValueError(f"{url!r}: only {', '.join(s + '://' for s in _URL_SCHEMES)} URLs are fetched")
    target = _url_target(url, root)
    record = target.with_name(target.name + ".sha256")
    prefix = _name_hash(url)
    if target.is_file():
        digest = sha256_file(target)
        recorded = record.read_text().split()[0] if record.is_file() else None
        why = _check(digest, expected=expected or recorded, prefix=prefix)
        if why is None:
            return target
        log.warning("cached %s does not match (%s); downloading %s again", target, why, url)
    digest = _download(url, target, expected=expected, prefix=prefix, timeout=timeout)
    atomic_write_text(record, f"{digest}  {url}\n")
    return target


def _fetch_hf(ref: str, expected: str | None, root: Path) -> Path:
    hub_ref = parse_hf_ref(ref)
    hub = require("huggingface_hub", extra="hub", purpose=f"pretrained={ref!r}")
    try:
        path = Path(hub.hf_hub_download(repo_id=hub_ref.repo_id, filename=hub_ref.filename,
                                        revision=hub_ref.revision, cache_dir=str(root / "hf")))
    except Exception as exc:  # huggingface_hub raises its own HTTP / not-found / offline errors
        raise DownloadError(f"cannot fetch {hub_ref.filename} from the Hugging Face Hub repository "
                            f"{hub_ref.repo_id} ({ref}): {type(exc).__name__}: {exc}") from None
    if expected is not None:
        why = _check(sha256_file(path), expected=expected, prefix=None)
        if why:
            raise DownloadError(f"{ref}: {why}")
    return path


def resolve_weights(ref: str | Path, *, cache: str | Path | None = None, timeout: float = 60.0) -> Path:
    """The local file of a weights reference: a local path as it is, a URL or hub reference downloaded once.

    Raises ``ValueError`` for a malformed reference, :class:`DownloadError` when fetching or
    the checksum fails, and :class:`~offnet._optional.MissingDependency` for ``hf-hub:`` without
    ``huggingface_hub``.
    """
    if not is_remote(ref):
        return Path(ref)
    root = Path(cache) if cache is not None else cache_dir()
    base, expected = _split_sha(str(ref))
    if base.startswith(HF_PREFIX):
        return _fetch_hf(base, expected, root)
    return _fetch_url(base, expected, root, timeout)
