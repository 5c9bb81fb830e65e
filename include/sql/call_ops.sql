{#- The call centre's funnel (economics.md "Call-centre operations"): calls made from :start to
    :end (called_at; Asia/Shanghai days), per the slice's columns `by` (county_code, campaign_code,
    call_day, agent_id). A call (a contact of the call list) is dialled when an outcome is uploaded
    for it, connected when an outcome is connected (_call_status.sql), accepted when one is
    accepted; each counts once per slice row however many outcomes the call had.
    Bind parameters: start, end, [county]. -#}
{% import '_call_status.sql' as s %}
{% macro call_day(expr) -%}
{%- if dialect == 'postgresql' %}cast(timezone('Asia/Shanghai', {{ expr }}) as date){% else %}date({{ expr }}){% endif -%}
{%- endmacro %}
{#- SQLite stores the Asia/Shanghai wall time (the project's clock), PostgreSQL the instant -#}
select
{%- for col in by %}
    {% if col == 'call_day' %}{{ call_day('o.called_at') }}{% elif col == 'agent_id' %}coalesce(o.agent_id, ''){% else %}o.{{ col }}{% endif %} as {{ col }},
{%- endfor %}
    count(distinct case when {{ s.is_dialled('o.outcome') }} then o.contact_id end) as dialled,
    count(distinct case when {{ s.is_connected('o.outcome') }} then o.contact_id end) as connected,
    count(distinct case when o.outcome = 'accepted' then o.contact_id end) as accepted
from mkt_call_outcome as o
where o.called_at >= :start and o.called_at < :end
{%- if one_county %}
  and o.county_code = :county
{%- endif %}
group by
{%- for col in by %}
    {% if col == 'call_day' %}{{ call_day('o.called_at') }}{% elif col == 'agent_id' %}coalesce(o.agent_id, ''){% else %}o.{{ col }}{% endif %}{{ ',' if not loop.last }}
{%- endfor %}
order by
{%- for col in by %}
    {{ loop.index }}{{ ',' if not loop.last }}
{%- endfor %}
