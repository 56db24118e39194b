"""The explicit PostgreSQL → Arrow type map: one table of rules, `RULES`.

The warehouse (Delta Lake, Databricks) cannot read Arrow extension types and has no uuid, json,
interval or time types, so every column becomes a plain Arrow type:

    PostgreSQL                          Arrow                     read as / note
    ----------------------------------  ------------------------  ------------------------------------
    smallint, integer, bigint           int16, int32, int64       binary COPY
    real, double precision              float32, float64          binary COPY
    boolean                             bool                      binary COPY
    text, varchar(n)                    string                    binary COPY
    char(n)                             string                    trailing blanks trimmed (as ::text)
    name, "char"                        string                    ::text
    bytea                               binary                    binary COPY, every byte kept
    date                                date32                    ±infinity → 9999-12-31 / 0001-01-01
    timestamp                           timestamp[us]             naive, as stored; ±infinity clamped
    timestamptz                         timestamp[us, tz=UTC]     the UTC instant; ±infinity clamped
    numeric(p,s) with 0 ≤ s ≤ p ≤ 38    decimal128(p, s)          exact, from the decimal text
    numeric, numeric(p,s) otherwise     string                    the exact decimal text
    uuid                                string                    canonical lower-case 8-4-4-4-12
    json, jsonb                         string                    the JSON text (jsonb: normalised)
    interval                            string                    ISO 8601, e.g. P1Y2M3DT4H5M6S
    time, timetz                        string                    e.g. 13:45:00.5, 13:45:00+02
    inet                                string                    as PostgreSQL shows it: 10.0.0.1, 10.0.0.0/8
    enum types                          string                    the label
    domain over any type above          as its base type
    one-dimensional array of the above  list<element type>        e.g. numeric(10,2)[] → list<decimal>
    anything else                       string via ::text         `mapped=False`, never dropped

"anything else" covers money, cidr, macaddr, xml, bit, tsvector, geometric types, ranges,
composite types, multi-dimensional arrays, arrays of unmapped types and domains over unmapped
types. ±infinity dates and timestamps become the largest / smallest value the warehouse holds
(9999-12-31 23:59:59.999999 and 0001-01-01), so "valid until infinity" still sorts last.

How a column is read costs the source: its CPU bounds an extraction. `native` and `decoded` columns
are selected as they are and arrive in PostgreSQL's binary form; `decoded` ones (uuid, json, jsonb)
and the ±infinity clamps of scalar dates and timestamps are finished on the client by the vectorised
`decoders`, into exactly the values PostgreSQL's text would give. `char(n)` is one of them: PostgreSQL
pads it with blanks and ignores them (in `=`, `length()`, `LIKE` after a cast to text); the
lakehouse's strings would not, so `'EUROPE' = r_name` would be false there. Its column mapping keeps
`character(n)` as the source type, which `describe_table` shows. `text` columns, and arrays of
anything not `native`, are cast by the server: for numeric that is the cheaper side (measured, 1M
rows: `::text` costs the server 0.04 s more than its binary form, ADBC's decoding of that binary
form costs the client 0.3 s more than reading the text).
A NaN or ±Infinity in a numeric(p,s) column cannot be a decimal: the extraction fails naming the
column (sync the column as text through a view). Every output field has no metadata and is
nullable exactly when the column is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
from lakegate.common.contracts.runs import ColumnMapping
from lakegate.common.contracts.sources import SourceColumn
from lakegate.extractor.decoders import Decoder, blank_trimmed, date_clamp, json_text, timestamp_clamp, uuid_text

#: Largest decimal the warehouse holds exactly.
MAX_DECIMAL_PRECISION = 38


@dataclass(frozen=True)
class PgType:
    """One row of `pg_type`, as much as the map needs."""

    oid: int
    schema: str
    name: str
    kind: str  # typtype: b base, c composite, d domain, e enum, p pseudo, r range, m multirange
    category: str  # typcategory: A array, ...
    element: int  # typelem
    base: int  # typbasetype, for domains
    base_typmod: int  # typtypmod, for domains

    @property
    def is_array(self) -> bool:
        return self.category == "A" and self.element != 0


TypeCatalog = Mapping[int, PgType]


@dataclass(frozen=True)
class Rule:
    """How values of some PostgreSQL types are read and which Arrow type they become.

    `read="native"`: ADBC's binary COPY already yields the Arrow type; `read="decoded"`: it is read
    in binary too and `decode` turns it into the value's text (then cast, when the Arrow type is not
    a string); `read="text"`: the column is selected as `::text` and, when the Arrow type is not a
    string, cast from that exact text. `infinite` holds the SQL values that replace -infinity and
    infinity in arrays, and `decode` does the same for a scalar column.
    """

    types: frozenset[str]
    arrow: Callable[[int], pa.DataType]  # from the column's typmod
    read: Literal["native", "decoded", "text"]
    infinite: tuple[str, str] | None = None
    decode: Decoder | None = None
    text: str = "{c}::pg_catalog.text"  # the SELECT expression of a `read="text"` column


def _fixed(arrow_type: pa.DataType) -> Callable[[int], pa.DataType]:
    return lambda _typmod: arrow_type


def numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    """`numeric(p,s)` from its typmod; None for an unconstrained numeric."""
    if typmod < 4:
        return None
    packed = typmod - 4
    precision = (packed >> 16) & 0xFFFF
    scale = ((packed & 0x7FF) ^ 1024) - 1024  # an 11-bit signed scale since PostgreSQL 15
    return precision, scale


def _numeric(typmod: int) -> pa.DataType:
    shape = numeric_precision_scale(typmod)
    if shape is not None and 0 <= shape[1] <= shape[0] <= MAX_DECIMAL_PRECISION:
        return pa.decimal128(*shape)
    return pa.string()


RULES: tuple[Rule, ...] = (
    Rule(frozenset({"int2"}), _fixed(pa.int16()), "native"),
    Rule(frozenset({"int4"}), _fixed(pa.int32()), "native"),
    Rule(frozenset({"int8"}), _fixed(pa.int64()), "native"),
    Rule(frozenset({"float4"}), _fixed(pa.float32()), "native"),
    Rule(frozenset({"float8"}), _fixed(pa.float64()), "native"),
    Rule(frozenset({"bool"}), _fixed(pa.bool_()), "native"),
    Rule(frozenset({"text", "varchar"}), _fixed(pa.string()), "native"),
    Rule(frozenset({"bpchar"}), _fixed(pa.string()), "decoded", decode=blank_trimmed),
    Rule(frozenset({"name", "char"}), _fixed(pa.string()), "text"),
    Rule(frozenset({"bytea"}), _fixed(pa.binary()), "native"),
    Rule(frozenset({"date"}), _fixed(pa.date32()), "native", ("'0001-01-01'", "'9999-12-31'"), date_clamp),
    Rule(
        frozenset({"timestamp"}),
        _fixed(pa.timestamp("us")),
        "native",
        ("'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'"),
        timestamp_clamp,
    ),
    Rule(
        frozenset({"timestamptz"}),
        _fixed(pa.timestamp("us", tz="UTC")),
        "native",
        ("'0001-01-01 00:00:00+00'", "'9999-12-31 23:59:59.999999+00'"),
        timestamp_clamp,
    ),
    Rule(frozenset({"numeric"}), _numeric, "text"),
    Rule(frozenset({"uuid"}), _fixed(pa.string()), "decoded", decode=uuid_text),
    Rule(frozenset({"json", "jsonb"}), _fixed(pa.string()), "decoded", decode=json_text),
    Rule(frozenset({"interval", "time", "timetz"}), _fixed(pa.string()), "text"),
    # inet's output function, not ::text: `'10.0.0.1'::inet::text` is '10.0.0.1/32', which `= '10.0.0.1'` misses.
    Rule(frozenset({"inet"}), _fixed(pa.string()), "text", text="pg_catalog.textin(pg_catalog.inet_out({c}))"),
)
ENUM_RULE = Rule(frozenset(), _fixed(pa.string()), "text")
_BY_NAME: dict[str, Rule] = {name: rule for rule in RULES for name in rule.types}


def rule_for(pg_type: PgType) -> Rule | None:
    """The rule for a (non-domain, non-array) type; None when it has none."""
    if pg_type.kind == "e":
        return ENUM_RULE
    if pg_type.schema == "pg_catalog":
        return _BY_NAME.get(pg_type.name)
    return None


@dataclass(frozen=True)
class ColumnPlan:
    """How one source column is selected and which Arrow field it becomes.

    `select` is an SQL expression with `{c}` where the quoted column name goes; `decode` finishes
    what ADBC read of it on the client. `base_type` is the `pg_catalog` type under any domains
    (e.g. `timestamptz`), for columns that are not arrays.
    """

    name: str
    source_type: str
    nullable: bool
    arrow_type: pa.DataType
    mapped: bool
    select: str
    is_array: bool = False
    base_type: str | None = None
    decode: Decoder | None = None
    decoded_text: bool = False  # read in binary, but the warehouse keeps PostgreSQL's text of it

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, nullable=self.nullable)

    def expression(self, quoted: str) -> str:
        """The SELECT-list expression for this column, given its quoted name."""
        return self.select.format(c=quoted)

    def text_expression(self, quoted: str) -> str:
        """As `expression`, but in the form the warehouse keeps when that is the source's text."""
        return f"{quoted}::pg_catalog.text" if self.decoded_text else self.expression(quoted)

    def as_source_column(self) -> SourceColumn:
        return SourceColumn(
            name=self.name,
            type=self.source_type,
            nullable=self.nullable,
            arrow_type=str(self.arrow_type),
            mapped=self.mapped,
        )

    def as_mapping(self) -> ColumnMapping:
        return ColumnMapping(
            name=self.name, source_type=self.source_type, arrow_type=str(self.arrow_type), mapped=self.mapped
        )


def _through_domains(pg_type: PgType, typmod: int, types: TypeCatalog) -> tuple[PgType, int, bool]:
    """The type under any domains, its typmod, and whether a domain was crossed."""
    crossed = False
    while pg_type.kind == "d":
        typmod = pg_type.base_typmod
        pg_type = types[pg_type.base]
        crossed = True
    return pg_type, typmod, crossed


def _clamped(expression: str, infinite: tuple[str, str], type_name: str) -> str:
    low, high = infinite
    return (
        f"CASE WHEN {expression} = 'infinity' THEN {high}::pg_catalog.{type_name} "
        f"WHEN {expression} = '-infinity' THEN {low}::pg_catalog.{type_name} ELSE {expression} END"
    )


def plan_column(
    name: str,
    type_oid: int,
    typmod: int,
    *,
    source_type: str,
    nullable: bool,
    dimensions: int,
    types: TypeCatalog,
) -> ColumnPlan:
    """Apply the map to one column; `types` must hold its type, domains' bases and array elements."""
    pg_type, typmod, crossed = _through_domains(types[type_oid], typmod, types)

    def as_text(mapped: bool) -> ColumnPlan:
        return ColumnPlan(name, source_type, nullable, pa.string(), mapped, "{c}::pg_catalog.text")

    if not pg_type.is_array:
        rule = rule_for(pg_type)
        if rule is None:
            return as_text(mapped=False)
        base = pg_type.name if pg_type.schema == "pg_catalog" else None
        if rule.read == "text":
            return ColumnPlan(name, source_type, nullable, rule.arrow(typmod), True, rule.text, base_type=base)
        select = f"{{c}}::pg_catalog.{pg_type.name}" if crossed else "{c}"
        return ColumnPlan(
            name,
            source_type,
            nullable,
            rule.arrow(typmod),
            True,
            select,
            base_type=base,
            decode=rule.decode,
            decoded_text=rule.read == "decoded",
        )

    element, element_typmod, element_crossed = _through_domains(types[pg_type.element], typmod, types)
    rule = None if element.is_array else rule_for(element)
    if rule is None or dimensions > 1 or rule.text != Rule.text:
        # ADBC flattens nested arrays; PostgreSQL's array text keeps their shape. An element read through
        # its own expression (inet) has no `::text[]` form that matches it, so such arrays stay whole text.
        return as_text(mapped=False)
    arrow_type = pa.list_(rule.arrow(element_typmod))
    if rule.read != "native":
        return ColumnPlan(name, source_type, nullable, arrow_type, True, "{c}::pg_catalog.text[]", is_array=True)
    select = f"{{c}}::pg_catalog.{element.name}[]" if crossed or element_crossed else "{c}"
    if rule.infinite:
        each = _clamped("e.v", rule.infinite, element.name)
        select = (
            f"CASE WHEN {select} IS NULL THEN NULL ELSE ARRAY(SELECT {each} "
            f"FROM pg_catalog.unnest({select}) WITH ORDINALITY AS e(v, n) ORDER BY e.n) END"
        )
    return ColumnPlan(name, source_type, nullable, arrow_type, True, select, is_array=True)


def cast_column(values: pa.Array, plan: ColumnPlan) -> pa.Array:
    """Turn what ADBC read into the planned Arrow type (decimals from their exact text)."""
    if plan.decode is not None:
        values = plan.decode(values)
    if values.type == plan.arrow_type:
        return values
    return values.cast(plan.arrow_type, safe=True)
