-- The photo gate: each photo's quality and kind (measured at intake), each score's out-of-distribution
-- check (computed with the model), and whether the consultation's deciding score passed the gate.

ALTER TABLE triage_photos
    ADD COLUMN kind text NOT NULL DEFAULT 'unknown'
        CHECK (kind IN ('dermoscopic', 'camera_close_up', 'camera_overview', 'unknown')),
    -- The measures of triage/photo_quality.py and the problems found; NULL: taken before the gate existed.
    ADD COLUMN quality jsonb,
    ADD COLUMN quality_problems text[];

UPDATE triage_photos SET kind = CASE tag WHEN 'dermoscopic' THEN 'dermoscopic'
                                         WHEN 'close_up' THEN 'camera_close_up'
                                         WHEN 'overview' THEN 'camera_overview' ELSE 'unknown' END;

-- NULL in_distribution: the model had no statistics to check against (the gate then fails closed).
ALTER TABLE triage_photo_scores
    ADD COLUMN ood_score double precision,
    ADD COLUMN in_distribution boolean;

ALTER TABLE triage_consultation_scores
    ADD COLUMN trusted boolean NOT NULL DEFAULT false,
    ADD COLUMN gate jsonb;
