-- A consultation's photo score has one home: triage_consultation_scores (triage migration 0001), written
-- in the same transaction that sets the case's band, so it holds every score copied here. Chat reads it
-- from there (chat/store/case_scores.py); the copies go. The case's band (`urgency`, the urgency policy's
-- result) and its checklist stay: they are the queue's, not the photo's.
ALTER TABLE consultations
    DROP COLUMN p_malignant,
    DROP COLUMN model_version,
    DROP COLUMN scored_at,
    DROP COLUMN image_band,
    DROP COLUMN score_trusted,
    DROP COLUMN gate;
