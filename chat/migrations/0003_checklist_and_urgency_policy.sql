-- The weighted 7-point checklist (NICE NG12) replaces the five symptom flags, and a waiting case's
-- band comes from one policy: the checklist band, raised by a trusted photo score (triage/urgency_policy.py).

ALTER TABLE consultations
    ADD COLUMN checklist_score integer CHECK (checklist_score BETWEEN 0 AND 10),
    ADD COLUMN checklist_band text CHECK (checklist_band IN ('urgent', 'soon', 'routine')),
    -- The deciding photo's own band, whether its score passed the photo gate, and the gate's verdict.
    ADD COLUMN image_band text CHECK (image_band IN ('urgent', 'soon', 'routine')),
    ADD COLUMN score_trusted boolean NOT NULL DEFAULT false,
    ADD COLUMN gate jsonb;

-- Existing answers, mapped onto the checklist: "changed size" is "change in size"; a changed shape or
-- colour is the nearest to "irregular shape/colour"; bleeding is "oozing"; itching is "change in
-- sensation". Diameter and inflammation were never asked: null, shown as "not asked". The original
-- flags are kept under legacy_flags.
UPDATE consultations SET symptoms = jsonb_build_object(
    'size_changed', symptoms -> 'changed_size',
    'shape_irregular', symptoms -> 'changed_shape',
    'colour_irregular', symptoms -> 'changed_colour',
    'diameter_7mm', NULL,
    'inflamed', NULL,
    'oozing', symptoms -> 'bleeding',
    'sensation_changed', symptoms -> 'itching',
    'duration', symptoms -> 'duration',
    'legacy_flags', symptoms);

UPDATE consultations SET checklist_score =
      2 * ((symptoms ->> 'size_changed')::boolean IS TRUE)::int
    + 2 * ((symptoms ->> 'shape_irregular')::boolean IS TRUE)::int
    + 2 * ((symptoms ->> 'colour_irregular')::boolean IS TRUE)::int
    + ((symptoms ->> 'oozing')::boolean IS TRUE)::int
    + ((symptoms ->> 'sensation_changed')::boolean IS TRUE)::int;

UPDATE consultations SET checklist_band = CASE WHEN checklist_score >= 3 THEN 'urgent'
                                               WHEN checklist_score >= 2 THEN 'soon' ELSE 'routine' END;

-- Scores written before the photo gate existed were never checked: they are not trusted, and the
-- band a case holds now is kept if it is more severe than its checklist band (nothing moves down).
UPDATE consultations SET image_band = urgency WHERE scored_at IS NOT NULL;
UPDATE consultations SET urgency = checklist_band
 WHERE (CASE checklist_band WHEN 'urgent' THEN 0 WHEN 'soon' THEN 1 ELSE 2 END)
     < (CASE urgency WHEN 'urgent' THEN 0 WHEN 'soon' THEN 1 ELSE 2 END);

ALTER TABLE consultations
    ALTER COLUMN checklist_score SET NOT NULL,
    ALTER COLUMN checklist_band SET NOT NULL;
