"""Who a rater is, read from the platform parameters of the study link.

Prolific appends PROLIFIC_PID, STUDY_ID and SESSION_ID; MTurk appends workerId,
assignmentId and hitId. A link without them is a direct link (the rater is then
recognised by a cookie).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from raters.models import Rater

# The assignmentId MTurk sends while a worker previews a HIT they have not accepted yet.
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
_ID = re.compile(r"^[\w.\-:@]{1,200}$")

PLATFORM_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId", "hitId")


class InvalidIdentity(ValueError):
    pass


@dataclass(frozen=True)
class RaterIdentity:
    platform: str = Rater.Platform.DIRECT
    external_id: str = ""
    platform_study_id: str = ""
    platform_session_id: str = ""
    # An MTurk preview: the worker may read the instructions but not start.
    preview: bool = False

    @property
    def is_direct(self) -> bool:
        return not self.external_id


def _clean(value: object, name: str) -> str:
    text = str(value or "").strip()
    if text and not _ID.match(text):
        raise InvalidIdentity(f"{name} is not a valid identifier.")
    return text


def identity_from_params(params: Mapping[str, object]) -> RaterIdentity:
    """The rater's identity from query or form parameters; direct if none are given."""
    pid = _clean(params.get("PROLIFIC_PID"), "PROLIFIC_PID")
    if pid:
        return RaterIdentity(
            platform=Rater.Platform.PROLIFIC,
            external_id=pid,
            platform_study_id=_clean(params.get("STUDY_ID"), "STUDY_ID"),
            platform_session_id=_clean(params.get("SESSION_ID"), "SESSION_ID"),
        )
    worker = _clean(params.get("workerId"), "workerId")
    assignment = str(params.get("assignmentId") or "").strip()
    if assignment == MTURK_PREVIEW:
        return RaterIdentity(platform=Rater.Platform.MTURK, preview=True)
    if worker:
        return RaterIdentity(
            platform=Rater.Platform.MTURK,
            external_id=worker,
            platform_study_id=_clean(params.get("hitId"), "hitId"),
            platform_session_id=_clean(assignment, "assignmentId"),
        )
    return RaterIdentity()


def identity_params(identity: RaterIdentity) -> dict[str, str]:
    """The parameters that reproduce ``identity`` (carried through the consent form)."""
    if identity.platform == Rater.Platform.PROLIFIC:
        return {
            "PROLIFIC_PID": identity.external_id,
            "STUDY_ID": identity.platform_study_id,
            "SESSION_ID": identity.platform_session_id,
        }
    if identity.platform == Rater.Platform.MTURK and identity.external_id:
        return {
            "workerId": identity.external_id,
            "hitId": identity.platform_study_id,
            "assignmentId": identity.platform_session_id,
        }
    return {}


# What Prolific fills in for each participant when it opens the study URL.
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def platform_links(entry_url: str) -> list[dict[str, str]]:
    """The study link as each platform wants it pasted, for the organizer: Prolific's with
    its placeholders; MTurk's external question URL, to which MTurk appends workerId,
    assignmentId, hitId and turkSubmitTo itself; the direct link."""
    separator = "&" if "?" in entry_url else "?"
    return [
        {
            "platform": "Prolific",
            "url": f"{entry_url}{separator}{PROLIFIC_QUERY}",
            "note": "Study URL in Prolific, with 'I'll use URL parameters'.",
        },
        {
            "platform": "MTurk",
            "url": entry_url,
            "note": "ExternalURL of the HIT's ExternalQuestion; MTurk adds the worker's parameters.",
        },
        {"platform": "Direct", "url": entry_url, "note": "For volunteers: each browser gets its own session."},
    ]
