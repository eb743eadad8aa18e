-- Consultations and the queue, doctors' presence and capacity, chat messages,
-- read receipts and follow-up appointments.

CREATE TABLE chat_doctors (
    doctor_id uuid PRIMARY KEY REFERENCES users (id),
    capacity integer NOT NULL CHECK (capacity BETWEEN 0 AND 20),
    availability text NOT NULL DEFAULT 'away' CHECK (availability IN ('available', 'away')),
    -- Refreshed while a connection is open; online means seen within the grace period.
    last_seen timestamptz,
    last_assigned_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consultations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id uuid NOT NULL REFERENCES users (id),
    doctor_id uuid REFERENCES users (id),
    state text NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'active', 'resolved', 'cancelled')),
    description text NOT NULL,
    body_site text NOT NULL,
    symptoms jsonb NOT NULL,
    urgency text NOT NULL DEFAULT 'routine' CHECK (urgency IN ('urgent', 'soon', 'routine')),
    p_malignant double precision CHECK (p_malignant BETWEEN 0 AND 1),
    model_version text,
    scored_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Waiting time (and ageing) counts from here; a transfer back keeps it.
    queued_at timestamptz NOT NULL DEFAULT now(),
    assigned_at timestamptz,
    closed_at timestamptz,
    outcome text CHECK (outcome IN ('reassure', 'monitor', 'in_person_visit', 'urgent_referral')),
    outcome_note text,
    cancel_reason text,
    -- The doctor who last handed it back to the queue: not offered to them again automatically.
    transferred_from uuid REFERENCES users (id),
    last_seq bigint NOT NULL DEFAULT 0,
    CHECK (state <> 'waiting' OR doctor_id IS NULL),
    CHECK (state <> 'active' OR doctor_id IS NOT NULL),
    CHECK (state <> 'resolved' OR outcome IS NOT NULL)
);

CREATE INDEX consultations_waiting ON consultations (queued_at) WHERE state = 'waiting';
CREATE INDEX consultations_patient ON consultations (patient_id, created_at DESC);
CREATE INDEX consultations_doctor ON consultations (doctor_id, state);
-- Never two active consultations of one patient with the same doctor.
CREATE UNIQUE INDEX consultations_one_active_pair ON consultations (patient_id, doctor_id) WHERE state = 'active';

CREATE TABLE consultation_messages (
    consultation_id uuid NOT NULL REFERENCES consultations (id),
    seq bigint NOT NULL CHECK (seq > 0),
    sender_id uuid NOT NULL REFERENCES users (id),
    sender_role text NOT NULL CHECK (sender_role IN ('patient', 'doctor')),
    client_msg_id text NOT NULL,
    body text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consultation_id, seq),
    UNIQUE (consultation_id, sender_id, client_msg_id)
);

CREATE TABLE consultation_reads (
    consultation_id uuid NOT NULL REFERENCES consultations (id),
    user_id uuid NOT NULL REFERENCES users (id),
    read_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consultation_id, user_id)
);

CREATE TABLE appointments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    consultation_id uuid NOT NULL REFERENCES consultations (id),
    doctor_id uuid NOT NULL REFERENCES users (id),
    patient_id uuid NOT NULL REFERENCES users (id),
    state text NOT NULL DEFAULT 'proposed' CHECK (state IN ('proposed', 'confirmed', 'declined')),
    confirmed_slot_id uuid,
    decline_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    responded_at timestamptz,
    CHECK ((state = 'confirmed') = (confirmed_slot_id IS NOT NULL))
);

CREATE INDEX appointments_doctor ON appointments (doctor_id, state);
CREATE INDEX appointments_patient ON appointments (patient_id);
CREATE INDEX appointments_consultation ON appointments (consultation_id);

CREATE TABLE appointment_slots (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    appointment_id uuid NOT NULL REFERENCES appointments (id),
    starts_at timestamptz NOT NULL,
    minutes integer NOT NULL CHECK (minutes BETWEEN 5 AND 240),
    kind text NOT NULL CHECK (kind IN ('video', 'in_person')),
    location text NOT NULL,
    UNIQUE (appointment_id, starts_at)
);
