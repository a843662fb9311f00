"""PostgreSQL: a vote stored in one call (raters.sql.vote_store).

The same rules as raters.services.rating_submit's transaction, which SQLite runs: lock the
session, take an answered or released trial as it stands, store the vote, then write the
session's status, its last_seen_at once the touch interval has passed, and on completion its
code. The tests run both. A vote used to take five round trips to the database (BEGIN, the
locked session, its trials, the INSERT, COMMIT); the function takes one, and its statements
are planned once per connection.
"""

from django.db import migrations

from raters.migrations._postgresql import on_postgresql

CREATE = """
CREATE OR REPLACE FUNCTION mosaic_vote_store(
    p_session bigint, p_trial bigint, p_score smallint, p_response_ms integer,
    p_now timestamptz, p_touch_before timestamptz, p_code varchar
) RETURNS TABLE (
    rating_id bigint, created boolean, released boolean, score smallint, response_ms integer,
    rated_at timestamptz, status varchar, completion_code varchar, completed_at timestamptz,
    last_seen_at timestamptz, trials bigint, answered bigint, released_trials bigint
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s raters_session%ROWTYPE;
    r raters_rating%ROWTYPE;
    v_released boolean;
    v_created boolean := false;
    v_status varchar;
    v_complete boolean;
BEGIN
    -- The session's votes and status changes happen one at a time. Each statement below
    -- reads the database as it stands once this lock is held.
    SELECT * INTO s FROM raters_session WHERE id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT t.released_at IS NOT NULL INTO v_released FROM raters_trial t
        WHERE t.id = p_trial AND t.session_id = p_session;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO r FROM raters_rating x WHERE x.trial_id = p_trial;
    IF NOT FOUND AND NOT v_released THEN
        INSERT INTO raters_rating (trial_id, score, response_ms, created_at)
            VALUES (p_trial, p_score, p_response_ms, p_now)
            ON CONFLICT (trial_id) DO NOTHING RETURNING * INTO r;
        IF FOUND THEN
            v_created := true;
        ELSE
            -- Stored meanwhile by a writer that does not lock the session (the import).
            SELECT * INTO r FROM raters_rating x WHERE x.trial_id = p_trial;
        END IF;
    END IF;
    IF v_created THEN
        -- Training until the training trials are answered, rating until every live trial
        -- is, then complete (raters.selectors.status_from_states).
        SELECT CASE WHEN bool_or(t.kind = 'training') THEN 'training'
                    WHEN count(*) > 0 THEN 'rating' ELSE 'complete' END
            INTO v_status FROM raters_trial t
            WHERE t.session_id = p_session AND t.released_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM raters_rating x WHERE x.trial_id = t.id);
        v_complete := v_status = 'complete' AND s.completion_code = '';
        IF v_status <> s.status OR s.last_seen_at <= p_touch_before OR v_complete THEN
            UPDATE raters_session u SET
                status = v_status,
                last_seen_at = CASE WHEN s.last_seen_at <= p_touch_before THEN p_now ELSE s.last_seen_at END,
                completion_code = CASE WHEN v_complete THEN p_code ELSE s.completion_code END,
                completed_at = CASE WHEN v_complete THEN p_now ELSE s.completed_at END
                WHERE u.id = p_session RETURNING u.* INTO s;
        END IF;
    END IF;
    -- The session's counts as they stand, so that the caller can tell whether the trials it
    -- read before the call are still the session's (another vote may have come between).
    RETURN QUERY SELECT r.id, v_created, v_released AND r.id IS NULL, r.score, r.response_ms, r.created_at,
        s.status, s.completion_code, s.completed_at, s.last_seen_at,
        count(*), count(x.id), count(t.released_at)
        FROM raters_trial t LEFT JOIN raters_rating x ON x.trial_id = t.id WHERE t.session_id = p_session;
END
$$
"""

DROP = "DROP FUNCTION IF EXISTS mosaic_vote_store(bigint, bigint, smallint, integer, timestamptz, timestamptz, varchar)"


class Migration(migrations.Migration):
    dependencies = [
        ("raters", "0004_output_load"),
    ]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]
