"""Reading and validating a study folder or zip before anything is written.

Layout (names matched by file stem)::

    references/<scene>.<ext>        required, one per scene
    inputs/<scene>.<ext>            optional (required by protocol "input")
    methods/<method>/<scene>.<ext>  one per method per scene
    methods.csv                     optional: method,kind,runtime_s,framework

Every problem is collected and reported together, so an organizer fixes a broken zip
in one round instead of one error per attempt.
"""

from __future__ import annotations

import csv
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from studies.imaging import EXTENSIONS, ImageInfo, ImageProblem, inspect_image
from studies.models import Method

IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


class ImportProblems(Exception):
    """The import was refused; ``problems`` lists everything that must be fixed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"Nothing was imported. Fix these {len(problems)} problem(s):\n{listing}")


@dataclass
class MethodPlan:
    name: str
    kind: str = Method.Kind.SUBMISSION
    runtime_s: float | None = None
    framework: str = ""
    outputs: dict[str, ImageInfo] = field(default_factory=dict)


@dataclass
class ImportPlan:
    references: dict[str, ImageInfo]
    inputs: dict[str, ImageInfo]
    methods: dict[str, MethodPlan]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in IGNORED_NAMES


def _images_by_stem(folder: Path, label: str, problems: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if _visible(p)):
        where = f"{label}/{path.name}"
        if path.is_dir():
            problems.append(f"{where}: unexpected folder (expected image files only)")
            continue
        if path.suffix.lower() not in EXTENSIONS:
            problems.append(
                f"{where}: {path.suffix or 'no extension'} is not an accepted format (PNG, JPEG, TIFF or WebP)"
            )
            continue
        if path.stem in found:
            problems.append(f"{where}: two files for scene '{path.stem}' ({found[path.stem].name} and {path.name})")
            continue
        found[path.stem] = path
    return found


def _inspect_all(paths: dict[str, Path], label: str, problems: list[str], max_pixels: int) -> dict[str, ImageInfo]:
    infos: dict[str, ImageInfo] = {}
    for stem, path in paths.items():
        try:
            infos[stem] = inspect_image(path, max_pixels=max_pixels)
        except ImageProblem as exc:
            problems.append(f"{label}/{path.name}: {exc}")
    return infos


def _read_methods_csv(path: Path, problems: list[str]) -> dict[str, dict[str, object]]:
    kinds = {choice.value for choice in Method.Kind}
    rows: dict[str, dict[str, object]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "method" not in reader.fieldnames:
            problems.append("methods.csv: needs a header with at least the column 'method'")
            return rows
        for line, row in enumerate(reader, start=2):
            name = (row.get("method") or "").strip()
            kind = (row.get("kind") or Method.Kind.SUBMISSION).strip() or Method.Kind.SUBMISSION
            if kind not in kinds:
                problems.append(f"methods.csv line {line}: kind '{kind}' is not one of {', '.join(sorted(kinds))}")
                continue
            runtime = (row.get("runtime_s") or "").strip()
            try:
                runtime_s = float(runtime) if runtime else None
            except ValueError:
                problems.append(f"methods.csv line {line}: runtime_s '{runtime}' is not a number")
                continue
            rows[name] = {"kind": kind, "runtime_s": runtime_s, "framework": (row.get("framework") or "").strip()}
    return rows


def plan_import(
    root: Path,
    *,
    protocol: str,
    existing_scenes: set[str] = frozenset(),
    existing_methods: set[str] = frozenset(),
    max_pixels: int | None = None,
) -> ImportPlan:
    """Validate the folder ``root`` completely; raise ImportProblems listing every problem."""
    limit = max_pixels if max_pixels is not None else settings.MOSAIC_MAX_PIXELS
    problems: list[str] = []
    known = {"references", "inputs", "methods", "methods.csv"}
    for path in sorted(p for p in root.iterdir() if _visible(p)):
        if path.name not in known:
            problems.append(
                f"{path.name}: unexpected {'folder' if path.is_dir() else 'file'} at the top level "
                "(expected references/, inputs/, methods/, methods.csv)"
            )

    ref_dir, input_dir, methods_dir = root / "references", root / "inputs", root / "methods"
    ref_paths = _images_by_stem(ref_dir, "references", problems) if ref_dir.is_dir() else {}
    if not ref_dir.is_dir():
        problems.append("references/: missing (one reference image per scene is required)")
    elif not ref_paths:
        problems.append("references/: no reference images")
    scenes = set(ref_paths)
    for stem in sorted(scenes & set(existing_scenes)):
        problems.append(f"references/{ref_paths[stem].name}: scene '{stem}' already exists in this study")

    references = _inspect_all(ref_paths, "references", problems, limit)

    inputs: dict[str, ImageInfo] = {}
    if input_dir.is_dir():
        input_paths = _images_by_stem(input_dir, "inputs", problems)
        for stem in sorted(set(input_paths) - scenes):
            problems.append(f"inputs/{input_paths[stem].name}: no reference for scene '{stem}'")
            del input_paths[stem]
        if protocol == "input":
            for stem in sorted(scenes - set(input_paths)):
                problems.append(f"inputs/: missing the input photo for scene '{stem}' (protocol 'input' shows it)")
        inputs = _inspect_all(input_paths, "inputs", problems, limit)
    elif protocol == "input" and scenes:
        problems.append("inputs/: missing (protocol 'input' shows each output beside its input photo)")

    metadata = _read_methods_csv(root / "methods.csv", problems) if (root / "methods.csv").is_file() else {}
    methods: dict[str, MethodPlan] = {}
    if not methods_dir.is_dir():
        problems.append("methods/: missing (one folder per method with one image per scene)")
    else:
        for folder in sorted(p for p in methods_dir.iterdir() if _visible(p)):
            label = f"methods/{folder.name}"
            if not folder.is_dir():
                problems.append(f"{label}: unexpected file (expected one folder per method)")
                continue
            if folder.name in existing_methods:
                problems.append(f"{label}: method '{folder.name}' already exists in this study")
            paths = _images_by_stem(folder, label, problems)
            if not paths and not any(_visible(p) for p in folder.iterdir()):
                problems.append(f"{label}: empty method folder")
                continue
            for stem in sorted(set(paths) - scenes):
                problems.append(f"{label}/{paths[stem].name}: file for unknown scene '{stem}' (no references/{stem}.*)")
                del paths[stem]
            for stem in sorted(scenes - set(paths)):
                problems.append(f"{label}: missing the output for scene '{stem}'")
            plan = MethodPlan(name=folder.name, **metadata.get(folder.name, {}))
            plan.outputs = _inspect_all(paths, label, problems, limit)
            methods[folder.name] = plan
        if not methods and methods_dir.is_dir() and not any(p.startswith("methods/") for p in problems):
            problems.append("methods/: no method folders")
    for name in sorted(set(metadata) - set(methods)):
        problems.append(f"methods.csv: method '{name}' has no folder in methods/")

    for label, infos in [("inputs", inputs)] + [(f"methods/{m.name}", m.outputs) for m in methods.values()]:
        for stem, info in infos.items():
            ref = references.get(stem)
            if ref and (info.width, info.height) != (ref.width, ref.height):
                problems.append(
                    f"{label}/{info.path.name}: {info.width}x{info.height} differs from "
                    f"the reference's {ref.width}x{ref.height}"
                )
    if problems:
        raise ImportProblems(problems)
    return ImportPlan(references=references, inputs=inputs, methods=methods)


@contextmanager
def opened_source(source: Path) -> Iterator[Path]:
    """Yield a folder for ``source``: the folder itself, or a zip extracted to a temporary one."""
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise ImportProblems([f"{source}: no such file or folder"])
    if not zipfile.is_zipfile(source):
        raise ImportProblems([f"{source.name}: not a zip file or a folder"])
    with tempfile.TemporaryDirectory(prefix="mosaic-import-") as tmp:
        root = Path(tmp)
        _extract(source, root)
        yield _content_root(root)


def _extract(source: Path, target: Path) -> None:
    with zipfile.ZipFile(source) as archive:
        members = archive.infolist()
        total = sum(member.file_size for member in members)
        if total > settings.MOSAIC_MAX_UPLOAD_BYTES:
            raise ImportProblems(
                [
                    f"{source.name}: unpacks to {total / 1e9:.1f} GB, more than the limit of "
                    f"{settings.MOSAIC_MAX_UPLOAD_BYTES / 1e9:.1f} GB"
                ]
            )
        bad = [m.filename for m in members if m.filename.startswith(("/", "\\")) or ".." in Path(m.filename).parts]
        if bad:
            raise ImportProblems([f"{name}: unsafe path in the zip" for name in bad])
        for member in members:
            if member.filename.startswith("__MACOSX/"):
                continue
            archive.extract(member, target)


def _content_root(root: Path) -> Path:
    """Accept a zip of the folder itself (one top-level folder) as well as of its contents."""
    entries = [p for p in root.iterdir() if _visible(p) and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not (root / "references").exists():
        return entries[0]
    return root
