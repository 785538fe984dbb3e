-- DriftStat carries an optional symbol (null = computed across all symbols) and a KS p-value.
-- The symbol joins the dedup key so per-symbol windows do not collapse into one row. A column
-- added to the sorting key in the same ALTER must not have a DEFAULT expression: an empty
-- string (the type's default) stands for "all symbols".

ALTER TABLE {db}.drift
    ADD COLUMN IF NOT EXISTS symbol LowCardinality(String),
    ADD COLUMN IF NOT EXISTS ks_pvalue Nullable(Float64),
    MODIFY ORDER BY (feature, window_start, model_name, model_version, symbol)
