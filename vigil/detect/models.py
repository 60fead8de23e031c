"""Model registry: the official YOLOX ONNX files, pinned by URL and SHA-256, and their cache.

Vigil never ships weights. ``pull`` downloads a registry model into the cache
(:func:`vigil.paths.cache_dir`), hashing while it streams, and only an intact file with the
pinned SHA-256 ever appears under its final name: the bytes go to ``<file>.part`` first and
are renamed atomically after the check, so an interrupted or tampered download leaves nothing
behind that a later run could mistake for the model.

The pins are the SHA-256 digests of the release assets of Megvii-BaseDetection/YOLOX at tag
``0.1.1rc0``. ``yolox-nano`` is verified against the shared copy; the others are the digests
that several unrelated public projects pin for the same URLs (sizes as published).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vigil import __version__
from vigil.errors import ModelError
from vigil.paths import cache_dir as default_cache_dir
from vigil.paths import sha256_file, shared_models_dir

log = logging.getLogger(__name__)

_RELEASE = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0"
_CHUNK = 1 << 20
_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One downloadable model: where it lives, its SHA-256 pin and its native input side.

    ``sha256`` is None for a model nobody has pinned yet: ``pull`` then refuses it unless the
    caller supplies the digest. ``size`` (bytes) is informational (progress bars, listings).
    """

    name: str
    url: str
    sha256: str | None
    input_size: int
    description: str
    size: int | None = None

    @property
    def filename(self) -> str:
        """The file name in the cache, taken from the URL (``yolox_nano.onnx``)."""
        return self.url.rsplit("/", 1)[-1]


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "yolox-nano", f"{_RELEASE}/yolox_nano.onnx",
            "c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d", 416,
            "YOLOX-Nano, 0.91 M params, COCO mAP 25.8; real time on one CPU core", 3_659_407,
        ),
        ModelSpec(
            "yolox-tiny", f"{_RELEASE}/yolox_tiny.onnx",
            "427cc366d34e27ff7a03e2899b5e3671425c262ea2291f88bb942bc1cc70b0f7", 416,
            "YOLOX-Tiny, 5.06 M params, COCO mAP 32.8", 20_219_662,
        ),
        ModelSpec(
            "yolox-s", f"{_RELEASE}/yolox_s.onnx",
            "c5c2d13e59ae883e6af3b45daea64af4833a4951c92d116ec270d9ddbe998063", 640,
            "YOLOX-S, 9.0 M params, COCO mAP 40.5", 35_858_002,
        ),
        ModelSpec(
            "yolox-m", f"{_RELEASE}/yolox_m.onnx",
            "21ff6cfdeb53b013bac2249599e55f00bff3cfdfdab37ed7a4620818c1d15b3f", 640,
            "YOLOX-M, 25.3 M params, COCO mAP 47.2; wants a GPU", 101_259_744,
        ),
        ModelSpec(
            "yolox-l", f"{_RELEASE}/yolox_l.onnx",
            "7860ae79de6c89a3c1eb72ae9a2756c0ccfbe04b7791bb5880afabd97855a411", 640,
            "YOLOX-L, 54.2 M params, COCO mAP 50.1; wants a GPU", 216_746_733,
        ),
        ModelSpec(
            "yolox-x", f"{_RELEASE}/yolox_x.onnx",
            "c892d7aaf1c4746d8a4d675bec669a4db4f434b4ee1efb654bc9b353379c7c55", 640,
            "YOLOX-X, 99.1 M params, COCO mAP 51.5; wants a GPU", 396_142_663,
        ),
    )
}  # fmt: skip


def list_models() -> list[ModelSpec]:
    """Every registry model, smallest first."""
    return list(REGISTRY.values())


def _normalise(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    return key.removesuffix(".onnx")


def get_model(name: str) -> ModelSpec:
    """The registry entry for ``name`` (``yolox-nano``; ``yolox_nano`` works too)."""
    spec = REGISTRY.get(_normalise(name))
    if spec is None:
        raise ModelError(
            f"unknown model {name!r}; registry models: {', '.join(REGISTRY)} "
            f"(or pass a path to an ONNX file)"
        )
    return spec


def model_path(name: str, cache_dir: Path | None = None) -> Path:
    """Where ``name`` is (or would be) cached: ``<cache_dir>/<file>``; nothing is checked."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / get_model(name).filename


def _expected_sha256(spec: ModelSpec, override: str | None) -> str:
    """The digest a download must have: the pin, or the caller's for an unpinned model."""
    given = override.strip().lower() if override else None
    if given is not None and (len(given) != 64 or any(c not in "0123456789abcdef" for c in given)):
        raise ModelError(f"--sha256 must be 64 hex digits, got {override!r}")
    if spec.sha256 is None:
        if given is None:
            raise ModelError(
                f"model {spec.name} has no pinned SHA-256, so a download cannot be verified; "
                f"pass --sha256 HEX with the digest you trust"
            )
        return given
    if given is not None and given != spec.sha256:
        raise ModelError(
            f"--sha256 {given} differs from the registry's pin {spec.sha256} for {spec.name}; "
            f"to use a different file, pass it with --model PATH instead"
        )
    return spec.sha256


def pull(
    name: str,
    cache_dir: Path | None = None,
    *,
    url: str | None = None,
    progress: bool = True,
    sha256: str | None = None,
    timeout: float = _TIMEOUT_S,
) -> Path:
    """Download registry model ``name`` into the cache and return its path.

    An already cached file with the right digest is kept without any network access; one with
    a wrong digest is deleted and downloaded again. ``url`` replaces the registry URL (a
    mirror); the file must still match the pin (or ``sha256`` for an unpinned model). Any
    failure (HTTP error, dropped connection, short read, digest mismatch) raises
    ``ModelError`` and leaves neither the final file nor ``<file>.part`` in the cache.
    """
    spec = get_model(name)
    expected = _expected_sha256(spec, sha256)
    target = model_path(spec.name, cache_dir)
    if target.is_file():
        if sha256_file(target) == expected:
            log.debug("%s already cached at %s", spec.name, target)
            return target
        log.warning("cached %s has the wrong SHA-256; downloading it again", target)
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    source = url or spec.url
    try:
        actual = _download(source, part, progress=progress, timeout=timeout, label=spec.name)
        if actual != expected:
            raise ModelError(
                f"download of {spec.name} from {source} has SHA-256 {actual}, expected "
                f"{expected}; the file was deleted. Retry, or check the URL/mirror"
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target


def _download(source: str, part: Path, *, progress: bool, timeout: float, label: str) -> str:
    """Stream ``source`` into ``part`` and return the SHA-256 of what arrived.

    Raises ``ModelError`` for HTTP errors, network errors and a body shorter than its
    ``Content-Length`` (``http.client`` returns a short body silently, so it is counted here).
    """
    request = urllib.request.Request(source, headers={"User-Agent": f"vigil/{__version__}"})
    digest = hashlib.sha256()
    received = 0
    try:
        with (
            urllib.request.urlopen(request, timeout=timeout) as response,
            part.open("wb") as out,
        ):
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress_bar(label, total, enabled=progress) as advance:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except urllib.error.HTTPError as exc:
        raise ModelError(f"download of {source} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise ModelError(
            f"download of {source} was interrupted ({exc}); check the network and run "
            f"`vigil models pull` again"
        ) from exc
    except ValueError as exc:  # urllib's "unknown url type"
        raise ModelError(f"cannot download {source!r}: {exc}") from exc
    if total is not None and received != total:
        raise ModelError(
            f"download of {source} was cut short: {received} of {total} bytes arrived; "
            f"run `vigil models pull` again"
        )
    return digest.hexdigest()


@contextlib.contextmanager
def _progress_bar(
    label: str, total: int | None, *, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A ``rich`` progress bar on stderr; yields ``advance(n_bytes)`` (a no-op if disabled)."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _shared_copy(spec: ModelSpec) -> Path | None:
    """The shared folder's copy of ``spec`` if its digest matches the pin (tests, demos)."""
    candidate = shared_models_dir() / spec.filename
    if spec.sha256 is None or not candidate.is_file():
        return None
    return candidate if sha256_file(candidate) == spec.sha256 else None


def _looks_like_path(name: str) -> bool:
    return name.lower().endswith(".onnx") or "/" in name or os.sep in name


def resolve_model(
    name_or_path: str, cache_dir: Path | None = None, *, download: bool = False
) -> Path:
    """Find the ONNX file for a registry name or a path.

    * an existing file path → that file;
    * a registry name → the cached file (not re-hashed: only :func:`pull` writes it, after
      verifying it), else the shared folder's copy when its SHA-256
      matches the pin (so tests and the demo work offline), else — with ``download`` — a
      fresh :func:`pull`;
    * otherwise ``ModelError`` saying to run ``vigil models pull NAME`` or pass ``--model``.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if _looks_like_path(name_or_path):
        raise ModelError(
            f"model file {path} does not exist; pass --model with an existing ONNX file "
            f"or a registry name ({', '.join(REGISTRY)})"
        )
    spec = get_model(name_or_path)
    cached = model_path(spec.name, cache_dir)
    if cached.is_file():
        return cached
    shared = _shared_copy(spec)
    if shared is not None:
        return shared
    if download:
        return pull(spec.name, cache_dir)
    raise ModelError(
        f"model {spec.name} is not downloaded yet (looked for {cached}); run "
        f"`vigil models pull {spec.name}` or pass --model PATH to an ONNX file"
    )
