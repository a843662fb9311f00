"""Files of a stored analysis run: CSV tables, a LaTeX leaderboard, plots, a manifest.

Every file is made from one :class:`~analysis.models.AnalysisRun`, never from a fresh
computation, and every CSV row carries ``analysis_run_id`` plus the estimator name and
version: a number copied into a paper can be traced back to the run, whose ``run.json``
gives the parameters, the library versions and the vote cut-off.

Screened and unscreened results: ``leaderboard.csv``, ``image_mos.csv``,
``correlations.csv`` and ``pairwise.csv`` leave out the raters that a screening rule
excluded (see ``raters.csv``); the ``*_all_raters.csv`` twins keep every rater.
Sessions excluded by hand (``exclusions.csv``, with the reason) are in none of them.

The zip and the export folder also hold two files of the study rather than the run:
``sessions.csv`` (the sessions as the payments export lists them, as they are now) and
``import_manifest.json`` (every imported file with its SHA-256, and the methods.csv rows).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import plots
from analysis.frames import run_ratings_frame
from analysis.models import AnalysisRun
from analysis.results import table_from_json, to_records
from analysis.stats._common import CONTROL_KINDS

RULE_COLUMNS = (
    "bt500_rejected",
    "inconsistency_rejected",
    "straight_lining_rejected",
    "correlation_rejected",
    "controls_rejected",
)


@dataclass(frozen=True)
class ExportFile:
    name: str
    content_type: str
    description: str
    make: Callable[[AnalysisRun], bytes]


# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV
# injection"): a method named =HYPERLINK(...) would run when the organizer opens the file.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """``value`` with a single quote in front if it is text a spreadsheet would evaluate.

    Only text cells: numbers (a negative MOS difference) are written as numbers.
    ``analysis.imports`` takes the quote off again, so exported votes import unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv(frame: pd.DataFrame, run: AnalysisRun) -> bytes:
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or isinstance(frame[column].dtype, pd.StringDtype):
            frame[column] = frame[column].map(spreadsheet_safe, na_action="ignore")
    frame.insert(0, "analysis_run_id", run.pk)
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _table(name: str) -> Callable[[AnalysisRun], bytes]:
    return lambda run: _csv(table_from_json(run.results, name), run)


def ratings_table(run: AnalysisRun) -> pd.DataFrame:
    """Every vote the run counted, with its rater's screening flags."""
    votes = run_ratings_frame(run)
    raters = table_from_json(run.results, "raters")
    flags = ["rater", *RULE_COLUMNS, "excluded", "excluded_by"]
    votes = votes.merge(raters[[c for c in flags if c in raters]], on="rater", how="left")
    votes["created_at"] = votes["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    first = ["rating_id", "rater", "scene", "method", "method_kind", "score", "kind"]
    return votes[first + [c for c in votes.columns if c not in first]]


def _ratings(run: AnalysisRun) -> bytes:
    return _csv(ratings_table(run), run)


def _raters(run: AnalysisRun) -> bytes:
    table = table_from_json(run.results, "raters")
    return _csv(table, run)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _num(value: object, digits: int) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "--"
    return "--" if pd.isna(number) else f"{number:.{digits}f}"


def leaderboard_latex(run: AnalysisRun) -> str:
    """The leaderboard as a booktabs table in the layout of a challenge report."""
    board = table_from_json(run.results, "leaderboard")
    confidence = float(run.params.get("confidence", 0.95))
    ci_method = board["ci_method"].iloc[0] if len(board) else "t-scenes"
    baselines = bool((board.get("method_kind", pd.Series(dtype=object)) == plots.BASELINE).any())
    lines = [
        "% Mosaic analysis run {} (id {}) of study '{}': {} votes, estimator {} {}.".format(
            run.number,
            run.pk,
            run.study.slug,
            run.n_votes,
            board["estimator"].iloc[0] if len(board) else "",
            board["estimator_version"].iloc[0] if len(board) else "",
        ),
        "% Screened raters excluded; see leaderboard_all_raters.csv for every rater.",
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{lrrcc}",
        r"\toprule",
        rf"Team & PSNR & SSIM & MOS [{confidence:.0%} CI] & Rank \\".replace("%", r"\%"),
        r"\midrule",
    ]
    controls_started = False
    for row in board.to_dict("records"):
        is_control = row.get("method_kind") in CONTROL_KINDS
        if is_control and not controls_started:
            lines.append(r"\midrule")
            controls_started = True
        mos = f"{_num(row['mos'], 2)} [{_num(row['ci_low'], 2)}, {_num(row['ci_high'], 2)}]"
        rank = row.get("rank_display")
        # An en dash in a range of tied places, as typeset reports write "2--4".
        rank = "--" if is_control or rank is None else str(rank).replace("-", "--")
        name = latex_escape(row["method"])
        if row.get("method_kind") == plots.BASELINE:
            name += r"$^\dagger$"
        lines.append(f"{name} & {_num(row.get('psnr'), 2)} & {_num(row.get('ssim'), 4)} & {mos} & {rank} \\\\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{Perceptual ranking. MOS: mean over scenes of the per-image mean "
        rf"opinion score; interval: {latex_escape(ci_method)}; ranks give the range of "
        r"places the data cannot separate (paired tests over scenes, Holm correction, "
        rf"$\alpha={_num(run.params.get('alpha', 0.05), 2)}$). "
        + (_baseline_note(run) if baselines else "")
        + rf"Analysis run {run.number}.}}",
        r"\label{tab:perceptual-ranking}",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines)


def _baseline_note(run: AnalysisRun) -> str:
    ranked = bool(run.params.get("rank_baselines"))
    return r"$^\dagger$Baseline" + (", ranked with the teams. " if ranked else ", not ranked. ")


def _figure(kind: str, fmt: str) -> Callable[[AnalysisRun], bytes]:
    def make(run: AnalysisRun) -> bytes:
        board = table_from_json(run.results, "leaderboard")
        scale = (int(run.params.get("scale_min", 1)), int(run.params.get("scale_max", 5)))
        if kind == "scene_mos":
            figure = plots.scene_heatmap(
                table_from_json(run.results, "image_mos"),
                board,
                title=f"{run.study.title}: per-image MOS",
                scale=scale,
            )
        elif kind == "mos":
            figure = plots.mos_figure(board, title=f"{run.study.title}: MOS per method", scale=scale)
        else:
            correlations = table_from_json(run.results, "correlations")
            figure = plots.metric_figure(board, correlations, kind, scale=scale)
        return plots.render(figure, fmt)

    return make


def _files() -> list[ExportFile]:
    files = [
        ExportFile("ratings.csv", "text/csv", "every counted vote, with screening flags", _ratings),
        ExportFile("raters.csv", "text/csv", "per rater: votes and each screening rule", _raters),
        ExportFile(
            "exclusions.csv",
            "text/csv",
            "sessions excluded by hand, with the reason and the votes left out",
            _table("manual_exclusions"),
        ),
    ]
    for name, what in (
        ("leaderboard", "per method: MOS, interval, rank with ties, PSNR, SSIM"),
        ("image_mos", "per output: MOS, interval over raters, P.910 quality"),
        ("correlations", "PSNR/SSIM vs MOS: PLCC, SRCC, KRCC, logistic fit"),
        ("pairwise", "the Holm-corrected tests behind the tied ranks"),
    ):
        files.append(ExportFile(f"{name}.csv", "text/csv", f"{what} (screened)", _table(name)))
        files.append(
            ExportFile(
                f"{name}_all_raters.csv",
                "text/csv",
                f"{what} (every rater)",
                _table(f"{name}_all_raters"),
            )
        )
    files.append(
        ExportFile(
            "leaderboard.tex",
            "application/x-tex",
            "LaTeX leaderboard table (booktabs)",
            lambda run: leaderboard_latex(run).encode("utf-8"),
        )
    )
    for kind, what in (
        ("mos", "MOS per method with error bars"),
        ("psnr_vs_mos", "PSNR vs MOS with the fitted logistic"),
        ("ssim_vs_mos", "SSIM vs MOS with the fitted logistic"),
        ("scene_mos", "per-image MOS, methods x scenes (heatmap)"),
    ):
        metric = kind.removesuffix("_vs_mos")
        for fmt, content_type in plots.FORMATS.items():
            files.append(ExportFile(f"{kind}.{fmt}", content_type, what, _figure(metric, fmt)))
    return files


EXPORT_FILES: dict[str, ExportFile] = {f.name: f for f in _files()}
MANIFEST = "run.json"
SESSIONS = "sessions.csv"
IMPORT_MANIFEST = "import_manifest.json"


def study_files(run: AnalysisRun) -> dict[str, bytes]:
    """The files of the run's study that "download everything" adds: the sessions list
    and the import manifest, made now (sessions change while a study runs)."""
    from raters.payments import study_payment_csv
    from studies.selectors import study_import_manifest

    return {
        SESSIONS: study_payment_csv(study=run.study).encode("utf-8"),
        IMPORT_MANIFEST: (json.dumps(study_import_manifest(study=run.study), indent=2) + "\n").encode("utf-8"),
    }


def _everything(run: AnalysisRun) -> dict[str, bytes]:
    """Every export file of the run, then the study's files."""
    return {**{export.name: export.make(run) for export in EXPORT_FILES.values()}, **study_files(run)}


def manifest(run: AnalysisRun, checksums: dict[str, str] | None = None) -> dict:
    """What produced the files: run, study, votes, parameters, estimators and versions."""
    return {
        "analysis_run_id": run.pk,
        "run_number": run.number,
        "study": {"slug": run.study.slug, "title": run.study.title},
        "status": run.status,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "n_votes": run.n_votes,
        "params": run.params,
        "estimators": run.estimators,
        "warnings": run.results.get("warnings", []),
        "agreement": {
            name: to_records(table_from_json(run.results, name)) for name in ("agreement", "agreement_all_raters")
        },
        "screening": (
            "leaderboard, image_mos, correlations and pairwise exclude the raters flagged "
            "in raters.csv (column 'excluded'); the *_all_raters files keep every rater; "
            "the sessions in exclusions.csv were excluded by hand and are in no table"
        ),
        "manual_exclusions": run.params.get("manual_exclusions", []),
        "study_files": {
            SESSIONS: "the study's sessions when the files were made (as the payments export)",
            IMPORT_MANIFEST: "every imported file with its SHA-256, and the methods.csv rows",
        },
        "files": checksums or {},
    }


def export_bytes(run: AnalysisRun, name: str) -> tuple[bytes, str]:
    """One export file of a run, made on demand (used by the download view)."""
    if name == MANIFEST:
        return json.dumps(manifest(run), indent=2).encode("utf-8"), "application/json"
    export = EXPORT_FILES[name]
    return export.make(run), export.content_type


def write_exports(run: AnalysisRun, directory: Path) -> list[Path]:
    """Write every export file and ``run.json`` (with their SHA-256) into ``directory``."""
    if run.status != AnalysisRun.Status.DONE:
        raise ValueError(f"analysis run {run.pk} is {run.status}: nothing to export")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    checksums: dict[str, str] = {}
    for name, data in _everything(run).items():
        path = directory / name
        path.write_bytes(data)
        checksums[name] = hashlib.sha256(data).hexdigest()
        written.append(path)
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest(run, checksums), indent=2) + "\n", encoding="utf-8")
    written.append(path)
    return written


def zip_bytes(run: AnalysisRun) -> bytes:
    """Every export file of the run in one zip, for the results page."""
    import zipfile

    buffer = io.BytesIO()
    checksums: dict[str, str] = {}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in _everything(run).items():
            checksums[name] = hashlib.sha256(data).hexdigest()
            archive.writestr(name, data)
        archive.writestr(MANIFEST, json.dumps(manifest(run, checksums), indent=2) + "\n")
    return buffer.getvalue()
