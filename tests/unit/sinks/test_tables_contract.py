"""The ClickHouse column lists of sinks/tables.py against the .avsc, the row tuples and the SQL.

* every contract field is a column (possibly ``renamed``) or declared ``unstored``;
* ``to_row`` of a probe record (each field a distinct value) puts each field's value in the
  column of its name: a tuple whose positions drift from ``columns`` fails;
* the migrations' ``CREATE TABLE`` / ``ADD COLUMN`` give the same columns in the same order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from schemas.contracts import contract
from sinks.tables import MAPPINGS, TableMapping
from tests.unit.schemas.probe import probe

MIGRATIONS = Path(__file__).resolve().parents[3] / "sinks" / "migrations"
RUN_ID = "run-probe"
EXTRA = {"run_id"}  # columns that are no record field
DEFAULTED = {"ingested_at"}  # columns the table fills itself
CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+) \((.*?)\n\) ENGINE", re.S)
ALTER = re.compile(r"ALTER TABLE \{db\}\.(\w+)(.*?)(?:;|\Z)", re.S)
ADD = re.compile(r"ADD COLUMN IF NOT EXISTS (\w+)")


def sql_columns() -> dict[str, list[str]]:
    """Each table's columns after every migration, in order (comments and types dropped)."""
    tables: dict[str, list[str]] = {}
    for path in sorted(MIGRATIONS.glob("*.sql")):
        sql = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
        for table, body in CREATE.findall(sql):
            # one definition per comma outside parentheses: "open Float64, high Float64" is two
            depth, parts, current = 0, [], ""
            for ch in body:
                depth += ch == "("
                depth -= ch == ")"
                if ch == "," and depth == 0:
                    parts.append(current)
                    current = ""
                else:
                    current += ch
            parts.append(current)
            tables[table] = [p.split()[0] for p in parts if p.strip()]
        for table, body in ALTER.findall(sql):
            tables[table] += ADD.findall(body)
    return tables


def _cell(value: Any) -> Any:
    """How a record value looks in a row (enums as str, booleans as 0/1, arrays as lists)."""
    if isinstance(value, bool):
        return int(value)
    return value


@pytest.mark.parametrize("mapping", MAPPINGS.values(), ids=list(MAPPINGS))
def test_every_contract_field_is_a_column_or_declared_unstored(mapping: TableMapping) -> None:
    fields = contract(mapping.schema).fields
    stored = [mapping.renamed.get(c, c) for c in mapping.columns if c not in EXTRA]
    assert set(stored) <= set(fields), "a column that is no field of the contract"
    assert set(stored).isdisjoint(mapping.unstored)
    assert set(stored) | mapping.unstored == set(fields), "a field neither stored nor unstored"


@pytest.mark.parametrize("mapping", MAPPINGS.values(), ids=list(MAPPINGS))
def test_each_value_lands_in_the_column_of_its_field(mapping: TableMapping) -> None:
    record = probe(mapping.schema)
    row = dict(zip(mapping.columns, mapping.to_row(record, RUN_ID), strict=True))
    for column, value in row.items():
        if column in EXTRA:
            assert value == RUN_ID, column
        else:
            assert value == _cell(record[mapping.renamed.get(column, column)]), column


@pytest.mark.parametrize("mapping", MAPPINGS.values(), ids=list(MAPPINGS))
def test_columns_are_the_migrated_table(mapping: TableMapping) -> None:
    table = [c for c in sql_columns()[mapping.table] if c not in DEFAULTED]
    assert table == list(mapping.columns)


def test_the_sql_parser_sees_every_table() -> None:
    tables = sql_columns()
    assert {m.table for m in MAPPINGS.values()} <= set(tables)
    assert tables["ticks"][3:8] == ["open", "high", "low", "close", "volume"]
    assert tables["drift"][-2:] == ["symbol", "ks_pvalue"]  # from 0002's ALTER
