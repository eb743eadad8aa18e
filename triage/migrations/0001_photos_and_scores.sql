-- Lesion photos (normalised, metadata-free), their scores per model version, saliency overlays
-- and each consultation's current triage summary.

CREATE TABLE triage_photos (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consultation_id uuid NOT NULL REFERENCES consultations (id) ON DELETE CASCADE,
    body_site text NOT NULL,
    tag text CHECK (tag IN ('dermoscopic', 'close_up', 'overview')),
    -- Of the stored (re-encoded) JPEG: two uploads with the same pixels are one photo.
    sha256 text NOT NULL,
    source_format text NOT NULL,
    width integer NOT NULL CHECK (width > 0),
    height integer NOT NULL CHECK (height > 0),
    image bytea NOT NULL,
    thumbnail bytea NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'scored', 'failed')),
    failure_reason text,
    -- Deliveries to a worker; a photo that keeps killing workers is failed after a few.
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consultation_id, sha256),
    CHECK ((status = 'failed') = (failure_reason IS NOT NULL))
);

CREATE INDEX triage_photos_consultation ON triage_photos (consultation_id, created_at);

-- One row per photo and model version: a reclaimed job writes nothing new.
CREATE TABLE triage_photo_scores (
    photo_id uuid NOT NULL REFERENCES triage_photos (id) ON DELETE CASCADE,
    model_version text NOT NULL,
    p_malignant double precision NOT NULL CHECK (p_malignant >= 0 AND p_malignant <= 1),
    probabilities jsonb NOT NULL,
    dx text NOT NULL,
    urgency text NOT NULL,
    -- How many photos shared the model call (for the batching histogram).
    batch_size integer NOT NULL CHECK (batch_size > 0),
    scored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_id, model_version)
);

CREATE TABLE triage_saliency (
    photo_id uuid NOT NULL,
    model_version text NOT NULL,
    png bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_id, model_version),
    FOREIGN KEY (photo_id, model_version) REFERENCES triage_photo_scores (photo_id, model_version) ON DELETE CASCADE
);

-- The consultation's deciding photo under the model version that scored it last.
CREATE TABLE triage_consultation_scores (
    consultation_id uuid PRIMARY KEY REFERENCES consultations (id) ON DELETE CASCADE,
    photo_id uuid NOT NULL REFERENCES triage_photos (id) ON DELETE CASCADE,
    model_version text NOT NULL,
    urgency text NOT NULL,
    p_malignant double precision NOT NULL,
    scored_photos integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
