"""How a finished rater hands back to their platform (reads; nothing here writes).

- Prolific checks one completion code per study: with the study's code set, a Prolific
  rater is shown that code and sent to Prolific's completion page with it. The session's
  own code is still shown, as a reference, and stays on the session for the audit.
- MTurk's external question expects the page to POST the assignment back to
  ``<turkSubmitTo>/mturk/externalSubmit`` with its ``assignmentId``: the page shows that
  form (the rater submits it; no inline script is needed).
- Anyone else gets the session's code and the study's redirect link, if any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from raters.models import Rater, Session
from raters.selectors import completion_redirect

PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc={code}"
MTURK_SUBMIT_PATH = "/mturk/externalSubmit"


@dataclass(frozen=True)
class Completion:
    code: str  # the code the rater gives the platform
    session_code: str  # the session's own code (equal to ``code`` unless the study sets one)
    redirect_url: str = ""
    auto_redirect: bool = False  # Prolific: the page goes on to Prolific by itself
    platform: str = Rater.Platform.DIRECT
    # MTurk: where the form posts and its fields.
    submit_url: str = ""
    submit_fields: dict[str, str] = field(default_factory=dict)


def session_completion(*, session: Session) -> Completion:
    """What the completion page of a complete ``session`` shows and where it sends the rater."""
    study, rater = session.study, session.rater
    code = session.completion_code
    if rater.platform == Rater.Platform.PROLIFIC and study.prolific_completion_code:
        study_code = study.prolific_completion_code
        template = study.completion_redirect_url or PROLIFIC_COMPLETE
        return Completion(
            code=study_code,
            session_code=code,
            redirect_url=template.replace("{code}", quote(study_code)),
            auto_redirect=True,
            platform=rater.platform,
        )
    if rater.platform == Rater.Platform.MTURK and session.platform_session_id:
        return Completion(
            code=code,
            session_code=code,
            platform=rater.platform,
            submit_url=study.mturk_submit_to.rstrip("/") + MTURK_SUBMIT_PATH,
            submit_fields={"assignmentId": session.platform_session_id, "completion_code": code},
        )
    return Completion(code=code, session_code=code, redirect_url=completion_redirect(session=session))
