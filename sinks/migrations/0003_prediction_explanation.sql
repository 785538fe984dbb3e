-- Champion predictions carry their top-k TreeSHAP feature contributions (Prediction's
-- explanation_features / explanation_contributions, paired by position, largest first).
-- An empty array stands for "no explanation" (challengers, older records, explain off).

ALTER TABLE {db}.predictions
    ADD COLUMN IF NOT EXISTS explanation_features Array(LowCardinality(String)),
    ADD COLUMN IF NOT EXISTS explanation_contributions Array(Float64)
