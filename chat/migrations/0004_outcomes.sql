-- What each resolved lesion turned out to be: the doctor's working diagnosis at resolve, and the
-- histopathology results entered later (append-only: a correction is a new row naming the one it
-- replaces, so the history of every result stays readable).

-- The classifier's seven classes, plus squamous cell carcinoma, "other" and "unsure".
CREATE TABLE consultation_diagnoses (
    consultation_id uuid PRIMARY KEY REFERENCES consultations (id),
    working_diagnosis text NOT NULL CHECK (working_diagnosis IN
        ('akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc', 'scc', 'other', 'unsure')),
    biopsy_taken boolean NOT NULL,
    recorded_by uuid NOT NULL REFERENCES users (id),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE histopathology_results (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consultation_id uuid NOT NULL REFERENCES consultations (id),
    -- "unsure" is not a histopathology result: a report names what it found.
    diagnosis text NOT NULL CHECK (diagnosis IN
        ('akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc', 'scc', 'other')),
    malignant boolean NOT NULL,
    reported_on date NOT NULL,
    note text NOT NULL DEFAULT '',
    entered_by uuid NOT NULL REFERENCES users (id),
    entered_role text NOT NULL CHECK (entered_role IN ('doctor', 'admin')),
    entered_at timestamptz NOT NULL DEFAULT now(),
    -- The result this one corrects, with the reason; NULL for the first result of a case.
    supersedes uuid UNIQUE REFERENCES histopathology_results (id),
    correction_reason text,
    CHECK ((supersedes IS NULL) = (correction_reason IS NULL)),
    -- The seven classes' malignancy is fixed (the model card's grouping); only "other" is stated.
    CHECK (diagnosis = 'other' OR malignant = (diagnosis IN ('akiec', 'bcc', 'mel', 'scc')))
);

CREATE INDEX histopathology_results_consultation ON histopathology_results (consultation_id, entered_at DESC);
-- At most one first result per case; every later entry must correct the current one (checked on insert).
CREATE UNIQUE INDEX histopathology_results_one_first ON histopathology_results (consultation_id)
    WHERE supersedes IS NULL;

-- The current result of each case: the one no later entry corrects.
CREATE VIEW histopathology_current AS
    SELECT r.* FROM histopathology_results r
     WHERE NOT EXISTS (SELECT 1 FROM histopathology_results later WHERE later.supersedes = r.id);

CREATE FUNCTION histopathology_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'histopathology_results is append-only: enter a correction instead'
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER histopathology_results_append_only BEFORE UPDATE OR DELETE ON histopathology_results
    FOR EACH ROW EXECUTE FUNCTION histopathology_refuse_change();
