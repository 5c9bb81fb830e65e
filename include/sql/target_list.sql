{#-
  The cycle's target list: every campaign selects its customers, contact policy removes who may
  not be contacted, and each customer keeps the one offer with the best priority (ties: the
  lower campaign code). Runs in marketing_db over the cycle's snapshot and staged extracts.

  Control group and A/B variant, decided for the winning offer only: a draw in 0..9999 from a
  cryptographic hash (md5, first 32 bits: d.hash32) of 'msisdn|campaign|YYYY-MM|purpose', the
  purpose being 'control' or 'variant'. Deterministic, so a re-run never reshuffles; independent
  between campaigns, months and the two purposes, so being in one campaign's control group says
  nothing about another's (contact-policy.md). control: draw < control_bp; variant: the first
  cumulative cut above the draw (a single variant needs no draw). qz_outbound/targeting.py:
  assignment_draw is the same in Python.

  Context: campaigns (active ones, with control_bp, variant_cuts), assignment_month ('YYYY-MM'),
  policy, call_rule, n_slices, ignore_blocks (optional: keep offers the campaign blocks and
  held products would remove; the coverage gap list's "blocked"). Bind parameters: the contact
  policy's (qz_outbound/policy.py), d_month, expiry_<days>, [slice].
-#}
{% import 'dialect/' ~ dialect ~ '.sql' as d %}
{% import '_contactable.sql' as c %}
{% macro in_slice(expr) %}{% if n_slices > 1 %} and {{ d.slice_of(expr, n_slices) }} = :slice{% endif %}{% endmacro %}
{% macro range(col, r) %}{% if r is not none %}{% if r.min is not none %} and s.{{ col }} >= {{ r.min }}{% endif %}{% if r.max is not none %} and s.{{ col }} <= {{ r.max }}{% endif %}{% endif %}{% endmacro %}
with recent as materialized (   -- one aggregate over the history (coverage.sql says why)
    {{ c.recent_contacts(d) }}
),

excluded as (
    {{ c.excluded_customers(d) }}
),

contactable as (
    select
        s.msisdn,
        s.county_code,
        s.stability_type,
        s.spend_tier,
        s.voice_tier,
        s.data_tier,
        s.tenure_tier,
        s.market_segment,
        s.bundle_kind,
        s.open_date,
        s.segment_code,
        s.terminal_type,
        s.sms_m0
    from mkt_segment_snapshot as s
    left join recent as r
        on r.msisdn = s.msisdn
    left join excluded as e
        on e.msisdn = s.msisdn
    where s.cycle_date = {{ d.date_param('d') }}{{ in_slice('s.msisdn') }}
      and not {{ c.hard_excluded('s', 'e') }}
      and not {{ c.capped(policy, 'r') }}
),

blocked_campaign as (
    {{ c.blocked_campaigns(d) }}
),

candidate as (
{% for k in campaigns %}
    -- {{ k.code }} {{ k.name }}
    select
        h.*
    from (
        select
            s.msisdn,
            s.county_code,
            '{{ k.code }}' as campaign_code,
            '{{ k.product_code }}' as product_code,
            {{ k.priority }} as priority,
            s.stability_type,
            s.spend_tier,
            s.segment_code,
            {% if k.allows_call %}case when s.spend_tier >= {{ call_rule.min_spend_tier }} and s.stability_type in ({% for t in call_rule.stability_types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %}) then 1 else 0 end{% else %}0{% endif %} as call_eligible,
            {{ 1 if k.allows_sms else 0 }} as sms_allowed,
            {{ 1 if k.fallback else 0 }} as is_fallback
        from contactable as s
        where s.stability_type in ({% for t in k.target.stability_types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %})
          {{- range('spend_tier', k.target.spend_tier) }}
          {{- range('voice_tier', k.target.voice_tier) }}
          {{- range('data_tier', k.target.data_tier) }}
          {{- range('tenure_tier', k.target.tenure_tier) }}
          {%- if k.target.market_segments %}
          and (s.market_segment in ({% for m in k.target.market_segments if m != 'none' %}'{{ m }}'{{ ', ' if not loop.last }}{% else %}''{% endfor %}){% if 'none' in k.target.market_segments %} or s.market_segment is null{% endif %})
          {%- endif %}
          {%- if k.target.bundle == 'bundled' %}
          and s.bundle_kind is not null
          {%- elif k.target.bundle == 'unbundled' %}
          and s.bundle_kind is null
          {%- elif k.target.bundle in ('hard', 'soft') %}
          and s.bundle_kind = '{{ k.target.bundle }}'
          {%- endif %}
          {%- if k.target.bundle_expiring %}
          and exists (
              select 1 from stg_bundle_end as b
              where b.cycle_date = {{ d.date_param('d') }}
                and b.msisdn = s.msisdn
                and b.bundle_type in ({% for t in k.target.bundle_expiring.types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %})
                and b.end_date <= {{ d.date_param('expiry_' ~ k.target.bundle_expiring.within_days) }})
          {%- endif %}
          {%- if k.target.holds_any_of %}
          and exists (
              select 1 from stg_holding as hp
              where hp.cycle_date = {{ d.date_param('d') }}
                and hp.msisdn = s.msisdn
                and hp.product_code in ({% for p in k.target.holds_any_of %}'{{ p }}'{{ ', ' if not loop.last }}{% endfor %}))
          {%- endif %}
          {%- if k.target.terminal_types %}
          and s.terminal_type in ({% for t in k.target.terminal_types %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %})
          {%- endif %}
          {%- if k.target.tags_any %}
          and exists (   -- customer tags (config/tags.yaml), refreshed before the list
              select 1 from mkt_customer_tag as tg
              where tg.msisdn = s.msisdn
                and tg.tag in ({% for t in k.target.tags_any %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %}))
          {%- endif %}
          {%- if k.target.tags_none %}
          and not exists (
              select 1 from mkt_customer_tag as tn
              where tn.msisdn = s.msisdn
                and tn.tag in ({% for t in k.target.tags_none %}'{{ t }}'{{ ', ' if not loop.last }}{% endfor %}))
          {%- endif %}
          {%- if k.target.sms_count %}{% set r = k.target.sms_count %}
          {%- if r.min is not none %} and coalesce(s.sms_m0, 0) >= {{ r.min }}{% endif %}
          {%- if r.max is not none %} and coalesce(s.sms_m0, 0) <= {{ r.max }}{% endif %}
          {%- endif %}
          {%- if k.target.anniversary_month %}
          and {{ d.month_of('s.open_date') }} = :d_month
          {%- endif %}
          {%- if k.rule_sql %}
          and s.msisdn in ({{ k.rule_sql }})
          {%- endif %}
          {%- if not ignore_blocks | default(false) %}
          and not {{ c.holds_product(d, 's.msisdn', "'" ~ k.product_code ~ "'") }}
          {%- endif %}
    ) as h
{{ '    union all' if not loop.last }}
{% endfor %}
),

ranked as (
    select
        candidate.*,
        -- a fallback (care) campaign only takes whom no other campaign offers anything
        row_number() over (partition by msisdn order by is_fallback, priority, campaign_code) as offer_rank
    from candidate
    {%- if not ignore_blocks | default(false) %}   {# coverage_gaps.sql: who is targeted before blocks #}
    where not {{ c.campaign_blocked('blocked_campaign', 'candidate.msisdn', 'candidate.campaign_code') }}
    {%- endif %}
),

chosen as (
    select
        ranked.*,
        {{ d.hash32("msisdn || '|' || campaign_code || '|" ~ assignment_month ~ "|control'") }} % 10000 as control_draw,
        {{ d.hash32("msisdn || '|' || campaign_code || '|" ~ assignment_month ~ "|variant'") }} % 10000 as variant_draw
    from ranked
    where offer_rank = 1
)

select
    {{ d.date_param('d') }} as cycle_date,
    msisdn,
    county_code,
    campaign_code,
    product_code,
    priority,
    stability_type,
    spend_tier,
    segment_code,
    case when control_draw < case campaign_code{% for k in campaigns %} when '{{ k.code }}' then {{ k.control_bp }}{% endfor %} else 0 end
        then 1 else 0 end as is_control,
    {% if campaigns | selectattr('variant_cuts') | list %}case{% for k in campaigns if k.variant_cuts %}
        when campaign_code = '{{ k.code }}' then {% if k.variant_cuts | length == 1 %}'{{ k.variant_cuts[0][0] }}'{% else %}case{% for label, cut in k.variant_cuts %} when variant_draw < {{ cut }} then '{{ label }}'{% endfor %} end{% endif %}{% endfor %}
    end{% else %}null{% endif %} as variant,
    call_eligible,
    sms_allowed,
    'fixed' as arm,
    1.0 as propensity,
    campaign_code as fixed_code,
    cast(null as varchar(16)) as learned_code
from chosen
