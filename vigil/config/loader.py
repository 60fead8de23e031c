"""Reading configuration files: YAML → merged dict → validated ``VigilConfig``.

Errors name the file, the line, the key path and what is allowed, because a typo in a zone
name at 3 a.m. should not need a debugger. Global sections are deep-merged into each camera
*before* validation (``vigil.config.merge``, run by ``VigilConfig`` itself), so a camera that
sets only ``detect: {fps: 2}`` keeps every other global detect setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vigil.config.models import VigilConfig, model_is_path
from vigil.errors import ConfigError


def load_config(path: str | Path | None) -> VigilConfig:
    """Load and validate a configuration file; ``None`` gives the embedded defaults."""
    if path is None:
        return VigilConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read configuration file {path}: {exc.strerror}; check the path"
        ) from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, source: str = "<config>") -> VigilConfig:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the top level must be a mapping of sections")
    try:
        # The global sections are merged into the cameras' by ``VigilConfig`` itself
        # (``vigil.config.merge``), as for a configuration built in code.
        config = VigilConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, root, source)) from exc
    check_model_files(config, root, source)
    return config


def check_model_files(
    config: VigilConfig, root: yaml.Node | None = None, source: str = "<config>"
) -> None:
    """A ``detect.model`` that names a file (global or a camera's own) must exist: a camera
    whose model is missing would otherwise only fail when ``vigil serve`` builds it. Paths
    are read as the detector reads them (relative to the working directory, ``~``
    expanded)."""
    owners: list[tuple[list[Any], str]] = [(["detect", "model"], config.detect.model)]
    for name, cam in config.cameras.items():
        if cam.detect is not None and cam.detect.model != config.detect.model:
            owners.append((["cameras", name, "detect", "model"], cam.detect.model))
    problems = []
    for loc, model in owners:
        if model_is_path(model) and not Path(model).expanduser().is_file():
            line = _line_of(root, loc)
            where = f"{source}:{line}" if line else source
            camera = loc[0] == "cameras"
            whose = f"camera {loc[1]!r}: " if camera else ""
            rest = ", or remove it to use the global detect.model" if camera else ""
            problems.append(
                f"  {where}: {whose}{'.'.join(loc)}: model file {model} does not exist; set "
                f"it to an existing ONNX file or a registry name (`vigil models list`){rest}"
            )
    if problems:
        raise ConfigError(f"{source}: invalid configuration ({len(problems)} problem(s)):\n"
                          + "\n".join(problems))  # fmt: skip


def _describe(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem(s)):"]
    for err in exc.errors():
        loc = [p for p in err["loc"] if not str(p).startswith("function-")]
        line = _line_of(root, loc)
        where = f"{source}:{line}" if line else source
        path = ".".join(str(p) for p in loc) or "<top>"
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}; allowed here: {_allowed(exc, loc)}"
        else:
            msg = err["msg"]
            if "input" in err and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
        lines.append(f"  {where}: {path}: {msg}")
    return "\n".join(lines)


def _allowed(exc: ValidationError, loc: list[Any]) -> str:
    model: Any = VigilConfig
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return "see docs/configuration.md"
        if part in fields:
            model = _inner_model(fields[part].annotation)
        else:
            # A dict key (camera/zone name): step into the dict's value model.
            continue
    fields = getattr(model, "model_fields", None)
    return ", ".join(sorted(fields)) if fields else "see docs/configuration.md"


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _line_of(root: yaml.Node | None, loc: list[Any]) -> int | None:
    """1-based line of the deepest YAML node on ``loc`` that exists."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    node = value
                    line = key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
