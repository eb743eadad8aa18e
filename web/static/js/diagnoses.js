// The diagnoses a doctor records: the classifier's seven classes plus SCC, "other" and "unsure".

export const FINDINGS = {
  mel: 'Melanoma',
  bcc: 'Basal cell carcinoma',
  scc: 'Squamous cell carcinoma',
  akiec: 'Actinic keratosis / intraepithelial carcinoma',
  nv: 'Melanocytic naevus',
  bkl: 'Benign keratosis',
  df: 'Dermatofibroma',
  vasc: 'Vascular lesion',
  other: 'Other',
};

export const WORKING_DIAGNOSES = { ...FINDINGS, unsure: 'Unsure' };
