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
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from studies.imaging import EXTENSIONS, ImageInfo, ImageProblem, inspect_image
from studies.models import Method, Scene
from studies.validation import name_problem

SCENE_NAME_LENGTH = Scene._meta.get_field("name").max_length
METHOD_NAME_LENGTH = Method._meta.get_field("name").max_length
FRAMEWORK_LENGTH = Method._meta.get_field("framework").max_length
# Longest file or folder name most file systems store (ext4, APFS, NTFS: 255 bytes).
MAX_PATH_PART_BYTES = 255

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
    # A method the study has already, given the outputs of the scenes this import adds.
    existing: bool = False


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


def _inspect_all(
    paths: dict[str, Path], label: str, problems: list[str], max_pixels: int, on_file: Callable[[], None] | None
) -> dict[str, ImageInfo]:
    infos: dict[str, ImageInfo] = {}
    for stem, path in paths.items():
        try:
            infos[stem] = inspect_image(path, max_pixels=max_pixels)
        except ImageProblem as exc:
            problems.append(f"{label}/{path.name}: {exc}")
        if on_file is not None:
            on_file()
    return infos


def count_images(root: Path) -> int:
    """How many image files an import of ``root`` has to check (the N of its progress)."""
    count = 0
    for path in root.rglob("*"):
        visible = all(_visible(Path(part)) for part in path.relative_to(root).parts)
        count += visible and path.is_file() and path.suffix.lower() in EXTENSIONS
    return count


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
            problem = name_problem(name, what="method", max_length=METHOD_NAME_LENGTH)
            if problem:
                problems.append(f"methods.csv line {line}: {problem}")
                continue
            framework = (row.get("framework") or "").strip()
            if len(framework) > FRAMEWORK_LENGTH:
                problems.append(
                    f"methods.csv line {line}: framework is {len(framework)} characters long, "
                    f"more than the limit of {FRAMEWORK_LENGTH}"
                )
                continue
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
            rows[name] = {"kind": kind, "runtime_s": runtime_s, "framework": framework}
    return rows


def plan_import(
    root: Path,
    *,
    protocol: str,
    known_references: dict[str, ImageInfo | None] | None = None,
    existing_methods: set[str] = frozenset(),
    scenes_allowed: bool = True,
    max_pixels: int | None = None,
    problems: list[str] | None = None,
    on_file: Callable[[], None] | None = None,
) -> ImportPlan:
    """Validate the folder ``root`` completely; raise ImportProblems listing every problem,
    those found before (``problems``, e.g. while unpacking a zip) included.

    Into a study that has scenes already (``known_references``: scene name -> its stored
    reference) and methods (``existing_methods``), an import adds scenes, which need an
    output of every method, old and new, and methods, which need an output of every
    scene. ``scenes_allowed=False`` takes methods only (a team added to an open study).
    ``on_file`` is called after each image is checked (the import job's progress).
    """
    limit = max_pixels if max_pixels is not None else settings.MOSAIC_MAX_PIXELS
    problems = list(problems or [])
    known = dict(known_references or {})
    allowed = {"references", "inputs", "methods", "methods.csv"} if scenes_allowed else {"methods", "methods.csv"}
    for path in sorted(p for p in root.iterdir() if _visible(p)):
        if path.name in {"references", "inputs"} and not scenes_allowed:
            problems.append(
                f"{path.name}/: scenes cannot be added here: this adds methods only, with one output per scene "
                "the study has (scenes are added by Import zip while the study is a draft)"
            )
        elif path.name not in allowed:
            expected = "references/, inputs/, methods/, methods.csv" if scenes_allowed else "methods/, methods.csv"
            problems.append(
                f"{path.name}: unexpected {'folder' if path.is_dir() else 'file'} at the top level "
                f"(expected {expected})"
            )

    ref_dir, input_dir, methods_dir = root / "references", root / "inputs", root / "methods"
    ref_paths: dict[str, Path] = {}
    if not scenes_allowed:
        pass
    elif ref_dir.is_dir():
        ref_paths = _images_by_stem(ref_dir, "references", problems)
        if not ref_paths:
            problems.append("references/: no reference images")
    elif not known:
        problems.append("references/: missing (one reference image per scene is required)")
    for stem in sorted(ref_paths):
        problem = name_problem(stem, what="scene", max_length=SCENE_NAME_LENGTH)
        if problem:
            problems.append(f"references/{ref_paths.pop(stem).name}: {problem}")
    for stem in sorted(set(ref_paths) & set(known)):
        problems.append(f"references/{ref_paths[stem].name}: scene '{stem}' already exists in this study")
    new_scenes = set(ref_paths) - set(known)
    scenes = set(ref_paths) | set(known)

    references = _inspect_all(ref_paths, "references", problems, limit, on_file)

    inputs: dict[str, ImageInfo] = {}
    if input_dir.is_dir() and scenes_allowed:
        input_paths = _images_by_stem(input_dir, "inputs", problems)
        for stem in sorted(set(input_paths) - set(ref_paths)):
            if stem in known:
                problems.append(f"inputs/{input_paths[stem].name}: scene '{stem}' already exists in this study")
            else:
                problems.append(f"inputs/{input_paths[stem].name}: no reference for scene '{stem}'")
            del input_paths[stem]
        if protocol == "input":
            for stem in sorted(set(ref_paths) - set(input_paths)):
                problems.append(f"inputs/: missing the input photo for scene '{stem}' (protocol 'input' shows it)")
        inputs = _inspect_all(input_paths, "inputs", problems, limit, on_file)
    elif protocol == "input" and ref_paths:
        problems.append("inputs/: missing (protocol 'input' shows each output beside its input photo)")

    metadata = _read_methods_csv(root / "methods.csv", problems) if (root / "methods.csv").is_file() else {}
    for name in sorted(set(metadata) & set(existing_methods)):
        problems.append(f"methods.csv: method '{name}' already exists in this study (edit it on its admin page)")
    methods: dict[str, MethodPlan] = {}
    if not methods_dir.is_dir():
        problems.append("methods/: missing (one folder per method with one image per scene)")
    else:
        for folder in sorted(p for p in methods_dir.iterdir() if _visible(p)):
            label = f"methods/{folder.name}"
            if not folder.is_dir():
                problems.append(f"{label}: unexpected file (expected one folder per method)")
                continue
            problem = name_problem(folder.name, what="method", max_length=METHOD_NAME_LENGTH)
            if problem:
                problems.append(f"{label}: {problem}")
                continue
            existing = folder.name in existing_methods
            if existing and not new_scenes:
                problems.append(f"{label}: method '{folder.name}' already exists in this study")
            paths = _images_by_stem(folder, label, problems)
            if not paths and not any(_visible(p) for p in folder.iterdir()):
                problems.append(f"{label}: empty method folder")
                continue
            for stem in sorted(set(paths) - scenes):
                where = f"no references/{stem}.*" if scenes_allowed else "not a scene of this study"
                problems.append(f"{label}/{paths[stem].name}: file for unknown scene '{stem}' ({where})")
                del paths[stem]
            expected = new_scenes if existing else scenes
            if existing and new_scenes:
                for stem in sorted(set(paths) - new_scenes):
                    problems.append(
                        f"{label}/{paths.pop(stem).name}: method '{folder.name}' already has its output for scene "
                        f"'{stem}' (replace an output from its page in the admin)"
                    )
            for stem in sorted(expected - set(paths)):
                problems.append(f"{label}: missing the output for scene '{stem}'")
            plan = MethodPlan(name=folder.name, existing=existing, **metadata.get(folder.name, {}))
            plan.outputs = _inspect_all(paths, label, problems, limit, on_file)
            methods[folder.name] = plan
        if not methods and methods_dir.is_dir() and not any(p.startswith("methods/") for p in problems):
            problems.append("methods/: no method folders")
    if new_scenes:
        shown = ", ".join(f"'{stem}'" for stem in sorted(new_scenes)[:5]) + (" ..." if len(new_scenes) > 5 else "")
        for name in sorted(set(existing_methods) - set(methods)):
            problems.append(f"methods/{name}/: missing (method '{name}' needs an output for each new scene: {shown})")
    for name in sorted(set(metadata) - set(methods)):
        problems.append(f"methods.csv: method '{name}' has no folder in methods/")

    for label, infos in [("inputs", inputs)] + [(f"methods/{m.name}", m.outputs) for m in methods.values()]:
        for stem, info in infos.items():
            problem = _mismatch(info, references.get(stem) or known.get(stem))
            if problem:
                problems.append(f"{label}/{info.path.name}: {problem}")
    if problems:
        # Messages name files inside the upload, never the server folder it was unpacked to.
        raise ImportProblems([problem.replace(f"{root}/", "").replace(str(root), ".") for problem in problems])
    return ImportPlan(references=references, inputs=inputs, methods=methods)


def _mismatch(info: ImageInfo, reference: ImageInfo | None) -> str | None:
    """Why an output (or input photo) cannot be compared with its scene's reference."""
    if reference is None:
        return None
    if (info.width, info.height) != (reference.width, reference.height):
        return f"{info.width}x{info.height} differs from the reference's {reference.width}x{reference.height}"
    if (info.colour, info.bits) != (reference.colour, reference.bits):
        # PSNR/SSIM would compare different things (or fail); converting would change
        # what raters judge.
        return f"{info.kind}, but the reference is {reference.kind}: save it like the reference"
    return None


def plan_replacement(
    path: Path, *, label: str, reference: ImageInfo | None, max_pixels: int | None = None
) -> ImageInfo:
    """Validate one image file that is to replace an output; raise ImportProblems."""
    limit = max_pixels if max_pixels is not None else settings.MOSAIC_MAX_PIXELS
    try:
        info = inspect_image(path, max_pixels=limit)
    except ImageProblem as exc:
        raise ImportProblems([f"{label}: {str(exc).replace(str(path), label)}"]) from None
    problem = _mismatch(info, reference)
    if problem:
        raise ImportProblems([f"{label}: {problem}"])
    return info


@dataclass
class OpenedSource:
    root: Path
    problems: list[str]  # found while unpacking, reported with every other problem


@contextmanager
def opened_source(source: Path, *, name: str | None = None) -> Iterator[OpenedSource]:
    """Yield a folder for ``source``: the folder itself, or a zip unpacked to a temporary one.

    ``name`` is what messages call the source (the uploaded file's name, not the server's
    temporary copy); by default its own name.
    """
    label = name or source.name
    if source.is_dir():
        yield OpenedSource(source, [])
        return
    if not source.is_file():
        raise ImportProblems([f"{label}: no such file or folder"])
    if not zipfile.is_zipfile(source):
        raise ImportProblems([f"{label}: not a zip file or a folder"])
    with tempfile.TemporaryDirectory(prefix="mosaic-import-") as tmp:
        root = Path(tmp)
        problems = _extract(source, root, label)
        yield OpenedSource(_content_root(root), problems)


class _TooBig(Exception):
    pass


def _member_problem(filename: str) -> str | None:
    parts = filename.replace("\\", "/").split("/")
    if filename.startswith(("/", "\\")) or ".." in parts or (parts and parts[0].endswith(":")):
        return "unsafe path in the zip"
    for part in parts:
        if len(part.encode("utf-8")) > MAX_PATH_PART_BYTES:
            return f"a name of {len(part)} characters, more than a file name can have ({MAX_PATH_PART_BYTES} bytes)"
    return None


def _member_label(filename: str) -> str:
    return filename if len(filename) <= 80 else filename[:77] + "..."


def _extract(source: Path, target: Path, label: str) -> list[str]:
    """Unpack the zip ``source`` into ``target``; return the problems of its members.

    The declared sizes are checked first, then the bytes actually unpacked are counted
    as they are written, so a zip whose headers lie is stopped at the limit, not after
    filling the disk.
    """
    limit = settings.MOSAIC_MAX_UPLOAD_BYTES

    def too_big(size: int) -> ImportProblems:
        return ImportProblems(
            [f"{label}: unpacks to more than {size / 1e9:.1f} GB, more than the limit of {limit / 1e9:.1f} GB"]
        )

    problems: list[str] = []
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportProblems([f"{label}: not a readable zip file ({exc})"]) from None
    with archive:
        members = archive.infolist()
        declared = sum(member.file_size for member in members)
        if declared > limit:
            raise too_big(declared)
        total = 0
        for member in members:
            where = f"{label}: {_member_label(member.filename)}"
            problem = _member_problem(member.filename)
            if problem:
                problems.append(f"{where}: {problem}")
                continue
            if member.filename.startswith("__MACOSX/"):
                continue
            destination = target.joinpath(*[p for p in member.filename.replace("\\", "/").split("/") if p])
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            try:
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as packed, destination.open("wb") as unpacked:
                    written = 0
                    for chunk in iter(lambda: packed.read(1 << 20), b""):
                        written += len(chunk)
                        total += len(chunk)
                        if total > limit:
                            raise _TooBig
                        if written > member.file_size:
                            raise zipfile.BadZipFile("more bytes than its header declares")
                        unpacked.write(chunk)
            except _TooBig:
                raise too_big(total) from None
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
                destination.unlink(missing_ok=True)
                reason = str(exc).replace(str(target), "").strip() or type(exc).__name__
                problems.append(f"{where}: damaged or unreadable in the zip ({reason})")
    return problems


def _content_root(root: Path) -> Path:
    """Accept a zip of the folder itself (one top-level folder) as well as of its contents."""
    entries = [p for p in root.iterdir() if _visible(p) and p.name != "__MACOSX"]
    # A zip of methods/ alone (a late team) is the content itself.
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in {"references", "inputs", "methods"}:
        return entries[0]
    return root
