"""PostgreSQL: a vote is one statement (raters.sql.vote_store), found by its tokens.

Migration 0005's function took the session's and the trial's ids, so that a vote read the
session and its trials first (to find them, check the score against the study's scale and
answer with the session's progress) and then called it: two round trips, and a read of
every trial with its vote, output and method on each vote. This one finds the session and
the trial by their tokens under the session's lock, checks the score against the scale,
stores the vote and counts the progress the answer shows, in one call. The rules are
raters.services.rating_submit's, which SQLite runs in a transaction; the tests run both.

Migration 0005's function stays: web workers still running the code before this one call
it until they are reloaded (README, "Updating": migrate, then reload), and their raters'
votes must keep landing meanwhile. A later migration can drop it.
"""

from django.db import migrations

from raters.migrations._postgresql import on_postgresql

CREATE = """
CREATE OR REPLACE FUNCTION mosaic_vote(
    p_session_token varchar, p_trial_token varchar, p_score integer, p_response_ms integer,
    p_now timestamptz, p_touch_before timestamptz, p_code varchar
) RETURNS TABLE (
    outcome varchar, session_id bigint, study_id bigint, status varchar, completion_code varchar,
    completed_at timestamptz, last_seen_at timestamptz, scale_levels jsonb,
    trial_id bigint, trial_position integer, trial_kind varchar, method_kind varchar, released boolean,
    rating_id bigint, score smallint, response_ms integer, rated_at timestamptz,
    total bigint, answered bigint, training_total bigint, training_answered bigint
) LANGUAGE plpgsql VOLATILE AS $$
-- Some result columns share a table column's name (trial_id, score...): a bare name in a
-- statement below means the column.
#variable_conflict use_column
DECLARE
    s raters_session%ROWTYPE;
    v_scale jsonb;
    v_trial bigint;
    v_position integer;
    v_kind varchar;
    v_method_kind varchar;
    v_released boolean;
    r raters_rating%ROWTYPE;
    v_outcome varchar;
    v_status varchar;
    v_complete boolean;
    c record;
BEGIN
    -- The session's votes and status changes happen one at a time. Each statement below
    -- reads the database as it stands once this lock is held.
    SELECT x.* INTO s FROM raters_session x WHERE x.token = p_session_token FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT st.scale_levels INTO v_scale FROM studies_study st WHERE st.id = s.study_id;
    SELECT t.id, t.position, t.kind, m.kind, t.released_at IS NOT NULL
        INTO v_trial, v_position, v_kind, v_method_kind, v_released
        FROM raters_trial t
        JOIN studies_output o ON o.id = t.output_id
        JOIN studies_method m ON m.id = o.method_id
        WHERE t.token = p_trial_token AND t.session_id = s.id;
    IF NOT FOUND THEN
        v_outcome := 'no_trial';
    ELSIF p_score IS NULL OR NOT EXISTS (
        SELECT 1 FROM jsonb_array_elements(v_scale) l WHERE (l ->> 'score')::integer = p_score
    ) THEN
        v_outcome := 'bad_score';
    ELSE
        IF NOT v_released THEN
            INSERT INTO raters_rating (trial_id, score, response_ms, created_at)
                VALUES (v_trial, p_score, p_response_ms, p_now)
                ON CONFLICT (trial_id) DO NOTHING RETURNING * INTO r;
            IF FOUND THEN
                v_outcome := 'stored';
            END IF;
        END IF;
        IF v_outcome IS NULL THEN
            -- Answered before (a replay, another tab, the import), or released: a vote
            -- stored before the release still counts.
            SELECT * INTO r FROM raters_rating x WHERE x.trial_id = v_trial;
            v_outcome := CASE WHEN FOUND THEN 'existing' ELSE 'released' END;
        END IF;
    END IF;
    -- The progress the answer shows: live trials (answered, or not released) and the
    -- answered ones, rated and training apart; and the open ones, which give the status
    -- (raters.selectors.session_progress and status_from_states).
    SELECT
        count(*) FILTER (WHERE t.kind IN ('rating', 'control')
                         AND (x.id IS NOT NULL OR t.released_at IS NULL)) AS total,
        count(*) FILTER (WHERE t.kind IN ('rating', 'control') AND x.id IS NOT NULL) AS answered,
        count(*) FILTER (WHERE t.kind = 'training' AND (x.id IS NOT NULL OR t.released_at IS NULL)) AS training_total,
        count(*) FILTER (WHERE t.kind = 'training' AND x.id IS NOT NULL) AS training_answered,
        count(*) FILTER (WHERE t.kind = 'training' AND x.id IS NULL AND t.released_at IS NULL) AS open_training,
        count(*) FILTER (WHERE x.id IS NULL AND t.released_at IS NULL) AS open
        INTO c
        FROM raters_trial t LEFT JOIN raters_rating x ON x.trial_id = t.id WHERE t.session_id = s.id;
    IF v_outcome = 'stored' THEN
        v_status := CASE WHEN c.open_training > 0 THEN 'training' WHEN c.open > 0 THEN 'rating' ELSE 'complete' END;
        v_complete := v_status = 'complete' AND s.completion_code = '';
        -- The row is written only when the vote changes it: most votes change nothing but
        -- the vote (an UPDATE rewrites every index of the row).
        IF v_status <> s.status OR s.last_seen_at <= p_touch_before OR v_complete THEN
            UPDATE raters_session u SET
                status = v_status,
                last_seen_at = CASE WHEN s.last_seen_at <= p_touch_before THEN p_now ELSE s.last_seen_at END,
                completion_code = CASE WHEN v_complete THEN p_code ELSE s.completion_code END,
                completed_at = CASE WHEN v_complete THEN p_now ELSE s.completed_at END
                WHERE u.id = s.id RETURNING u.* INTO s;
        END IF;
    END IF;
    RETURN QUERY SELECT v_outcome, s.id, s.study_id, s.status, s.completion_code, s.completed_at, s.last_seen_at,
        v_scale,
        v_trial, v_position, v_kind, v_method_kind, v_released,
        r.id, r.score, r.response_ms, r.created_at,
        c.total, c.answered, c.training_total, c.training_answered;
END
$$
"""

DROP = "DROP FUNCTION IF EXISTS mosaic_vote(varchar, varchar, integer, integer, timestamptz, timestamptz, varchar)"


class Migration(migrations.Migration):
    dependencies = [
        ("raters", "0005_vote_function"),
    ]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]
