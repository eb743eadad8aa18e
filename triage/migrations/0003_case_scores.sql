-- Each consultation's score under each model version that scored it, per kind of photo: what the
-- outcome figures (chat's performance view) compare with the confirmed diagnoses.
--
-- A case's score is its highest-risk photo's (the most severe band, then the highest probability),
-- as in the live queue. photo_kind is what the patient tagged for now ('dermoscopic', else
-- 'camera'); when the photo gate records the kind it measured, a later migration replaces this
-- view with that column, and every figure grouped by photo_kind follows without another change.
CREATE VIEW triage_case_scores AS
    SELECT p.consultation_id,
           s.model_version,
           p.photo_kind,
           max(s.p_malignant) AS p_malignant,
           -- An unknown band ranks as the most severe, as in triage.policy.
           (ARRAY['urgent', 'urgent', 'soon', 'routine'])[1 + min(
               CASE s.urgency WHEN 'urgent' THEN 1 WHEN 'soon' THEN 2 WHEN 'routine' THEN 3 ELSE 0 END)] AS urgency,
           count(*) AS photos,
           min(s.scored_at) AS first_scored_at
      FROM (SELECT id, consultation_id,
                   CASE WHEN tag = 'dermoscopic' THEN 'dermoscopic' ELSE 'camera' END AS photo_kind
              FROM triage_photos) p
      JOIN triage_photo_scores s ON s.photo_id = p.id
     GROUP BY p.consultation_id, s.model_version, p.photo_kind;
