{#- Customer tags (docs/learning.md "Customer tags"): per customer and tag of config/tags.yaml, the
    evidence in the contact history as of the cycle :d (contacts of cycles before it). A rule holds
    when at least min_count contacts of the cycles since :since_<lookback_days> match its measure
    (outcome, channels, campaign code digits, via an agent shop) and, with none_of, no contact of the
    same look-back matches the other measure. A tag holds when any of its rules holds; its evidence
    is the sum of the holding rules' counts and the latest cycle among them.
    Context: tags (qz_outbound/tags.py Tag). Binds: d, quiet_before (a delivered message counts as
    unanswered only from this cycle back), since_<days> per look-back. -#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% macro outcome(kind, a) -%}
{%- if kind == 'converted' -%}
    {{ a }}.converted_at is not null
{%- elif kind == 'accepted' -%}
    {{ a }}.response in ('accept', 'accepted')
{%- elif kind == 'taken_up' -%}
    ({{ a }}.response in ('accept', 'accepted') or {{ a }}.converted_at is not null)
{%- elif kind == 'responded' -%}
    ({{ a }}.response is not null or {{ a }}.converted_at is not null)
{%- elif kind == 'refused' -%}
    {{ a }}.response in ('refused', 'refused_do_not_call')
{%- elif kind == 'unanswered' -%}
    {{ a }}.response in ('no_answer', 'busy')
{%- elif kind == 'no_response' -%}
    ({{ a }}.delivered_at is not null and {{ a }}.response is null and {{ a }}.converted_at is null
     and {{ a }}.cycle_date < {{ d.date_param('quiet_before') }})
{%- else -%}
    unknown_outcome_{{ kind }}
{%- endif -%}
{%- endmacro %}
{% macro measure(m, days, a) -%}
{{ a }}.cycle_date >= {{ d.date_param('since_' ~ days) }} and {{ a }}.cycle_date < {{ d.date_param('d') }}
          and {{ outcome(m.outcome, a) }}
{%- if m.channels %}
          and {{ a }}.channel in ({% for ch in m.channels %}'{{ ch }}'{{ ', ' if not loop.last }}{% endfor %})
{%- endif %}
{%- if m.campaign %}{% for pos, digits in m.campaign.filters() %}
          and substr({{ a }}.campaign_code, {{ pos }}, 1) in ({% for x in digits %}'{{ x }}'{{ ', ' if not loop.last }}{% endfor %})
{%- endfor %}{% endif %}
{%- if m.via_agent %}
          and ({{ a }}.channel = 'agent'
               or exists (select 1 from stg_order as o
                          where o.order_id = {{ a }}.order_id and o.agent_id is not null))
{%- endif %}
{%- endmacro %}
with evidence as (
{%- for t in tags %}{% set outer = loop %}{% for r in t.rules %}
    -- {{ t.code }} rule {{ loop.index }}
    select
        c.msisdn,
        '{{ t.code }}' as tag,
        count(*) as evidence_count,
        max(c.cycle_date) as last_evidence
    from mkt_contact as c
    where {{ measure(r, r.lookback_days, 'c') }}
{%- if r.none_of %}
      and not exists (
          select 1 from mkt_contact as x
          where x.msisdn = c.msisdn
            and {{ measure(r.none_of, r.lookback_days, 'x') }})
{%- endif %}
    group by c.msisdn
    having count(*) >= {{ r.min_count }}
{{ '    union all' if not (outer.last and loop.last) }}
{%- endfor %}{% endfor %}
)
select
    msisdn,
    tag,
    cast(sum(evidence_count) as integer) as evidence_count,
    max(last_evidence) as last_evidence
from evidence
group by msisdn, tag
