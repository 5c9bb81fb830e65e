{#- Dialect pieces for PostgreSQL. Each macro has a twin of the same name in sqlite.sql. -#}
{% macro date_param(name) %}cast(:{{ name }} as date){% endmacro %}
{#- date_part (double precision), not extract: extract returns numeric since PostgreSQL 14, and the
    three of them over 6.4 M subscribers took 1.7 s against 0.95 s (benchmarks/results/segmentation.md) -#}
{% macro year(expr) %}cast(date_part('year', {{ expr }}) as integer){% endmacro %}
{% macro month(expr) %}cast(date_part('month', {{ expr }}) as integer){% endmacro %}
{% macro day(expr) %}cast(date_part('day', {{ expr }}) as integer){% endmacro %}
{% macro pad2(expr) %}lpad(cast({{ expr }} as text), 2, '0'){% endmacro %}
{% macro as_real(expr) %}cast({{ expr }} as double precision){% endmacro %}
{#- ends a subquery so the planner keeps it as one (its columns computed once per row, never inlined
    into each place that uses them); sqlite.sql's twin does the same. order_by is ignored here: a sort
    would cost more than it saves, the stage table is indexed after the load -#}
{% macro fence(order_by=none) %}offset 0{% endmacro %}
{#- the slice of a customer: its last digit mod n; any other last character (a malformed number in a
    data mart's view) still falls in exactly one slice, never in none or an error -#}
{% macro slice_of(expr, n) %}(abs(ascii(right({{ expr }}, 1)) - 48) % {{ n }}){% endmacro %}
{% macro ts_param(name) %}cast(:{{ name }} as timestamp){% endmacro %}
{% macro as_bigint(expr) %}cast({{ expr }} as bigint){% endmacro %}
{% macro lpad0(expr, n) %}lpad(cast({{ expr }} as text), {{ n }}, '0'){% endmacro %}
{% macro month_of(expr) %}cast(date_part('month', {{ expr }}) as integer){% endmacro %}
{% macro add_days(expr, n) %}({{ expr }} + {{ n }}){% endmacro %}
{% macro date_of(expr) %}cast({{ expr }} as date){% endmacro %}
{% macro month_start(expr, n=0) %}cast(date_trunc('month', {{ expr }}) + interval '{{ n }} months' as date){% endmacro %}
{% macro first_field(expr, sep) %}split_part({{ expr }}, '{{ sep }}', 1){% endmacro %}
{#- the first 32 bits of md5(expr) as a non-negative integer; sqlite.sql's twin computes the same -#}
{% macro hash32(expr) %}cast(cast('x' || substr(md5({{ expr }}), 1, 8) as bit(32)) as bigint){% endmacro %}
