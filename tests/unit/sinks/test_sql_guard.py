"""The read endpoint's SQL guard: what the API sends passes, every bypass attempt is refused."""

from __future__ import annotations

import doctest
from types import SimpleNamespace
from typing import Any

import pytest
from clickhouse_connect.driver.binding import finalize_query

import sinks.sql_guard
from sinks import history
from sinks.sql_guard import RefusedQuery, check_read_query, refusal, tokenize

DB = "tc"


class CapturingClient:
    """Records the SQL clickhouse-connect would send (parameters bound client-side)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        self.sent.append(finalize_query(sql, parameters, None) + "\n FORMAT Native")
        return SimpleNamespace(column_names=(), result_rows=())


def api_queries() -> list[str]:
    """Every statement shape the API and `tickcast sink accuracy` send through the endpoint."""
    client: Any = CapturingClient()
    for kind, joined in (("predictions", False), ("predictions", True), ("outcomes", False)):
        history.history_page(
            client, DB, "AAPL", 0, 10, kind=kind, with_outcomes=joined, model_name="xgb"
        )
    history.accuracy_by_model_day(client, DB, 0, 10, run_id="bt-1")
    history.psi_by_feature_week(client, DB, 0, 10, symbol="AAPL")
    return list(client.sent)


CLIENT_QUERIES = [  # clickhouse-connect's connection handshake and our health check
    "SELECT version(), timezone()",
    "SELECT name, value, readonly FROM system.settings LIMIT 10000",
    "SELECT 1 AS check\n FORMAT Native",
    "SELECT version()",
]


@pytest.mark.parametrize("sql", api_queries() + CLIENT_QUERIES)
def test_what_the_api_sends_passes(sql: str) -> None:
    check_read_query(sql, DB)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM tc.predictions FINAL FORMAT Native",
        "select * from `tc`.`predictions` as p final limit 3;",
        "WITH recent AS (SELECT * FROM tc.outcomes) SELECT count() FROM recent",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "SELECT * FROM tc.predictions AS p LEFT JOIN (SELECT * FROM tc.outcomes) AS o ON 1",
        "SELECT * FROM tc.predictions WHERE symbol IN ('A', 'B') SETTINGS join_use_nulls = 1",
        "SELECT 'it''s -- not a comment /* nor this */; nor a second statement'",
        "SELECT * FROM tc.predictions, tc.outcomes LIMIT 1",
    ],
)
def test_ordinary_reads_pass(sql: str) -> None:
    assert refusal(sql, DB) is None


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        # the probe's reproductions
        ("SELECT * FROM file('/etc/hostname','LineAsString')", "table function file()"),
        ("SELECT 1 INTO OUTFILE 'out.txt'", "INTO OUTFILE"),
        ("SELECT * FROM url('http://127.0.0.1:8000/healthz','LineAsString')", "url()"),
        # case, quoting, spacing
        ("select * from FILE('/etc/hostname')", "table function FILE()"),
        ("SELECT * FROM `file`('/etc/hostname')", "table function file()"),
        ("SELECT * FROM \"url\"('http://x')", "table function url()"),
        ("SELECT * FROM\n\tfile ( '/etc/hostname' )", "table function file()"),
        ("SELECT 1 iNtO oUtFiLe '/tmp/x' TRUNCATE", "INTO OUTFILE"),
        ("SELECT * FROM (SELECT 1) INTO OUTFILE 'x'", "INTO OUTFILE"),
        # scalar I/O functions and other table functions, in every table position
        ("SELECT file('/etc/hostname')", "function file()"),
        ("SELECT * FROM tc.predictions, numbers(10)", "numbers()"),
        ("SELECT * FROM tc.predictions AS a, s3('https://x/y')", "s3()"),
        ("SELECT * FROM tc.predictions JOIN remote('h:9000', system.one) ON 1", "remote()"),
        ("SELECT * FROM tc.predictions WHERE 1 IN (SELECT * FROM merge('tc', '.*'))", "merge()"),
        ("SELECT * FROM (file('/etc/passwd'))", "must hold a SELECT"),
        ("SELECT * FROM view(SELECT 1)", "view()"),
        ("SELECT * FROM generateRandom('a Int8')", "generateRandom()"),
        ("SELECT * FROM remoteSecure('h', 'db', 't')", "remoteSecure()"),
        ("SELECT * FROM hdfs('hdfs://h/f', 'TSV')", "hdfs()"),
        ("SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')", "mysql()"),
        ("SELECT * FROM postgresql('h:5432', 'db', 't', 'u', 'p')", "postgresql()"),
        ("SELECT * FROM jdbc('jdbc:x', 't')", "jdbc()"),
        ("SELECT * FROM odbc('DSN=x', 't')", "odbc()"),
        ("SELECT * FROM input('a Int8')", "input()"),
        ("SELECT * FROM executable('x.sh', 'TSV', 'a Int8')", "executable()"),
        ("SELECT * FROM azureBlobStorage('conn', 'c', 'b')", "azureBlobStorage()"),
        ("SELECT * FROM cluster('default', system.one)", "cluster()"),
        ("SELECT * FROM someFutureTableFunction(1)", "table function someFutureTableFunction()"),
        ("SELECT dictGet('d', 'a', 1)", "dictGet()"),
        ("SELECT joinGet('tc.j', 'v', 1)", "joinGet()"),
        ("SELECT hasColumnInTable('h', 'u', 'p', 'db', 't', 'c')", "hasColumnInTable()"),
        ("SELECT sleepEachRow(3) FROM tc.predictions", "sleepEachRow()"),
        # tables outside the endpoint's database
        ("SELECT * FROM system.query_log", "outside database tc"),
        ("SELECT * FROM `system`.`numbers`", "outside database tc"),
        ("SELECT * FROM other.predictions", "outside database tc"),
        ("SELECT * FROM predictions", "unqualified table"),
        ("SELECT * FROM tc.predictions, other.t", "outside database tc"),
        ("SELECT * FROM tc.predictions AS a, (SELECT * FROM other.t)", "outside database tc"),
        ("SELECT 1 WHERE 1 IN system.numbers", "outside database tc"),
        ("SELECT in(1, other.t)", "outside database tc"),
        ("SELECT * FROM {t:Identifier}", "query parameter"),
        ("SELECT {c:Identifier} FROM tc.predictions", "Identifier query parameters"),
        # comments that hide or split keywords
        ("SELECT 1 -- x\n", "comments"),
        ("SELECT * FROM /* x */ file('/etc/hostname')", "comments"),
        ("SELECT 1 # x", "comments"),
        ("SELECT 1 INTO/**/OUTFILE 'x'", "comments"),
        # settings and formats
        ("SELECT 1 SETTINGS readonly = 0", "setting readonly"),
        ("SELECT 1 SETTINGS join_use_nulls = 1, readonly = 0", "setting readonly"),
        ("SELECT 1 SETTINGS max_result_rows = 0", "setting max_result_rows"),
        ("SELECT 1 FORMAT Native SETTINGS max_execution_time = 0", "max_execution_time"),
        ("SELECT 1 FORMAT Template", "format 'Template'"),
        ("SELECT 1 FORMAT CustomSeparated", "format 'CustomSeparated'"),
        ("SELECT 1 FORMAT Protobuf", "format 'Protobuf'"),
        # more than one statement, other statements
        ("SELECT 1; DROP TABLE tc.predictions", "one statement"),
        ("SELECT 1;;SELECT 2", "one statement"),
        ("SHOW TABLES", "only SELECT"),
        ("DESCRIBE tc.predictions", "only SELECT"),
        ("EXPLAIN SELECT 1", "only SELECT"),
        ("INSERT INTO tc.predictions SELECT * FROM tc.predictions", "only SELECT"),
        ("SET readonly = 0", "only SELECT"),
        ("SYSTEM SHUTDOWN", "only SELECT"),
        ("(DROP TABLE tc.x)", "only SELECT"),
        # lexical tricks
        ("SELECT $$heredoc$$", "unexpected character '$'"),
        ("SELECT 1\u00a0FROM tc.predictions", "unexpected character"),
        ("SELECT 'unterminated", "unexpected character"),
        ("", "empty query"),
        (";", "empty query"),
        ("SELECT " + "1," * 200_000 + "1", "longer than"),
    ],
)
def test_bypass_attempts_are_refused(sql: str, reason: str) -> None:
    with pytest.raises(RefusedQuery) as info:
        check_read_query(sql, DB)
    assert reason in info.value.reason


def test_tokens_keep_strings_and_quoted_names_whole() -> None:
    tokens = tokenize("SELECT `a b`, 'x''y -- z' FROM \"db\".t")
    assert [t.text for t in tokens] == ["SELECT", "a b", ",", "'x''y -- z'", "FROM", "db", ".", "t"]
    assert [t.kind for t in tokens][:4] == ["word", "quoted", "punct", "string"]


def test_doctests() -> None:
    result = doctest.testmod(sinks.sql_guard, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
