-- chat_store_messages (chat migration 0002) no longer writes audit_log rows itself: every audit row goes
-- through auth's one insert (auth/store.insert_audit_entries), which chat/store/messages.py calls in the
-- same transaction as this function, for the messages it stored, in their arrival order.
DROP FUNCTION chat_store_messages(uuid[], uuid[], text[], text[], text[], inet[], text[]);

-- Input: one array element per message, the batch's arrival order, no repeated (consultation, sender,
-- client id). Output: one row per message stored now (outcome 'stored') or stored before under the same
-- client id ('duplicate'), with its ordinal n; a message whose sender may not post in that consultation
-- now (not active, not its patient or doctor, unknown) has no row.
CREATE FUNCTION chat_store_messages(
    consultation_ids uuid[], sender_ids uuid[], sender_roles text[], client_msg_ids text[], bodies text[])
RETURNS TABLE (n bigint, outcome text, consultation_id uuid, seq bigint, sender_id uuid, sender_role text,
               client_msg_id text, body text, sent_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- In id order, so that two nodes' batches never deadlock. The next statement
    -- takes a fresh snapshot, so it sees every message the previous holders stored.
    PERFORM 1 FROM consultations c WHERE c.id = ANY(consultation_ids) ORDER BY c.id FOR UPDATE;
    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(consultation_ids, sender_ids, sender_roles, client_msg_ids, bodies) WITH ORDINALITY
            AS i(consultation_id, sender_id, sender_role, client_msg_id, body, n)
    ), earlier AS (
        SELECT i.n, m.* FROM input i JOIN consultation_messages m
            ON m.consultation_id = i.consultation_id AND m.sender_id = i.sender_id
           AND m.client_msg_id = i.client_msg_id
    ), fresh AS (
        SELECT i.*, c.last_seq + row_number() OVER (PARTITION BY i.consultation_id ORDER BY i.n) AS seq
        FROM input i JOIN consultations c ON c.id = i.consultation_id
        WHERE c.state = 'active' AND i.sender_id IN (c.patient_id, c.doctor_id)
          AND NOT EXISTS (SELECT 1 FROM earlier e WHERE e.n = i.n)
    ), inserted AS (
        INSERT INTO consultation_messages AS m (consultation_id, seq, sender_id, sender_role, client_msg_id, body)
        SELECT f.consultation_id, f.seq, f.sender_id, f.sender_role, f.client_msg_id, f.body FROM fresh f ORDER BY f.n
        RETURNING m.*
    ), bumped AS (
        UPDATE consultations c SET last_seq = b.last_seq
        FROM (SELECT f.consultation_id, max(f.seq) AS last_seq FROM fresh f GROUP BY f.consultation_id) b
        WHERE c.id = b.consultation_id
    )
    SELECT e.n, 'duplicate', e.consultation_id, e.seq, e.sender_id, e.sender_role, e.client_msg_id, e.body,
           e.sent_at
    FROM earlier e
    UNION ALL
    SELECT f.n, 'stored', s.consultation_id, s.seq, s.sender_id, s.sender_role, s.client_msg_id, s.body, s.sent_at
    FROM fresh f JOIN inserted s ON s.consultation_id = f.consultation_id AND s.seq = f.seq;
END
$$;
