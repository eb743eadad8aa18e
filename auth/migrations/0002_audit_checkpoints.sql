-- Signed checkpoints of the audit chain.
--
-- The chain in audit_log is computed by the database, so whoever can write the table
-- can also recompute it. At intervals a server records the chain's head here with a
-- MAC keyed by a secret the database never sees (SKINDOC_AUDIT_KEY or the key file),
-- each checkpoint linked to the one before. A rewrite of any row up to a checkpoint
-- changes the head that checkpoint names, and no one without the key can sign a new
-- one: `skindoc audit verify` finds it.
CREATE TABLE audit_checkpoints (
    -- 1, 2, 3 ... assigned under a lock, so a removed checkpoint leaves a gap.
    id bigint PRIMARY KEY,
    -- The last audit row covered, and its hash when the checkpoint was made.
    audit_id bigint NOT NULL,
    audit_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    prev_mac bytea,
    mac bytea NOT NULL
);

CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
