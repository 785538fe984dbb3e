"""The read endpoint's SQL guard: one SELECT over this database's tables, and nothing else.

The sink's read endpoint (``sinks.read_endpoint``) runs SQL it receives on the chDB engine the
sink writes with. The engine handle it uses is ``readonly=1``, but readonly ClickHouse still
writes files (``INTO OUTFILE``), reads them (the ``file()`` function) and runs several table
functions (``numbers``, ``merge``, ``view``, ``generateRandom``), so every statement is first
tokenized here and refused unless:

* it is one ``SELECT``/``WITH`` statement (a trailing ``;`` is fine, a second statement is not);
* it has no comment, heredoc or character outside ASCII SQL (a string or quoted name may hold
  anything), so what this module sees is what the engine parses;
* every table it reads (after ``FROM``, ``JOIN``, a comma in a ``FROM`` list, ``IN``) is
  ``<database>.<table>`` in the endpoint's database, one of :data:`SYSTEM_TABLES`, or a
  ``WITH name AS (...)`` of the same query — never ``name(...)``, a table function;
* it calls none of :data:`DENIED_FUNCTIONS` (files, URLs, other servers, dictionaries, join
  tables, sleeping), has no ``INTO OUTFILE``, formats its output with one of
  :data:`ALLOWED_FORMATS` and changes no setting beyond :data:`ALLOWED_SETTINGS`;
* it has no ``{name:Identifier}`` parameter (a table name chosen by the caller).

>>> check_read_query("SELECT count() FROM db.predictions FINAL FORMAT Native", "db")
>>> refusal("SELECT * FROM file('/etc/hostname', 'LineAsString')", "db")
'table function file() in FROM: only database.table references are allowed'
>>> refusal("SELECT 1 INTO OUTFILE 'out.txt'", "db")
'INTO OUTFILE is not allowed'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from tickcast.errors import RequestError


def _words(text: str) -> list[str]:
    return text.split()


#: Tables outside the endpoint's database a query may read (clickhouse-connect reads
#: ``system.settings`` when it connects).
SYSTEM_TABLES = frozenset({("system", "settings"), ("system", "one")})
#: Output formats a query may ask for (no format that reads a schema or template file).
ALLOWED_FORMATS = frozenset(
    name.lower()
    for name in _words("""
    Native RowBinary RowBinaryWithNames RowBinaryWithNamesAndTypes TabSeparated TabSeparatedRaw
    TabSeparatedWithNames TabSeparatedWithNamesAndTypes TSV TSVRaw TSVWithNames
    TSVWithNamesAndTypes CSV CSVWithNames CSVWithNamesAndTypes JSON JSONCompact JSONEachRow
    JSONCompactEachRow JSONStringsEachRow Values Pretty PrettyCompact Arrow ArrowStream Parquet
    """)
)
#: Settings a query's ``SETTINGS`` clause may name (the engine refuses any change of value
#: under ``readonly=1``; the endpoint's handle already has ``join_use_nulls = 1``).
ALLOWED_SETTINGS = frozenset({"join_use_nulls"})
#: Functions refused anywhere (lower case): table functions and functions doing I/O.
DENIED_FUNCTIONS = frozenset(
    _words("""
    file filecluster url urlcluster s3 s3cluster gcs oss cosn azureblobstorage
    azureblobstoragecluster hdfs hdfscluster remote remotesecure cluster clusterallreplicas
    mysql postgresql jdbc odbc mongodb redis sqlite input executable merge view viewifpermitted
    viewexplain generaterandom generateseries generate_series numbers numbers_mt zeros zeros_mt
    null dictionary values loop fuzzjson fuzzquery arrowflight ytsaurus catboostevaluate
    modelevaluate hascolumnintable addresstoline addresstolinewithinlines addresstosymbol
    demangle sleep sleepeachrow
    """)
)
#: Name prefixes refused as functions (families: dictGet*, joinGet*, iceberg*, deltaLake*...).
DENIED_PREFIXES = tuple(
    _words("""
    dict joinget iceberg deltalake hudi paimon datalake s3 azure hdfs url file remote mysql
    postgres mongo executable timeseries prometheus mergetree
    """)
)
MAX_SQL_CHARS = 256 * 1024

_IN_WORDS = frozenset({"in", "notin", "globalin", "globalnotin", "nullin", "notnullin"})
# a FROM list ends at the next clause (at the same parenthesis depth)
_CLAUSES = frozenset(
    _words("""
    WHERE PREWHERE GROUP ORDER LIMIT HAVING SETTINGS FORMAT UNION EXCEPT INTERSECT WINDOW
    QUALIFY ON USING ARRAY SELECT JOIN OFFSET
    """)
)
_TOKEN = re.compile(
    r"""(?P<space>[ \t\r\n\f\v]+)
      | (?P<comment>--|/\*|\#)
      | (?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<quoted>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
      | (?P<number>0[xX][0-9a-fA-F]+|0[bB][01]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<param>\{[^{}]*\})
      | (?P<punct>::|->|<=|>=|!=|<>|\|\||==|[(),.;*=<>+\-/%?:\[\]])
    """,
    re.X | re.S,
)


class RefusedQuery(RequestError, ValueError):
    """A statement the read endpoint does not run; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Token(NamedTuple):
    """One lexical token: its kind (word, quoted, string, number, param, punct) and text
    (a quoted identifier's text is its unquoted name)."""

    kind: str
    text: str

    def is_word(self, *words: str) -> bool:
        """An unquoted keyword or name, compared case-insensitively."""
        return self.kind == "word" and self.text.upper() in words

    @property
    def is_name(self) -> bool:
        """A name: unquoted, or in backticks or double quotes."""
        return self.kind in {"word", "quoted"}


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    return re.sub(r"\\(.)", r"\1", body.replace(quote * 2, quote), flags=re.S)


def tokenize(sql: str) -> list[Token]:
    """The tokens of ``sql`` without white space; :class:`RefusedQuery` on a comment or on a
    character that is not part of plain SQL.

    >>> [t.text for t in tokenize("SELECT `a b`, 'x''y' FROM db.t")]
    ['SELECT', 'a b', ',', "'x''y'", 'FROM', 'db', '.', 't']
    """
    tokens: list[Token] = []
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if match is None:
            raise RefusedQuery(f"unexpected character {sql[pos]!r} at {pos}")
        kind = match.lastgroup or ""
        if kind == "comment":
            raise RefusedQuery("comments are not allowed")
        if kind != "space":
            text = _unquote(match.group()) if kind == "quoted" else match.group()
            tokens.append(Token(kind, text))
        pos = match.end()
    return tokens


def _denied(name: str) -> bool:
    lowered = name.lower()
    return lowered in DENIED_FUNCTIONS or lowered.startswith(DENIED_PREFIXES)


def _cte_names(tokens: list[Token]) -> set[str]:
    """Names bound by ``WITH name AS (...)`` (or ``, name AS (...)``)."""
    return {
        tokens[i].text
        for i in range(len(tokens) - 2)
        if tokens[i].is_name and tokens[i + 1].is_word("AS") and tokens[i + 2].text == "("
    }


def _group_args(tokens: list[Token], open_at: int) -> Iterator[tuple[int, list[Token]]]:
    """(index of its first token, tokens) of each top-level argument of the group that opens
    at ``open_at``."""
    depth, start = 0, open_at + 1
    arg: list[Token] = []
    for i in range(open_at + 1, len(tokens)):
        token = tokens[i]
        if token.kind == "punct" and token.text in "([":
            depth += 1
        elif token.kind == "punct" and token.text in ")]":
            if depth == 0:
                break
            depth -= 1
        if depth == 0 and token.kind == "punct" and token.text == ",":
            yield start, arg
            start, arg = i + 1, []
        else:
            arg.append(token)
    yield start, arg


class _Checker:
    def __init__(self, tokens: list[Token], database: str) -> None:
        self.tokens = tokens
        self.database = database
        self.ctes = _cte_names(tokens)

    def at(self, i: int) -> Token:
        return self.tokens[i] if i < len(self.tokens) else Token("end", "")

    def table(self, i: int, where: str) -> None:
        """The table reference starting at token ``i`` (after FROM, JOIN, a comma, IN)."""
        first = self.at(i)
        if first.text == "(" and first.kind == "punct":
            if where in {"FROM", "JOIN"}:
                j = i
                while self.at(j).text == "(" and self.at(j).kind == "punct":
                    j += 1
                if not self.at(j).is_word("SELECT", "WITH"):
                    raise RefusedQuery(f"{where} (...) must hold a SELECT")
            return
        if first.kind == "param":
            raise RefusedQuery(f"a query parameter as a table in {where} is not allowed")
        if not first.is_name:
            raise RefusedQuery(f"{where} must name database.table, got {first.text!r}")
        if self.at(i + 1).text == "." and self.at(i + 2).is_name:
            database, table, after = first.text, self.at(i + 2).text, self.at(i + 3)
        else:
            database, table, after = "", first.text, self.at(i + 1)
        if after.kind == "punct" and after.text == "(":
            raise RefusedQuery(
                f"table function {table}() in {where}: only database.table references are allowed"
            )
        if not database:
            if table not in self.ctes:
                raise RefusedQuery(f"unqualified table {table!r}: name it {self.database}.<table>")
        elif database != self.database and (database, table) not in SYSTEM_TABLES:
            raise RefusedQuery(f"table {database}.{table} is outside database {self.database}")

    def settings(self, i: int) -> None:
        """``SETTINGS name = value, ...`` from token ``i`` (the first name)."""
        while True:
            name = self.at(i)
            if not name.is_name or self.at(i + 1).text != "=":
                raise RefusedQuery("malformed SETTINGS clause")
            if name.text.lower() not in ALLOWED_SETTINGS:
                raise RefusedQuery(f"setting {name.text} cannot be changed here")
            i += 2
            while self.at(i).kind != "end" and self.at(i).text not in {",", ")"}:
                if self.at(i).is_word("FORMAT", "SETTINGS"):
                    return
                i += 1
            if self.at(i).text != ",":
                return
            i += 1

    def run(self) -> None:
        tokens, from_lists = self.tokens, set()
        depth = 0
        for i, token in enumerate(tokens):
            nxt = self.at(i + 1)
            calls = nxt.kind == "punct" and nxt.text == "("
            if token.kind == "punct":
                if token.text == "(":
                    depth += 1
                elif token.text == ")":
                    from_lists.discard(depth)
                    depth -= 1
                elif token.text == "," and depth in from_lists:
                    self.table(i + 1, "FROM")
                continue
            if token.kind == "param" and re.search(r":\s*identifier", token.text, re.I):
                raise RefusedQuery("Identifier query parameters are not allowed")
            if not token.is_name:
                continue
            if calls and _denied(token.text):
                raise RefusedQuery(f"function {token.text}() is not allowed")
            if token.kind != "word" or self.at(i - 1).text == ".":
                continue  # quoted, or the table part of db.settings: a name, not a keyword
            word = token.text.upper()
            if word in {"INTO", "OUTFILE", "INFILE"}:
                raise RefusedQuery("INTO OUTFILE is not allowed")
            if word in _CLAUSES:
                from_lists.discard(depth)
            if word == "FROM":
                from_lists.add(depth)
                self.table(i + 1, "FROM")
            elif word == "JOIN" and not self.at(i - 1).is_word("ARRAY"):
                self.table(i + 1, "JOIN")
            elif word.lower() in _IN_WORDS and calls:
                for start, arg in _group_args(tokens, i + 1):
                    names = [t for t in arg if t.text != "."]
                    if arg and all(t.is_name for t in names) and len(names) <= 2:
                        self.table(start, "IN")  # in(x, db.t): the function form of IN
            elif word == "IN":
                self.table(i + 1, "IN")
            elif word == "FORMAT" and not calls:
                if not nxt.is_name or nxt.text.lower() not in ALLOWED_FORMATS:
                    raise RefusedQuery(f"output format {nxt.text!r} is not allowed")
            elif word == "SETTINGS":
                self.settings(i + 1)


def check_read_query(sql: str, database: str) -> None:
    """Return if ``sql`` may run on the read endpoint of ``database``; else raise
    :class:`RefusedQuery` with the reason (see the module docstring for the rules)."""
    if len(sql) > MAX_SQL_CHARS:
        raise RefusedQuery(f"query longer than {MAX_SQL_CHARS} characters")
    tokens = tokenize(sql)
    while tokens and tokens[-1] == Token("punct", ";"):
        tokens.pop()
    if not tokens:
        raise RefusedQuery("empty query")
    if Token("punct", ";") in tokens:
        raise RefusedQuery("one statement per request: read-only endpoint")
    first = next((t for t in tokens if t != Token("punct", "(")), Token("end", ""))
    if not first.is_word("SELECT", "WITH"):
        raise RefusedQuery(f"read-only endpoint: only SELECT queries, not {first.text.upper()}")
    _Checker(tokens, database).run()


def refusal(sql: str, database: str) -> str | None:
    """The reason ``sql`` is refused, or None when it may run.

    >>> refusal("SELECT 1; DROP TABLE db.t", "db")
    'one statement per request: read-only endpoint'
    """
    try:
        check_read_query(sql, database)
    except RefusedQuery as exc:
        return exc.reason
    return None
