-- Core analytical tables. Idempotent by design: ReplacingMergeTree keyed by what makes a row
-- unique, so a repeated insert (a retried batch) collapses to one row on merge / FINAL.
-- Retention (TTL) runs on ingested_at, not event time: replays of old market data must not
-- be purged on arrival. Defaults follow the original design; `tickcast` aligns them with
-- the configured retention on every migrate.

CREATE TABLE IF NOT EXISTS {db}.ticks (
    symbol LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    kind LowCardinality(String),
    open Float64, high Float64, low Float64, close Float64, volume Float64,
    bid Nullable(Float64), ask Nullable(Float64),
    source LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (symbol, ts)
TTL toDateTime(ingested_at) + INTERVAL 7 YEAR;

CREATE TABLE IF NOT EXISTS {db}.features (
    symbol LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    feature_set_version LowCardinality(String),
    values Array(Float64),
    correlation_id String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (symbol, ts, feature_set_version)
TTL toDateTime(ingested_at) + INTERVAL 7 YEAR;

CREATE TABLE IF NOT EXISTS {db}.predictions (
    symbol LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    horizon UInt16,
    model_name LowCardinality(String),
    model_version String,
    role LowCardinality(String),
    prob_up Float64,
    expected_return Float64,
    feature_set_version LowCardinality(String),
    scoring_latency_ms Float32,
    correlation_id String,
    run_id LowCardinality(String) DEFAULT '',
    produced_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (run_id, symbol, ts, model_name, model_version, horizon)
TTL toDateTime(ingested_at) + INTERVAL 3 YEAR;

CREATE TABLE IF NOT EXISTS {db}.outcomes (
    symbol LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    horizon UInt16,
    model_name LowCardinality(String),
    model_version String,
    role LowCardinality(String),
    prob_up Float64,
    expected_return Float64,
    realized_return Float64,
    realized_ts DateTime64(3, 'UTC'),
    hit UInt8,
    loss Float64,
    strategy_return Float64,
    run_id LowCardinality(String) DEFAULT '',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (run_id, symbol, ts, model_name, model_version, horizon)
TTL toDateTime(ingested_at) + INTERVAL 3 YEAR;

CREATE TABLE IF NOT EXISTS {db}.drift (
    feature LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    psi Float64,
    ks Nullable(Float64),
    n UInt64,
    model_name LowCardinality(String),
    model_version String,
    feature_set_version LowCardinality(String),
    level LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (feature, window_start, model_name, model_version)
TTL toDateTime(ingested_at) + INTERVAL 3 YEAR;

CREATE TABLE IF NOT EXISTS {db}.model_events (
    event_type LowCardinality(String),
    model_name LowCardinality(String),
    version String,
    from_version Nullable(String),
    role LowCardinality(String),
    reason String,
    statistics Map(String, Float64),
    inputs Map(String, String),
    actor String,
    ts DateTime64(3, 'UTC'),
    correlation_id String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, model_name, version, event_type)
TTL toDateTime(ingested_at) + INTERVAL 10 YEAR;

CREATE TABLE IF NOT EXISTS {db}.model_metrics (
    model_name LowCardinality(String),
    model_version String,
    role LowCardinality(String),
    metric LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    value Float64,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (model_name, model_version, metric, ts)
TTL toDateTime(ingested_at) + INTERVAL 3 YEAR
