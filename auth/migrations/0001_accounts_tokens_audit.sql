-- Accounts, OpenID Connect links, refresh-token families and the hash-chained audit log.

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL UNIQUE CHECK (email = lower(email)),
    display_name text NOT NULL,
    role text NOT NULL CHECK (role IN ('patient', 'doctor', 'admin')),
    -- 'pending' is a self-registered doctor waiting for an admin.
    status text NOT NULL CHECK (status IN ('active', 'pending', 'disabled')),
    -- NULL for accounts that only ever signed in through OpenID Connect.
    password_hash text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    approved_at timestamptz,
    approved_by uuid REFERENCES users (id),
    CHECK (status <> 'pending' OR role = 'doctor')
);

CREATE INDEX users_role_status ON users (role, status, created_at);

CREATE TABLE oidc_identities (
    issuer text NOT NULL,
    subject text NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX oidc_identities_user ON oidc_identities (user_id);

-- One family per sign-in; every rotation stays in the family, so reuse of a
-- rotated token can revoke everything that descends from that sign-in.
CREATE TABLE refresh_families (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    revoked_reason text
);

CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash bytea PRIMARY KEY,
    family_id uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE audit_log (
    -- Assigned by the chain trigger under a lock: gapless, and the chain's order.
    id bigint PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor_id uuid,
    actor_role text,
    action text NOT NULL,
    subject_type text NOT NULL,
    subject_id text,
    client_ip inet,
    request_id text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash bytea,
    hash bytea NOT NULL
);

CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_subject ON audit_log (subject_type, subject_id, id);
CREATE INDEX audit_log_time ON audit_log (occurred_at);

-- The digest covers every column but the hash itself, in a text form that does
-- not depend on the session's time zone or date style.
CREATE FUNCTION audit_log_digest(entry audit_log) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to(jsonb_build_array(
        entry.id,
        to_char(entry.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        entry.actor_id,
        entry.actor_role,
        entry.action,
        entry.subject_type,
        entry.subject_id,
        host(entry.client_ip),
        entry.request_id,
        entry.details,
        encode(entry.prev_hash, 'hex')
    )::text, 'UTF8'))
$$;

-- Concurrent writers queue on a transaction-scoped advisory lock, so each new row
-- links to the last committed one and the chain cannot fork.
CREATE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    last_id bigint;
    last_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(x'534B4441'::int);  -- "SKDA"
    SELECT id, hash INTO last_id, last_hash FROM audit_log ORDER BY id DESC LIMIT 1;
    NEW.id := coalesce(last_id, 0) + 1;
    NEW.prev_hash := last_hash;
    NEW.hash := audit_log_digest(NEW);
    RETURN NEW;
END
$$;

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
