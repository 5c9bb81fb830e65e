{#- Dialect pieces for SQLite. Each macro has a twin of the same name in postgresql.sql.
    Dates are stored as ISO text ('YYYY-MM-DD'), so date parts are substrings. -#}
{% macro date_param(name) %}:{{ name }}{% endmacro %}
{% macro year(expr) %}cast(substr({{ expr }}, 1, 4) as integer){% endmacro %}
{% macro month(expr) %}cast(substr({{ expr }}, 6, 2) as integer){% endmacro %}
{% macro day(expr) %}cast(substr({{ expr }}, 9, 2) as integer){% endmacro %}
{% macro pad2(expr) %}substr('0' || ({{ expr }}), -2){% endmacro %}
{% macro as_real(expr) %}cast({{ expr }} as real){% endmacro %}
{#- a subquery with an OFFSET is never flattened into its user (SQLite runs it as a co-routine): its
    columns are computed once per row instead of once per reference. order_by: rows come out in that
    order (an index gives it for free), so what they are inserted into grows at its right edge -#}
{% macro fence(order_by=none) %}{% if order_by %}order by {{ order_by }} {% endif %}limit -1 offset 0{% endmacro %}
{% macro slice_of(expr, n) %}(abs(coalesce(unicode(substr({{ expr }}, -1)), 0) - 48) % {{ n }}){% endmacro %}
{% macro ts_param(name) %}:{{ name }}{% endmacro %}
{% macro as_bigint(expr) %}cast({{ expr }} as integer){% endmacro %}
{% macro lpad0(expr, n) %}substr('{{ '0' * n }}' || ({{ expr }}), -{{ n }}){% endmacro %}
{% macro month_of(expr) %}cast(substr({{ expr }}, 6, 2) as integer){% endmacro %}
{% macro add_days(expr, n) %}date({{ expr }}, '+{{ n }} days'){% endmacro %}
{% macro date_of(expr) %}date({{ expr }}){% endmacro %}
{% macro month_start(expr, n=0) %}date({{ expr }}, 'start of month', '{{ '%+d'|format(n) }} months'){% endmacro %}
{% macro first_field(expr, sep) %}(case when instr({{ expr }}, '{{ sep }}') > 0 then substr({{ expr }}, 1, instr({{ expr }}, '{{ sep }}') - 1) else {{ expr }} end){% endmacro %}
{#- the first 32 bits of md5(expr) as a non-negative integer: qz_hash32 is registered on every
    connection by qz_outbound.db.make_engine (db.hash32); postgresql.sql's twin computes the same -#}
{% macro hash32(expr) %}qz_hash32({{ expr }}){% endmacro %}
